"""A lean predict path for the pipelines we ship: the same numbers as ``Pipeline.predict``.

For a request of a few rows, scikit-learn's own path costs about ten times the arithmetic:
the ColumnTransformer splits a DataFrame per branch, every step validates its input again
(pandas dtype checks, feature names, finiteness, parameter validation, config contexts), and
HistGradientBoosting calls one Cython predictor per tree, each with its own set-up. Here the
fitted pipeline is read once, at load time, into plain numpy steps that compute what each
fitted step's ``transform`` computes, in the same order and dtypes, so the outputs are equal:

- readers turn each column (as the scoring core coerced it) into what its branch's first step
  receives: float64 with NaN for missing, or an object array of ``str`` with NaN;
- ``SimpleImputer``, ``StandardScaler``, ``MinMaxScaler``, ``RobustScaler``, ``OneHotEncoder``,
  ``OrdinalEncoder`` and the ``serving.transforms`` casts, in a ``ColumnTransformer`` or not;
- ``HistGradientBoostingClassifier``/``Regressor``: for small requests all trees are walked at
  once with numpy and the leaf values summed in scikit-learn's order (so the sums are
  bit-identical); larger requests run the fitted tree predictors one by one, as
  scikit-learn does, without its input checks. Any other estimator gets the transformed array
  through its own ``predict``.

Anything else (another step type, sparse output, infrequent or dropped categories, a dtype the
readers do not know) makes `compile_pipeline` raise `Unsupported`, and the scoring core keeps
the plain pipeline. A request that the fast path cannot answer exactly as the pipeline would
(an unknown category where the encoder raises, an infinite number a step would refuse) is
`Declined` and goes the plain way, so errors stay the pipeline's own.
tests/serving/test_fastpath.py checks equality over many random requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.transforms import to_category_array, to_float_array

FLOAT, TEXT = "float", "text"
# Up to this many rows all trees are walked at once with numpy; beyond it the fitted tree
# predictors run one by one (their per-call set-up is then small against the work). Measured
# on the benchmark's model (100 trees of up to 31 leaves): the walk is 8x faster for one row,
# 1.3x for 100, even at about 200.
WALK_MAX_ROWS = 128
_SET_ASIDE_EVERY = 4
_NANOSECONDS_PER_DAY = 86_400 * 10**9
_PLAIN_NUMERIC = frozenset({"float64", "int64", "int32"})
_PLAIN_TEXT = frozenset({"str", "category", "object"})

Reader = Callable[[Any], np.ndarray]
Step = Callable[[np.ndarray], np.ndarray]


class Unsupported(Exception):
    """The fitted pipeline holds something this module does not reproduce exactly."""


class Declined(Exception):
    """This request must go through the plain pipeline (which may raise its own error)."""


# --- readers: one coerced column -> what its branch's first step receives ---------------------


def _as_float64(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.float64)


def _masked_floats(array: Any) -> np.ndarray:
    return array.to_numpy(dtype=np.float64, na_value=np.nan)


def _datetime_days(array: Any) -> np.ndarray:
    """As `serving.transforms.to_float_array`: days since 1970, NaN for missing."""
    stamps = np.asarray(array, dtype="datetime64[ns]")
    missing = np.isnat(stamps)
    days = np.where(missing, 0, stamps.view(np.int64)) / _NANOSECONDS_PER_DAY
    return np.where(missing, np.nan, days)


def float_reader(dtype: str, cast: bool) -> Reader:
    """Column of `dtype` -> float64, as check_array (``cast=False``) or `to_float_array` does.

    Raises:
        Unsupported: a dtype whose conversion here might differ from scikit-learn's.
    """
    if dtype == "float64":
        return np.asarray
    if dtype in _PLAIN_NUMERIC or (cast and dtype in ("float32", "bool")):
        return _as_float64
    if cast and dtype in ("Int64", "Float64", "boolean"):
        return _masked_floats
    if cast and dtype == "datetime64[ns]":
        return _datetime_days
    raise Unsupported(f"no float reader for a {dtype} column (cast: {cast})")


def _text_values(array: Any) -> np.ndarray:
    return array.to_numpy(dtype=object, na_value=np.nan)


def _bool_text(array: Any) -> np.ndarray:
    return np.where(np.asarray(array, dtype=bool), "True", "False").astype(object)


def _boolean_text(array: Any) -> np.ndarray:
    out = np.where(array.to_numpy(dtype=bool, na_value=False), "True", "False").astype(object)
    out[array.isna()] = np.nan
    return out


def text_reader(dtype: str, cast: bool) -> Reader:
    """Column of `dtype` -> object array of `str` with NaN for missing, as encoders get it.

    Raises:
        Unsupported: a dtype whose conversion here might differ from scikit-learn's.
    """
    if dtype in _PLAIN_TEXT or (cast and dtype == "string"):
        return _text_values
    if cast and dtype == "bool":
        return _bool_text
    if cast and dtype == "boolean":
        return _boolean_text
    raise Unsupported(f"no text reader for a {dtype} column (cast: {cast})")


# --- steps: each repeats one fitted transformer's transform -----------------------------------


def _refuse_infinity(X: np.ndarray) -> np.ndarray:
    """scikit-learn's input check rejects infinity before imputers and scalers: let it."""
    if np.isinf(X).any():
        raise Declined("infinite value")
    return X


def _missing(X: np.ndarray) -> np.ndarray:
    """NaN cells; object cells are compared with themselves, as scikit-learn's mask does."""
    return np.isnan(X) if X.dtype.kind == "f" else X != X


def _imputer(step: Any, kind: str) -> Step:
    missing_marker = step.missing_values
    if step.add_indicator or not (isinstance(missing_marker, float) and np.isnan(missing_marker)):
        raise Unsupported("SimpleImputer with an indicator or a missing marker other than NaN")
    fill = np.dtype(step._fill_dtype)
    if (kind, fill) not in ((FLOAT, np.dtype(np.float64)), (TEXT, np.dtype(object))):
        raise Unsupported(f"SimpleImputer fitted on {fill} data gets {kind} data")
    stats = np.asarray(step.statistics_)
    if _missing(stats).any():
        raise Unsupported("SimpleImputer with a column that had no value in training")
    stats = stats.astype(fill)

    def impute(X: np.ndarray) -> np.ndarray:
        if kind == FLOAT:
            _refuse_infinity(X)
        mask = _missing(X)
        return np.where(mask, stats, X) if mask.any() else X

    return impute


def _shift_and_scale(shift: np.ndarray | None, scale: np.ndarray | None) -> Step:
    """(X - shift) / scale, each part left out when the fitted scaler does not use it."""

    def apply(X: np.ndarray) -> np.ndarray:
        X = _refuse_infinity(X)
        if shift is not None:
            X = X - shift
        return X / scale if scale is not None else X

    return apply


def _standard(step: Any, kind: str) -> Step:
    return _shift_and_scale(step.mean_ if step.with_mean else None,
                            step.scale_ if step.with_std else None)


def _minmax(step: Any, kind: str) -> Step:
    low, high = step.feature_range

    def rescale(X: np.ndarray) -> np.ndarray:
        X = _refuse_infinity(X) * step.scale_
        X += step.min_
        return np.clip(X, low, high, out=X) if step.clip else X

    return rescale


def _robust(step: Any, kind: str) -> Step:
    return _shift_and_scale(step.center_ if step.with_centering else None,
                            step.scale_ if step.with_scaling else None)


@dataclass(frozen=True)
class _Column:
    """How an encoder codes one column: each known category's code after infrequent
    categories are grouped, and the code an unknown value gets (-1: none)."""

    codes: dict[str, int]
    unknown: int


def _encoding(step: Any, unknown_to_group: bool) -> list[_Column]:
    """The codes of an encoder whose categories are all text.

    With infrequent categories enabled (any ``max_categories`` or ``min_frequency``), a
    column that has some maps them, and, if `unknown_to_group`, unknown values, to its
    infrequent group, as ``_map_infrequent_categories`` does.
    """
    if np.dtype(step.dtype) != np.float64:
        raise Unsupported(f"{type(step).__name__} with dtype {step.dtype}")
    enabled = step._infrequent_enabled
    infrequent = step._infrequent_indices if enabled else [None] * len(step.categories_)
    mappings = step._default_to_infrequent_mappings if enabled else [None] * len(infrequent)
    columns = []
    for categories, rare, mapping in zip(step.categories_, infrequent, mappings, strict=True):
        if not all(type(c) is str for c in categories):
            raise Unsupported(f"{type(step).__name__} with categories that are not all text")
        codes = {c: (j if mapping is None else int(mapping[j])) for j, c in enumerate(categories)}
        group = codes[categories[rare[0]]] if rare is not None and unknown_to_group else -1
        columns.append(_Column(codes, group))
    return columns


def _codes(columns: list[_Column], X: np.ndarray) -> np.ndarray:
    """The code of each cell; unknown and missing values get their column's `unknown`."""
    codes = np.empty(X.shape, dtype=np.intp)
    for j, column in enumerate(columns):
        known, unknown = column.codes, column.unknown
        codes[:, j] = [known.get(v, unknown) if type(v) is str else unknown for v in X[:, j]]
    return codes


def _one_hot(step: Any, kind: str) -> Step:
    if step.sparse_output or getattr(step, "drop_idx_", None) is not None:
        raise Unsupported("OneHotEncoder with sparse output or dropped categories")
    if step.handle_unknown not in ("ignore", "infrequent_if_exist", "error"):
        raise Unsupported(f"OneHotEncoder with handle_unknown={step.handle_unknown!r}")
    raises = step.handle_unknown == "error"
    columns = _encoding(step, unknown_to_group=step.handle_unknown == "infrequent_if_exist")
    strict = [_Column(c.codes, -1) for c in columns]
    offsets = np.cumsum([0, *step._n_features_outs])

    def encode(X: np.ndarray) -> np.ndarray:
        if raises and (_codes(strict, X) < 0).any():
            raise Declined("unknown category")
        codes = _codes(columns, X)
        rows, cols = np.nonzero(codes >= 0)
        out = np.zeros((X.shape[0], offsets[-1]), dtype=np.float64)
        out[rows, codes[rows, cols] + offsets[cols]] = 1
        return out

    return encode


def _ordinal(step: Any, kind: str) -> Step:
    if step.handle_unknown not in ("use_encoded_value", "error"):
        raise Unsupported(f"OrdinalEncoder with handle_unknown={step.handle_unknown!r}")
    raises = step.handle_unknown == "error"
    columns = _encoding(step, unknown_to_group=False)

    def encode(X: np.ndarray) -> np.ndarray:
        codes = _codes(columns, X)
        unknown = codes < 0
        out = codes.astype(np.float64)
        if unknown.any():
            if raises:
                raise Declined("unknown category")
            out[unknown] = step.unknown_value
        return out

    return encode


# class -> (builder, kinds of input it takes, kind of its output; "" for the same as its input)
_STEPS: dict[str, tuple[Callable[[Any, str], Step], tuple[str, ...], str]] = {
    "sklearn.impute._base.SimpleImputer": (_imputer, (FLOAT, TEXT), ""),
    "sklearn.preprocessing._data.StandardScaler": (_standard, (FLOAT,), FLOAT),
    "sklearn.preprocessing._data.MinMaxScaler": (_minmax, (FLOAT,), FLOAT),
    "sklearn.preprocessing._data.RobustScaler": (_robust, (FLOAT,), FLOAT),
    "sklearn.preprocessing._encoders.OneHotEncoder": (_one_hot, (TEXT,), FLOAT),
    "sklearn.preprocessing._encoders.OrdinalEncoder": (_ordinal, (TEXT,), FLOAT),
}


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _default_output(step: Any) -> None:
    config = getattr(step, "_sklearn_output_config", {}).get("transform", "default")
    if config != "default":
        raise Unsupported(f"{type(step).__name__} is set to {config} output")


def flat_steps(model: Any) -> list[Any]:
    """A pipeline's steps with nested pipelines flattened and 'passthrough' steps left out."""
    if _class_name(model) != "sklearn.pipeline.Pipeline":
        return [model]
    _default_output(model)
    flat: list[Any] = []
    for _, step in model.steps:
        if step is not None and not (isinstance(step, str) and step == "passthrough"):
            flat += flat_steps(step)
    return flat


def compile_steps(steps: Sequence[Any], kind: str) -> tuple[list[Step], str]:
    """Fitted transformers -> numpy steps; `kind` is what the first one receives.

    Returns:
        The steps, and the kind of what the last one returns.

    Raises:
        Unsupported: a step of another type, or one that would get data it was not fitted on.
    """
    compiled: list[Step] = []
    for step in steps:
        _default_output(step)
        entry = _STEPS.get(_class_name(step))
        if entry is None:
            raise Unsupported(f"a {type(step).__name__} step")
        build, accepts, produces = entry
        if kind not in accepts:
            raise Unsupported(f"{type(step).__name__} would get {kind} data")
        compiled.append(build(step, kind))
        kind = produces or kind
    return compiled, kind


# --- branches: columns -> matrix -> steps -------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """Some feature columns read into one matrix and sent through a chain of steps."""

    positions: tuple[int, ...]
    readers: tuple[Reader, ...]
    kind: str
    steps: tuple[Step, ...]
    categories: dict[int, tuple[str, ...]]  # feature position -> what its encoder knows

    def run(self, columns: Sequence[Any], n_rows: int) -> np.ndarray:
        X = np.empty((n_rows, len(self.positions)), dtype=np.float64 if self.kind == FLOAT
                     else object)
        for j, (position, read) in enumerate(zip(self.positions, self.readers, strict=True)):
            X[:, j] = read(columns[position])
        for step in self.steps:
            X = step(X)
        return X


def _cast_kind(step: Any) -> str | None:
    """FLOAT or TEXT for our own casts (`serving.transforms`), None for any other step."""
    if _class_name(step) != "sklearn.preprocessing._function_transformer.FunctionTransformer":
        return None
    if step.validate or step.kw_args or step.func not in (to_float_array, to_category_array):
        raise Unsupported(f"FunctionTransformer({getattr(step.func, '__name__', step.func)})")
    return FLOAT if step.func is to_float_array else TEXT


def _plain_kind(dtypes: Sequence[str]) -> str:
    """What scikit-learn's check_array makes of these columns without a cast."""
    if all(d in _PLAIN_NUMERIC for d in dtypes):
        return FLOAT
    if all(d in _PLAIN_TEXT for d in dtypes):
        return TEXT
    raise Unsupported(f"columns of dtypes {sorted(set(dtypes))} without a cast")


def compile_branch(steps: Sequence[Any], positions: Sequence[int],
                   dtypes: Sequence[str]) -> Branch:
    """A chain of fitted steps over the features at `positions` (of manifest `dtypes`).

    Raises:
        Unsupported: see `compile_steps`, `float_reader` and `text_reader`.
    """
    cast = _cast_kind(steps[0]) if steps else None
    rest = list(steps[1:] if cast else steps)
    if any(_cast_kind(step) for step in rest):
        raise Unsupported("a cast after the first step of a branch")
    kind = cast or _plain_kind([dtypes[p] for p in positions])
    reader = float_reader if kind == FLOAT else text_reader
    readers = tuple(reader(dtypes[p], cast is not None) for p in positions)
    compiled, out_kind = compile_steps(rest, kind)
    if out_kind != FLOAT:
        raise Unsupported("a branch whose output is text")
    encoders = [step for step in rest if hasattr(step, "categories_")]
    categories = (
        {p: tuple(c) for p, c in zip(positions, encoders[0].categories_, strict=True)}
        if kind == TEXT else {}
    )
    return Branch(tuple(positions), readers, kind, tuple(compiled), categories)


def compile_column_transformer(ct: Any, names: Sequence[str],
                               dtypes: Sequence[str]) -> list[Branch]:
    """One branch per fitted transformer that selects columns, in output order.

    Raises:
        Unsupported: weights, sparse output, passthrough columns, a single-column (1-D)
            selection, or a transformer another branch type.
    """
    _default_output(ct)
    if ct.transformer_weights or ct.sparse_output_:
        raise Unsupported("ColumnTransformer with weights or sparse output")
    if list(getattr(ct, "feature_names_in_", names)) != list(names):
        raise Unsupported("ColumnTransformer fitted on other columns than the manifest's")
    branches = []
    for name, transformer, columns in ct.transformers_:
        positions = [int(p) for p in ct._transformer_to_input_indices[name]]
        if isinstance(transformer, str) and transformer == "drop" or not positions:
            continue
        if isinstance(transformer, str) or np.isscalar(columns):
            raise Unsupported(f"ColumnTransformer branch {name!r}: {transformer!r} / {columns!r}")
        branches.append(compile_branch(flat_steps(transformer), positions, dtypes))
    return branches


# --- HistGradientBoosting ----------------------------------------------------------------


class Forest:
    """A fitted HistGradientBoosting model's trees as flat arrays.

    Leaves point to themselves, so walking every tree for as many levels as the deepest one
    has leaves each tree at its leaf. The leaf values are then added in scikit-learn's order
    (the baseline, then iteration by iteration) with a cumulative sum, which adds left to right
    exactly as its loop does.
    """

    def __init__(self, estimator: Any) -> None:
        if getattr(estimator, "_preprocessor", None) is not None or getattr(
            estimator, "is_categorical_", None
        ) is not None:
            raise Unsupported("HistGradientBoosting with categorical features")
        self.estimator = estimator
        self.per_iteration = int(estimator.n_trees_per_iteration_)
        self.n_features = int(estimator.n_features_in_)
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(
            1, 1, self.per_iteration
        )
        predictors = [p for iteration in estimator._predictors for p in iteration]
        nodes = np.concatenate([p.nodes for p in predictors])
        if nodes["is_categorical"].any():
            raise Unsupported("HistGradientBoosting with categorical splits")
        sizes = [len(p.nodes) for p in predictors]
        starts = np.cumsum([0, *sizes[:-1]])
        shift = np.repeat(starts, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(len(nodes))
        left = np.where(leaf, own, nodes["left"] + shift)
        right = np.where(leaf, own, nodes["right"] + shift)
        # Node n is addressed as 2n, so that 2n + (go right) indexes its child directly and
        # the child table holds 2 * child: one operation less per level. The per-node tables
        # are repeated to be read at 2n (and 2n + 1, never used).
        self.children = 2 * np.stack([left, right], axis=1).ravel().astype(np.intp)
        self.feature = np.repeat(np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp), 2)
        self.threshold = np.repeat(nodes["num_threshold"].astype(np.float64), 2)
        self.nan_right = np.repeat(~nodes["missing_go_to_left"].astype(bool), 2)
        self.value = np.repeat(nodes["value"].astype(np.float64), 2)
        self.is_leaf = np.repeat(leaf, 2)
        self.roots = 2 * starts.astype(np.intp)
        self.depth = int(nodes["depth"].max())
        self.known_bitsets = estimator._bin_mapper.make_known_categories_bitsets()
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads  # noqa: PLC0415

        self._threads = _openmp_effective_n_threads

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Sum of the leaf values, shape (rows, trees per iteration), as `_raw_predict`."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise Declined("the transformed rows do not have the model's width")
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.shape[0] > WALK_MAX_ROWS:
            return self._tree_by_tree(X)
        values = self.value.take(self._leaves(X)).reshape(X.shape[0], -1, self.per_iteration)
        first = np.broadcast_to(self.baseline, (X.shape[0], 1, self.per_iteration))
        summed = np.cumsum(np.concatenate([first, values], axis=1), axis=1)[:, -1, :]
        return np.asfortranarray(summed)

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf of every (row, tree), walking one level of all trees per step.

        Every few levels the pairs already at a leaf are put aside, so the deep trees do not
        drag the shallow ones along (a third less work on the benchmark's model). ``take``
        rather than fancy indexing: the same gather, less machinery around it.
        """
        n_rows, n_trees = X.shape[0], len(self.roots)
        cells = X.ravel()
        has_nan = bool(np.isnan(cells).any())
        node = np.tile(self.roots, n_rows)
        row_start = np.repeat(np.arange(n_rows, dtype=np.intp) * self.n_features, n_trees)
        slot = np.arange(n_rows * n_trees)
        leaves = np.empty(n_rows * n_trees, dtype=np.intp)
        for level in range(1, self.depth + 1):
            cell = self.feature.take(node)
            cell += row_start
            x = cells.take(cell)
            go_right = x > self.threshold.take(node)
            if has_nan:
                go_right |= np.isnan(x) & self.nan_right.take(node)
            node = self.children.take(node + go_right)
            if level % _SET_ASIDE_EVERY == 0 and level < self.depth:
                done = self.is_leaf.take(node)
                leaves[slot[done]] = node[done]
                walking = ~done
                node, row_start, slot = node[walking], row_start[walking], slot[walking]
        leaves[slot] = node
        return leaves.reshape(n_rows, n_trees)

    def _tree_by_tree(self, X: np.ndarray) -> np.ndarray:
        raw = np.zeros((X.shape[0], self.per_iteration), dtype=np.float64, order="F")
        raw += self.baseline[0]
        known, feature_map = self.known_bitsets
        threads = self._threads()  # as scikit-learn decides it for this thread
        for iteration in self.estimator._predictors:
            for k, predictor in enumerate(iteration):
                raw[:, k] += predictor.predict(X, known, feature_map, threads)
        return raw


Output = tuple[np.ndarray, "np.ndarray | None"]


class BoostedTrees:
    """HistGradientBoosting's predict and predict_proba on a walked `Forest`."""

    def __init__(self, estimator: Any) -> None:
        self.forest = Forest(estimator)
        self.loss = estimator._loss
        self.classes = getattr(estimator, "classes_", None)

    def predict(self, X: np.ndarray, probabilities: bool) -> Output:
        raw = self.forest.raw(X)
        if self.classes is None:
            return self.loss.link.inverse(raw.ravel()), None
        if raw.shape[1] == 1:
            encoded = (raw.ravel() > 0).astype(int)
        else:
            encoded = np.argmax(raw, axis=1)
        proba = self.loss.predict_proba(raw) if probabilities else None
        return self.classes[encoded], proba


class AnyEstimator:
    """Any other fitted estimator: its own predict on the transformed array."""

    def __init__(self, estimator: Any) -> None:
        if not hasattr(estimator, "predict"):
            raise Unsupported(f"{type(estimator).__name__} has no predict")
        if hasattr(estimator, "feature_names_in_"):
            raise Unsupported(f"{type(estimator).__name__} was fitted on named columns")
        self.estimator = estimator

    def predict(self, X: np.ndarray, probabilities: bool) -> Output:
        proba = self.estimator.predict_proba(X) if probabilities else None
        return np.asarray(self.estimator.predict(X)), proba


_BOOSTED = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
)


# --- the whole pipeline --------------------------------------------------------------------


@dataclass(frozen=True)
class FastPipeline:
    """A fitted pipeline compiled into branches, shared steps after them, and the estimator."""

    branches: tuple[Branch, ...]
    after: tuple[Step, ...]
    estimator: BoostedTrees | AnyEstimator

    @property
    def categories(self) -> dict[int, tuple[str, ...]]:
        """The categories each text feature's encoder knows, by feature position."""
        return {p: c for branch in self.branches for p, c in branch.categories.items()}

    def transform(self, columns: Sequence[Any], n_rows: int) -> np.ndarray:
        parts = [branch.run(columns, n_rows) for branch in self.branches]
        X = parts[0] if len(parts) == 1 else np.hstack(parts)
        for step in self.after:
            X = step(X)
        return X

    def run(self, columns: Sequence[Any], n_rows: int, probabilities: bool) -> Output | None:
        """Predictions (and class probabilities if asked) for the coerced columns, in
        feature order; None when this request must take the plain pipeline."""
        try:
            return self.estimator.predict(self.transform(columns, n_rows), probabilities)
        except Declined:
            return None


def compile_pipeline(model: Any, names: Sequence[str], dtypes: Sequence[str]) -> FastPipeline:
    """Read a fitted pipeline (or bare estimator) whose input is the manifest's features.

    Raises:
        Unsupported: the pipeline holds something this module does not reproduce, or a fitted
            attribute it reads is not there (another scikit-learn version); the message says
            what.
    """
    try:
        return _compile(model, names, dtypes)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise Unsupported(f"reading the fitted pipeline failed: {exc!r}") from exc


def _compile(model: Any, names: Sequence[str], dtypes: Sequence[str]) -> FastPipeline:
    *pre, last = flat_steps(model)
    first = pre[0] if pre else last
    if _class_name(first) == "sklearn.compose._column_transformer.ColumnTransformer":
        branches = compile_column_transformer(pre[0], names, dtypes)
        after, kind = compile_steps(pre[1:], FLOAT)
    else:
        first_names = getattr(first, "feature_names_in_", None)
        if first_names is not None and list(first_names) != list(names):
            raise Unsupported("the pipeline was fitted on other columns than the manifest's")
        branches = [compile_branch(pre, range(len(names)), dtypes)]
        after, kind = [], FLOAT
    if not branches or kind != FLOAT:
        raise Unsupported("no columns reach the estimator as numbers")
    estimator = BoostedTrees(last) if _class_name(last) in _BOOSTED else AnyEstimator(last)
    return FastPipeline(tuple(branches), tuple(after), estimator)


# --- checking a compiled pipeline against the plain one -----------------------------------

# Manifest dtypes whose coercion accepts a null.
_NULLABLE = frozenset({"float64", "float32", "Float64", "Int64", "boolean", "str", "category",
                       "object", "string", "datetime64[ns]"})
UNSEEN = "~unseen-category~"


def probe_values(dtype: str, n_rows: int, categories: Sequence[str],
                 rng: np.random.Generator, rough: bool) -> list[Any]:
    """JSON-like values of one column for probe rows: spread numbers, the column's known
    categories and, if `rough`, unseen categories and nulls where the dtype allows them."""
    if dtype in ("float64", "float32", "Float64"):
        values = (rng.normal(size=n_rows) * 10.0 ** rng.integers(-2, 4, n_rows)).tolist()
    elif dtype in ("int64", "int32", "Int64"):
        values = rng.integers(-5, 500, n_rows).tolist()
    elif dtype in ("bool", "boolean"):
        values = (rng.random(n_rows) < 0.5).tolist()
    elif dtype.startswith("datetime64"):
        hours = rng.integers(0, 50_000, n_rows)
        values = [str(np.datetime64("2010-01-01T00:00:00") + np.timedelta64(int(h), "h"))
                  for h in hours]
    else:
        choices = [*categories, UNSEEN] if rough or not categories else list(categories)
        values = [choices[i] for i in rng.integers(0, len(choices), n_rows)]
    if rough and dtype in _NULLABLE:
        values = [None if gap else v for v, gap in zip(values, rng.random(n_rows) < 0.15,
                                                       strict=True)]
    return values


def _equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def compare(fast: FastPipeline, plain: Callable[[], Output], columns: Sequence[Any],
            n_rows: int, probabilities: bool) -> bool:
    """Whether both paths answered these columns, with equal outputs (False when the fast
    path declined them, or both refused them).

    Raises:
        Unsupported: the answers differ, or one path failed where the other did not.
    """
    try:
        got = fast.run(columns, n_rows, probabilities)
    except Exception as exc:  # noqa: BLE001 - any failure here means: do not use it
        got = exc
    if got is None:
        return False
    try:
        expected = plain()
    except (TypeError, ValueError) as exc:
        if isinstance(got, (TypeError, ValueError)):
            return False
        raise Unsupported(f"the pipeline refused rows the fast path scored: {exc}") from exc
    if isinstance(got, Exception):
        raise Unsupported(f"the fast path failed where the pipeline did not: {got!r}")
    for what, mine, theirs in zip(("predictions", "probabilities"), got, expected, strict=True):
        if not _equal(mine, theirs):
            raise Unsupported(f"{what} differ")
    return True
