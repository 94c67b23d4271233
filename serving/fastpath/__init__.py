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
  scikit-learn does, without its input checks; batches of `COMPILED_MIN_ROWS` rows or more
  take a numba-compiled kernel (`compiled`) when numba is installed. Any other estimator gets
  the transformed array through its own ``predict``.

Anything else (another step type, sparse output, infrequent or dropped categories, a dtype the
readers do not know) makes `compile_pipeline` raise `Unsupported`, and the scoring core keeps
the plain pipeline. A request that the fast path cannot answer exactly as the pipeline would
(an unknown category where the encoder raises, an infinite number a step would refuse) is
`Declined` and goes the plain way, so errors stay the pipeline's own.
The package: `common` (kinds, the two refusals), `readers`, `steps` (numpy transformers),
`branches`, `trees` (HistGradientBoosting walked with numpy), `compiled` (the batch kernel),
`pipeline` (`compile_pipeline`), `probe` (values and comparison for the check at load) and
`snapshot` (a compiled pipeline as arrays and JSON, read back without scikit-learn).
``MLOPS_ENDPOINT_FAST_PATH=false`` turns the fast path off (``serving.config``).
tests/serving/test_fastpath.py checks equality over many random requests.
"""

from serving.fastpath.common import Declined, Unsupported
from serving.fastpath.pipeline import FastPipeline, compile_pipeline
from serving.fastpath.probe import compare, probe_values
from serving.fastpath.trees import COMPILED_MIN_ROWS, WALK_MAX_ROWS

__all__ = ["COMPILED_MIN_ROWS", "WALK_MAX_ROWS", "Declined", "FastPipeline", "Unsupported",
           "compare", "compile_pipeline", "probe_values"]
