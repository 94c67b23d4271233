"""The exact names a model file may hold: what the project's pipelines are made of, nothing else.

A skops file names every class, function and type it rebuilds (``module.Name``); a loader that
trusts a name lets the file call it. This list is derived from what the project writes
(``mlops.model.features.build_pipeline`` for every estimator in `ESTIMATORS` and every
preprocessing option of the spec, plus the serving tests' toy pipeline) and
``tests/mlops/model/test_allowed_types.py`` checks both directions: every name those pipelines
hold is here, and every name here is held by one of them. Names are compared whole; a module prefix
never admits anything.
"""

from __future__ import annotations

# The estimators a spec's `model.estimator` may name, by the module that defines them (the name
# a skops file records). `mlops.model.features.build_pipeline` refuses any other.
ESTIMATORS = frozenset({
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
})

# The pipeline around the estimator (mlops/model/features.py) and the casts it calls.
PREPROCESSING = frozenset({
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "serving.transforms.to_category_array",
    "serving.transforms.to_float_array",
})

# What the estimators hold inside: trees, losses and links, binning, the label encoder.
ESTIMATOR_PARTS = frozenset({
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
})

# Containers, arrays, scalars and the random generator the objects above keep.
DATA = frozenset({
    "builtins.dict",
    "builtins.list",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random.PCG64",
    "numpy.uint64",
})

ALLOWED_TYPES = ESTIMATORS | PREPROCESSING | ESTIMATOR_PARTS | DATA
