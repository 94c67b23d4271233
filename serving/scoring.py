"""The scoring core: a request's columns in, the model's predictions out.

Both the local endpoint (``serving.server``) and the Azure ML entry script
(``deployments/azureml/score.py``) call `Scorer`, so a request means the same thing in both
places: its shape is recognised (``serving.request_shapes``), its columns are matched to the
bundle's features ignoring case and separators (``serving.columns``), put in the order the
model was trained with and converted to the dtypes the manifest records
(``serving.coercion``). Extra columns are ignored. No per-request validation model is built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from serving.bundle import Bundle
from serving.coercion import Uncoercible, coercer_for
from serving.columns import match_columns
from serving.errors import ScoringInputError
from serving.request_shapes import RawTable, raw_table, wants_probabilities

if TYPE_CHECKING:
    from serving.fastpath import FastPipeline

logger = logging.getLogger(__name__)

# Why a scorer built with ``fast=False`` uses the plain pipeline, as the control API says it.
OFF_BY_SETTING = "off by setting MLOPS_ENDPOINT_FAST_PATH"
_MATCHES_KEPT = 64
_MATCH_NAMES_KEPT = 64  # beyond the model's own features
_MATCH_CHARS_KEPT = 16_384


@dataclass(frozen=True)
class Scored:
    """One request's outcome: the model's input columns (training dtypes, kept for inference
    collection) and its outputs."""

    columns: dict[str, Any]
    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The input columns as the DataFrame the plain pipeline gets (built on demand)."""
        return pd.DataFrame(self.columns, copy=False)

    def body(self) -> dict[str, Any]:
        """The prediction part of the response, as plain JSON-able values."""
        out: dict[str, Any] = {"predictions": self.predictions.tolist()}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities.tolist()
            out["classes"] = self.classes
        return out


class Scorer:
    """A loaded bundle with its column plan worked out once, so each request only converts."""

    _load_model: Callable[[], Bundle] | None = None  # a restored scorer's model, on demand

    def __init__(self, bundle: Bundle, fast: bool = True) -> None:
        """Work out the column plan and, if `fast` (``MLOPS_ENDPOINT_FAST_PATH``, on by
        default), the lean predict path (see `serving.fastpath`), which is kept only if it
        answers probe rows exactly as the plain pipeline does."""
        self._plan(bundle)
        self.classes: list[Any] | None = (
            np.asarray(bundle.model.classes_).tolist()
            if hasattr(bundle.model, "classes_") and hasattr(bundle.model, "predict_proba")
            else None
        )
        self.fast: FastPipeline | None = None
        self.plain_reason: str | None = OFF_BY_SETTING
        if fast:
            self.fast = self._compile_fast()

    def _plan(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.features = bundle.feature_names
        self._coercers = [coercer_for(f.dtype) for f in bundle.features]
        self._dtypes = [f.dtype for f in bundle.features]
        self._matches: dict[tuple[str, ...], list[str]] = {}

    @classmethod
    def restored(cls, bundle: Bundle, data: bytes,
                 load_model: Callable[[], Bundle]) -> Scorer:
        """A scorer whose fast path is read from a snapshot (what `snapshot` returned)
        instead of compiled from the model, so neither scikit-learn nor skops is imported.

        Args:
            bundle: The bundle's manifest and features; its model is not loaded (None).
            data: What `snapshot` returned for this model.
            load_model: Loads the bundle with its model, the first time a request must take
                the plain pipeline (a row the fast path declines).

        Raises:
            Unsupported: the snapshot cannot be read, or does not fit the bundle's features.
        """
        from serving.fastpath import Unsupported, snapshot  # noqa: PLC0415

        fast, classes = snapshot.load(data)
        scorer = cls.__new__(cls)
        scorer._plan(bundle)
        read = [(p, d) for branch in fast.branches
                for p, d in zip(branch.positions, branch.dtypes, strict=True)]
        if not read or any(p >= len(scorer._dtypes) or scorer._dtypes[p] != d for p, d in read):
            raise Unsupported("the snapshot was made for other features than the bundle's")
        scorer.classes, scorer.fast, scorer.plain_reason = classes, fast, None
        scorer._load_model, scorer._loading = load_model, threading.Lock()
        return scorer

    def snapshot(self, kernel: bool = True) -> bytes | None:
        """The fast path as plain data (`serving.fastpath.snapshot`) once it is read back and
        answers the probe rows exactly as the plain pipeline does; None without a fast path
        or when it cannot be stored (logged). Without `kernel` the read-back trees are
        walked with numpy, not the compiled kernel (same sums), so numba is not imported."""
        if self.fast is None or self._load_model is not None:
            return None
        from serving.fastpath import Unsupported, snapshot  # noqa: PLC0415

        try:
            data = snapshot.dump(self.fast, self.classes)
            restored, classes = snapshot.load(data)
            if classes != self.classes:
                raise Unsupported("the classes did not read back equal")
            if not kernel:
                restored.estimator.forest.without_kernel()
            self._probe(restored)
        except Unsupported as exc:
            logger.info("%s version %s: no snapshot of its fast path: %s",
                        self.bundle.manifest.get("model_name"),
                        self.bundle.manifest.get("version"), exc)
            return None
        return data

    @property
    def path(self) -> str:
        """How requests are scored, for the control API: the fast path or why not."""
        return "fast path" if self.fast is not None else f"plain pipeline ({self.plain_reason})"

    def _compile_fast(self) -> FastPipeline | None:
        from serving import fastpath  # noqa: PLC0415 - imports scikit-learn parts

        bundle = self.bundle
        try:
            compiled = fastpath.compile_pipeline(bundle.model, self.features, self._dtypes)
            self._probe(compiled)
        except fastpath.Unsupported as exc:
            # the message, not the exception: a handler that keeps records (a test's log
            # capture, a buffering handler) would keep its traceback, and through it this
            # scorer and its model, alive after the deployment is replaced
            self.plain_reason = str(exc)
            logger.info("%s version %s scores through the plain pipeline: %s",
                        bundle.manifest.get("model_name"), bundle.manifest.get("version"),
                        self.plain_reason)
            return None
        self.plain_reason = None
        return compiled

    def _probe(self, compiled: FastPipeline) -> None:
        """Compare the compiled path with the plain pipeline on seeded probe rows (a few
        milliseconds at load time): a mismatch keeps the plain pipeline for this model.

        Clean probes hold only known categories and no nulls, so both paths must answer
        them; rough ones add unseen categories and nulls, which either path may refuse.

        Raises:
            Unsupported: the answers differ, or the probe rows could not be built or compared.
        """
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        from serving import fastpath  # noqa: PLC0415

        # One OpenMP thread for this (loading) thread only: the plain pipeline's small
        # predictions take seconds with spinning workers on a busy machine.
        with threadpool_limits(1, user_api="openmp"):
            compared = [
                self._probe_rows(compiled, n_rows, rough)
                for n_rows, rough in ((1, False), (9, True), (fastpath.WALK_MAX_ROWS + 3, False),
                                      (2 * fastpath.WALK_MAX_ROWS + 3, True))
            ]
        if not any(compared):
            raise fastpath.Unsupported("no probe rows could be compared")

    def _probe_rows(self, compiled: FastPipeline, n_rows: int, rough: bool) -> bool:
        from serving import fastpath  # noqa: PLC0415

        rng = np.random.default_rng(n_rows)
        categories = compiled.categories
        values = {
            name: fastpath.probe_values(dtype, n_rows, categories.get(i, ()), rng, rough)
            for i, (name, dtype) in enumerate(zip(self.features, self._dtypes, strict=True))
        }
        try:
            columns = self.columns(RawTable(tuple(values), n_rows, values.__getitem__))
        except ScoringInputError as exc:
            raise fastpath.Unsupported(f"probe rows: {exc.message}") from exc
        asked = self.classes is not None
        try:
            return fastpath.compare(compiled, lambda: self._plain(columns, asked),
                                    list(columns.values()), n_rows, asked)
        except fastpath.Unsupported as exc:
            raise fastpath.Unsupported(f"probe of {n_rows} rows: {exc}") from exc

    def _match(self, table: RawTable) -> list[str]:
        """The request's name for each feature, in feature order; names every missing one.

        Clients send the same columns request after request, so the answer is kept per set of
        names: at most `_MATCHES_KEPT` sets, each of at most `_MATCH_NAMES_KEPT` names and
        `_MATCH_CHARS_KEPT` characters, so requests full of unique extra names are matched
        every time rather than held in memory.
        """
        known = self._matches.get(table.names)
        if known is not None:
            return known
        match = match_columns(table.names, self.features)
        if match.missing:
            raise ScoringInputError(422, f"missing required columns: {match.missing}")
        matched = [match.found[name] for name in self.features]
        if len(table.names) <= _MATCH_NAMES_KEPT + len(self.features) and (
            sum(map(len, table.names)) <= _MATCH_CHARS_KEPT
        ):
            if len(self._matches) >= _MATCHES_KEPT:
                self._matches.clear()
            self._matches[table.names] = matched
        return matched

    def frame(self, table: RawTable) -> pd.DataFrame:
        """The model's input: features in training order with training dtypes (see
        `columns`)."""
        return pd.DataFrame(self.columns(table), copy=False)

    def columns(self, table: RawTable) -> dict[str, Any]:
        """The model's input columns, in training order, converted to training dtypes.

        Raises:
            ScoringInputError: 422 for no rows, missing columns (all named) or a column whose
                values cannot take its dtype (named, with the dtype).
        """
        if table.n_rows == 0:
            raise ScoringInputError(422, "no rows to score: the request holds no data")
        columns = {}
        for feature, source, coerce, dtype in zip(
            self.features, self._match(table), self._coercers, self._dtypes, strict=True
        ):
            try:
                columns[feature] = coerce(table.column(source))
            except Uncoercible as exc:
                raise ScoringInputError(
                    422, f"column '{source}' cannot be read as {dtype}: {exc}"
                ) from exc
        return columns

    def score(self, payload: Any, probabilities: bool = False) -> Scored:
        """Predict for a decoded request body (and class probabilities when asked, by
        `probabilities` or the body's ``return_probabilities``).

        Raises:
            ScoringInputError: the request does not fit the model (see `frame`), or the model
                refused the converted rows (422).
        """
        asked = wants_probabilities(payload, probabilities)
        return self.score_table(raw_table(payload), asked)

    def score_table(self, table: RawTable, probabilities: bool = False) -> Scored:
        """`score` for a request whose shape was already recognised."""
        columns = self.columns(table)
        asked = probabilities and self.classes is not None
        try:
            answer = (
                self.fast.run(list(columns.values()), table.n_rows, asked)
                if self.fast is not None else None
            )
            predictions, proba = answer or self._plain(columns, asked)
        except (TypeError, ValueError) as exc:
            raise ScoringInputError(422, f"the model could not score these rows: {exc}") from exc
        return Scored(columns, predictions, proba, self.classes if asked else None)

    def _plain(self, columns: dict[str, Any], probabilities: bool) -> tuple[Any, Any]:
        """The pipeline itself, on the DataFrame it was trained on."""
        frame = pd.DataFrame(columns, copy=False)
        model = self._model()
        predictions = np.asarray(model.predict(frame))
        proba = np.asarray(model.predict_proba(frame)) if probabilities else None
        return predictions, proba

    def _model(self) -> Any:
        """The fitted pipeline; a restored scorer loads it the first time it is needed."""
        if self._load_model is not None and self.bundle.model is None:
            with self._loading:
                if self.bundle.model is None:
                    loaded = self._load_model()
                    self.bundle = replace(self.bundle, model=loaded.model)
        return self.bundle.model
