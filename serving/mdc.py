"""Azure ML's model data collector, fed from the entry script off the hot path.

On a managed deployment whose ``data_collector`` enables the ``model_inputs`` and
``model_outputs`` collections (deployments/azureml/deployment.yml), Azure ML writes what
``azureml.ai.monitoring.Collector`` is given to the workspace's blob store, one JSON line per
collected batch, its rows under ``data``::

    modelDataCollector/<endpoint>/<deployment>/model_inputs/YYYY/MM/DD/HH/<instance>.jsonl

A request only queues its converted input columns and predictions (the same bounded queue as
the local endpoint's Parquet log, `serving.collect`); a background thread builds one DataFrame
per batch and hands it to the collectors, so a request never pays for a DataFrame or its JSON.
The collector's own errors surface on that thread, where they are counted and logged, and the
deployment keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from serving.collect import META_COLUMNS, QueuedCollector

logger = logging.getLogger(__name__)

INPUTS, OUTPUTS = "model_inputs", "model_outputs"
PACKAGE = "azureml-ai-monitoring"


class ModelDataCollector(QueuedCollector):
    """Batches of scored requests to Azure ML's `model_inputs` and `model_outputs`.

    Args:
        inputs: The ``model_inputs`` collector (anything with ``collect(frame[, context])``).
        outputs: The ``model_outputs`` collector; its rows are correlated with the inputs'.
    """

    def __init__(self, inputs: Any, outputs: Any, **queue: Any) -> None:
        super().__init__(**queue)
        self.inputs, self.outputs = inputs, outputs

    def _write(self, day: str, table: pa.Table) -> None:
        # batch_table puts the features first and its context columns (META_COLUMNS) last
        features = table.num_columns - len(META_COLUMNS)
        frame = table.to_pandas()
        context = self.inputs.collect(frame.iloc[:, :features])
        predictions = frame.iloc[:, [features]].set_axis(["prediction"], axis=1)
        self.outputs.collect(predictions, context)
        self.written_rows += table.num_rows


def start_collection(
    collector_class: Callable[..., Any] | None = None, **queue: Any
) -> ModelDataCollector:
    """A started `ModelDataCollector` on ``azureml.ai.monitoring.Collector``.

    Args:
        collector_class: The Collector class; default: azureml-ai-monitoring's.
        queue: `QueuedCollector`'s sizes (flush_rows, flush_s, max_rows).

    Raises:
        ModuleNotFoundError: azureml-ai-monitoring is not installed (it is in the Azure ML
            environment's conda file; collection was asked for, so its absence is an error).
    """
    if collector_class is None:
        try:
            from azureml.ai.monitoring import Collector  # noqa: PLC0415 - only on Azure
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                f"inference data collection is on (MLOPS_ENDPOINT_AZUREML_COLLECT) but {PACKAGE} "
                f"is not installed: add it to the environment (requirements-azmlinfsrv.in) or "
                f"set MLOPS_ENDPOINT_AZUREML_COLLECT=false"
            ) from exc
        collector_class = Collector
    collector = ModelDataCollector(
        collector_class(name=INPUTS), collector_class(name=OUTPUTS), **queue
    )
    collector.start()
    logger.info("Collecting %s and %s for Azure ML's data collector", INPUTS, OUTPUTS)
    return collector
