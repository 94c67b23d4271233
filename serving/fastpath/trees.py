"""HistGradientBoosting walked with numpy, and any other estimator on the transformed array."""

from __future__ import annotations

import importlib.util
from functools import cache, cached_property
from types import ModuleType
from typing import Any

import numpy as np

from serving.fastpath.common import Declined, FlatTrees, Output, Unsupported

# Up to this many rows all trees are walked at once with numpy; beyond it the fitted tree
# predictors run one by one (their per-call set-up is then small against the work). Measured
# on the benchmark's model (100 trees of up to 31 leaves): the walk is 8x faster for one row,
# 1.3x for 100, even at about 200.
WALK_MAX_ROWS = 128
# From this many rows on (a batch's, never an endpoint request's) the trees are walked by the
# numba-compiled kernel of `serving.fastpath.compiled`, if numba is installed (about a quarter of
# scikit-learn's CPU time per row, docs/batch-scoring.md). Below it, importing numba and
# loading the kernel (about a second) would cost more than it saves.
COMPILED_MIN_ROWS = 20_000
_SET_ASIDE_EVERY = 4
_WALK_SLICE_ROWS = 4096  # rows walked at once by a restored forest without numba


class Forest:
    """A fitted HistGradientBoosting model's trees as flat arrays.

    Leaves point to themselves, so walking every tree for as many levels as the deepest one
    has leaves each tree at its leaf. The leaf values are then added in scikit-learn's order
    (the baseline, then iteration by iteration) with a cumulative sum, which adds left to right
    exactly as its loop does.

    A forest read back from a snapshot (`restored`) has the arrays only, not scikit-learn's
    tree predictors: it walks more than `WALK_MAX_ROWS` rows with the compiled kernel, or
    without numba with the numpy walk in slices, both with the same sums.
    """

    ARRAYS = ("baseline", "children", "feature", "threshold", "nan_right", "value", "is_leaf",
              "roots", "tree_depth")

    def __init__(self, estimator: Any) -> None:
        if getattr(estimator, "_preprocessor", None) is not None or getattr(
            estimator, "is_categorical_", None
        ) is not None:
            raise Unsupported("HistGradientBoosting with categorical features")
        self.predictors = [p for iteration in estimator._predictors for p in iteration]
        self.per_iteration = int(estimator.n_trees_per_iteration_)
        self.n_features = int(estimator.n_features_in_)
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(
            1, 1, self.per_iteration
        )
        flat = FlatTrees(self.predictors)
        nodes, starts, leaf, left, right = flat.nodes, flat.starts, flat.leaf, flat.left, flat.right
        if nodes["is_categorical"].any():
            raise Unsupported("HistGradientBoosting with categorical splits")
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
        self.tree_depth = np.array([p.nodes["depth"].max() for p in self.predictors],
                                   dtype=np.intp)
        self.depth = int(self.tree_depth.max())
        self.known_bitsets = estimator._bin_mapper.make_known_categories_bitsets()
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads  # noqa: PLC0415

        self._threads = _openmp_effective_n_threads

    @classmethod
    def restored(cls, per_iteration: int, n_features: int, arrays: dict[str, np.ndarray],
                 ) -> Forest:
        """A forest from its `ARRAYS` (as a snapshot keeps them), without scikit-learn.

        Raises:
            Unsupported: an array is missing or the node tables do not fit together.
        """
        forest = cls.__new__(cls)
        forest.predictors, forest.known_bitsets = None, None
        forest.per_iteration, forest.n_features = int(per_iteration), int(n_features)
        missing = [name for name in cls.ARRAYS if name not in arrays]
        if missing:
            raise Unsupported(f"a restored forest lacks {missing}")
        for name in cls.ARRAYS:
            setattr(forest, name, arrays[name])
        nodes = len(forest.value)
        if not (len(forest.children) == len(forest.feature) == len(forest.threshold) == nodes
                and len(forest.roots) == len(forest.tree_depth) > 0
                and forest.baseline.shape == (1, 1, forest.per_iteration)
                and int(forest.children.max()) < nodes and int(forest.roots.max()) < nodes):
            raise Unsupported("a restored forest's node tables do not fit together")
        forest.depth = int(forest.tree_depth.max())
        return forest

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Sum of the leaf values, shape (rows, trees per iteration), as `_raw_predict`."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise Declined("the transformed rows do not have the model's width")
        X = np.ascontiguousarray(X, dtype=np.float64)
        n_rows = X.shape[0]
        many = n_rows > WALK_MAX_ROWS
        if (n_rows >= COMPILED_MIN_ROWS or many and self.predictors is None) and (
                tables := self._tables) is not None:
            raw = np.empty((n_rows, self.per_iteration), dtype=np.float64, order="F")
            raw[:] = self.baseline[0]
            tables.add_leaves(X, raw)
            return raw
        if many and self.predictors is not None:
            return self._tree_by_tree(X)
        if many:  # restored, without numba
            return np.asfortranarray(np.concatenate(
                [self._walked(X[i:i + _WALK_SLICE_ROWS]) for i in range(0, n_rows,
                                                                       _WALK_SLICE_ROWS)]))
        return np.asfortranarray(self._walked(X))

    def _walked(self, X: np.ndarray) -> np.ndarray:
        values = self.value.take(self._leaves(X)).reshape(X.shape[0], -1, self.per_iteration)
        first = np.broadcast_to(self.baseline, (X.shape[0], 1, self.per_iteration))
        return np.cumsum(np.concatenate([first, values], axis=1), axis=1)[:, -1, :]

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

    @cached_property
    def _tables(self) -> Any:
        """The compiled kernel's tables (`serving.fastpath.compiled.Tables`), or None without
        numba. Built on the first large batch, so the endpoint never builds them."""
        compiled = compiled_kernel()
        return None if compiled is None else compiled.tables_for(self)

    def without_kernel(self) -> None:
        """Walk with numpy where the compiled kernel would walk, without importing numba: for
        a check that reads a snapshot back (`serving.scoring.Scorer.snapshot` at
        registration). The two walks give bit-identical sums
        (tests/serving/test_fastpath_snapshot.py)."""
        self.__dict__["_tables"] = None  # what the cached property holds without numba

    def prepare_compiled(self) -> None:
        """Import and load the compiled kernel and build its tables now, off a batch's
        critical path (`mlops.batch.run.preload`)."""
        _ = self._tables

    def _tree_by_tree(self, X: np.ndarray) -> np.ndarray:
        raw = np.zeros((X.shape[0], self.per_iteration), dtype=np.float64, order="F")
        raw += self.baseline[0]
        known, feature_map = self.known_bitsets
        threads = self._threads()  # as scikit-learn decides it for this thread
        for i, predictor in enumerate(self.predictors):
            raw[:, i % self.per_iteration] += predictor.predict(X, known, feature_map, threads)
        return raw


def kernel_installed() -> bool:
    """Whether numba is installed, so that batches can take the compiled kernel (without
    importing it)."""
    return importlib.util.find_spec("numba") is not None


@cache
def compiled_kernel() -> ModuleType | None:
    """`serving.fastpath.compiled` (numba imported, the kernel compiled or loaded from numba's
    cache), or None if numba is not installed. Any other failure to import it is raised."""
    if not kernel_installed():
        return None
    from serving.fastpath import compiled  # noqa: PLC0415 - numba only for batches

    compiled.warm()
    return compiled


def _expit(raw: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # noqa: PLC0415 - what scikit-learn's logit link calls

    return expit(raw)


def _binomial_proba(raw: np.ndarray) -> np.ndarray:
    """``HalfBinomialLoss.predict_proba``, step by step."""
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw.squeeze(1)
    proba = np.empty((raw.shape[0], 2), dtype=raw.dtype)
    proba[:, 1] = _expit(raw)
    proba[:, 0] = 1 - proba[:, 1]
    return proba


def _softmax(raw: np.ndarray) -> np.ndarray:
    """``HalfMultinomialLoss.predict_proba`` (scikit-learn's ``softmax``), step by step."""
    X = np.asarray(raw, copy=True)
    X -= np.reshape(np.max(X, axis=1), (-1, 1))
    np.exp(X, out=X)
    X /= np.reshape(np.sum(X, axis=1), (-1, 1))
    return X


# The losses whose output a restored model computes itself: loss class -> (link name, the
# regressor's inverse link, the classifier's probabilities). Verified against scikit-learn's
# own on the probe rows before a snapshot is kept (`serving.fastpath.snapshot`).
_LOSS = "sklearn._loss.loss."
LINKS: dict[str, tuple[Any, Any]] = {
    "identity": (lambda raw: raw, None),
    "log": (np.exp, None),
    "binomial": (None, _binomial_proba),
    "multinomial": (None, _softmax),
}
LINK_OF = {
    **{f"{_LOSS}{name}": "identity" for name in (
        "HalfSquaredError", "AbsoluteError", "PinballLoss", "HuberLoss",
        "HalfTweedieLossIdentity")},
    **{f"{_LOSS}{name}": "log" for name in ("HalfPoissonLoss", "HalfGammaLoss",
                                             "HalfTweedieLoss")},
    f"{_LOSS}HalfBinomialLoss": "binomial",
    f"{_LOSS}HalfMultinomialLoss": "multinomial",
}


class BoostedTrees:
    """HistGradientBoosting's predict and predict_proba on a walked `Forest`.

    A live one calls the fitted loss; a restored one (`restored`) computes the loss's output
    by its `link` name, with the same numpy and scipy calls.
    """

    def __init__(self, estimator: Any) -> None:
        self.forest = Forest(estimator)
        loss = estimator._loss
        self.link = LINK_OF.get(f"{type(loss).__module__}.{type(loss).__qualname__}")
        self.classes = getattr(estimator, "classes_", None)
        self._inverse = loss.link.inverse
        self._proba = None if self.classes is None else loss.predict_proba

    @classmethod
    def restored(cls, forest: Forest, link: str, classes: np.ndarray | None) -> BoostedTrees:
        """Raises: Unsupported: a link name this module does not compute."""
        if link not in LINKS:
            raise Unsupported(f"a restored model with link {link!r}")
        trees = cls.__new__(cls)
        trees.forest, trees.link, trees.classes = forest, link, classes
        trees._inverse, trees._proba = LINKS[link]
        if (classes is None) != (trees._proba is None):
            raise Unsupported(f"link {link!r} with classes {classes!r}")
        return trees

    def predict(self, X: np.ndarray, probabilities: bool) -> Output:
        raw = self.forest.raw(X)
        if self.classes is None:
            return self._inverse(raw.ravel()), None
        if raw.shape[1] == 1:
            encoded = (raw.ravel() > 0).astype(int)
        else:
            encoded = np.argmax(raw, axis=1)
        proba = self._proba(raw) if probabilities else None
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


BOOSTED = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
)
