"""The Azure ML backends: model registry, managed online endpoint and training on a cluster.

Importing this package imports nothing from Azure. ``shipping`` (what gets uploaded) is plain
Python; the other modules import ``azure.ai.ml`` (about 5 s) at their top and are imported only
by ``mlops.backends`` and ``tasks.training`` when a spec selects an 'azureml' backend.
"""
