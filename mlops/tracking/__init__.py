"""Experiment tracking in MLflow: what training and drift runs record, and where (docs/tracking.md).

Nothing here can change a model or a prediction, and nothing here can fail a run: every call to
the store runs in a process of its own (`process`), whose errors become warnings (`recorder`).
"""
