"""Score a record batch through the endpoint's scoring core; find the rows it cannot score.

The whole batch goes through `serving.scoring.Scorer.score_table` in one call (one predict),
exactly as a request of those rows would. When the core refuses the batch (a value that cannot
take its column's dtype, a category the encoder refuses), the batch is split in halves and each
half scored again, down to single rows: a row that is still refused gets a null prediction and
the core's message in the error column; every other row is scored. A batch with k bad rows
costs about 2·k·log2(rows) extra calls; a batch without bad rows costs nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlops.batch.arrow_input import raw_table
from serving.errors import ScoringInputError
from serving.scoring import Scorer

PREDICTION = "prediction"
ERROR = "error"
PROBABILITY_PREFIX = "probability_"


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's output columns (prediction, probabilities, error) and its count of bad rows."""

    names: list[str]
    arrays: list[pa.Array]
    failed: int


class BatchScorer:
    """A loaded model's scoring core with the output columns it writes worked out once."""

    def __init__(self, scorer: Scorer, probabilities: bool = True) -> None:
        self.scorer = scorer
        self.bundle = scorer.bundle
        self.classes = scorer.classes if probabilities else None
        if scorer.classes is not None:
            self.prediction_type = pa.from_numpy_dtype(np.asarray(scorer.classes).dtype) \
                if np.asarray(scorer.classes).dtype != object else pa.string()
        else:
            self.prediction_type = pa.float64()
        self.output_names = [PREDICTION, *self.probability_names, ERROR]

    @property
    def probability_names(self) -> list[str]:
        return [f"{PROBABILITY_PREFIX}{c}" for c in self.classes or ()]

    def _predict(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray | None]:
        scored = self.scorer.score_table(raw_table(batch), self.classes is not None)
        return scored.predictions, scored.probabilities

    def score(self, batch: pa.RecordBatch) -> ScoredBatch:
        """The output columns for `batch`; rows that cannot be scored are null with a reason.

        Raises:
            Whatever the model raises beyond the refusals a request can cause (those are
            `ScoringInputError`s): such an error is not about a row.
        """
        try:
            predictions, proba = self._predict(batch)
        except ScoringInputError:
            return self._score_around_bad_rows(batch)
        return self._columns(batch.num_rows, predictions, proba, None)

    def _score_around_bad_rows(self, batch: pa.RecordBatch) -> ScoredBatch:
        n = batch.num_rows
        pieces: list[tuple[int, np.ndarray, np.ndarray | None]] = []
        errors: dict[int, str] = {}
        if n == 1:
            self._split(batch, 0, pieces, errors)
        else:
            half = n // 2
            self._split(batch.slice(0, half), 0, pieces, errors)
            self._split(batch.slice(half), half, pieces, errors)
        predictions = np.zeros(n, dtype=self.prediction_type.to_pandas_dtype())
        if self.prediction_type == pa.string():
            predictions = np.full(n, None, dtype=object)
        proba = np.zeros((n, len(self.classes))) if self.classes is not None else None
        for offset, part, part_proba in pieces:
            predictions[offset:offset + len(part)] = part
            if proba is not None and part_proba is not None:
                proba[offset:offset + len(part)] = part_proba
        return self._columns(n, predictions, proba, errors)

    def _split(self, batch: pa.RecordBatch, offset: int, pieces: list[Any],
               errors: dict[int, str]) -> None:
        try:
            pieces.append((offset, *self._predict(batch)))
            return
        except ScoringInputError as exc:
            if batch.num_rows == 1:
                errors[offset] = exc.message
                return
        half = batch.num_rows // 2
        self._split(batch.slice(0, half), offset, pieces, errors)
        self._split(batch.slice(half), offset + half, pieces, errors)

    def _columns(self, n: int, predictions: np.ndarray, proba: np.ndarray | None,
                 errors: dict[int, str] | None) -> ScoredBatch:
        mask = None
        error = pa.nulls(n, pa.string())
        if errors:
            mask = np.zeros(n, dtype=bool)
            mask[list(errors)] = True
            messages = np.full(n, None, dtype=object)
            messages[list(errors)] = list(errors.values())
            error = pa.array(messages, type=pa.string())
        arrays = [pa.array(predictions, type=self.prediction_type, mask=mask)]
        if self.classes is not None and proba is not None:
            arrays += [pa.array(proba[:, j], type=pa.float64(), mask=mask)
                       for j in range(len(self.classes))]
        return ScoredBatch([*self.output_names], [*arrays, error], len(errors or ()))
