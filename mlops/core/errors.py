"""One exception hierarchy for the whole project.

Every error a user can cause (bad data, bad spec, a worse model) is a subclass of `MlopsError`
with a message that says what was wrong, the value seen and the limit.
"""


class MlopsError(Exception):
    """Base class of every error this project raises on purpose."""


class SpecError(MlopsError):
    """The pipeline spec (YAML) is unreadable or describes something impossible."""


class DataLoadError(MlopsError):
    """The data could not be found or read (missing, empty, corrupt, unknown format)."""


class DataValidationError(MlopsError):
    """The data broke the spec's rules; the message lists every failure at once."""


class TrainingError(MlopsError):
    """The model could not be built or fitted (unknown estimator, bad parameters)."""


class ModelQualityError(MlopsError):
    """A candidate failed a floor of the promotion gate (below the spec's minimum), or cannot be
    compared with the champion at all."""


class LabelDriftError(MlopsError):
    """The new data's target moved far from the champion's training sample and the run did not
    say the shift is expected; nothing was trained."""


class TrackingError(MlopsError):
    """The MLflow tracking store could not be reached or refused a record. A run never fails on
    it: the recorder turns it into a warning (mlops/tracking/recorder.py)."""


class RecorderError(TrackingError):
    """What the recorder process reported: the store's error, as its type and message
    (mlops/tracking/process.py)."""


class RecorderGoneError(RecorderError):
    """The recorder process ended without answering (killed, crashed): the records it did not
    acknowledge go to another process (mlops/tracking/replay.py)."""


class BundleError(MlopsError):
    """A model bundle is incomplete, tampered with, or holds types we do not trust."""


class RegistryError(MlopsError):
    """The model registry refused an operation (unknown version, alias conflict)."""


class DeploymentError(MlopsError):
    """Deploying, smoke-testing or promoting a model failed; traffic was left as it was."""


class CanaryBreachError(DeploymentError):
    """A held traffic step broke the spec's guard rules; traffic went back to where it was."""


class ProvisioningError(DeploymentError):
    """A deployment did not provision; `logs` holds its containers' logs (name -> text)."""

    def __init__(self, message: str, logs: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.logs = logs or {}


class EndpointError(DeploymentError):
    """The scoring endpoint answered with an error or could not be reached."""


class EndpointUnreachableError(EndpointError):
    """The endpoint did not answer at all (refused, reset, timed out): it may be down or
    restarting, unlike an answer that refuses the call."""


class ClusterError(MlopsError):
    """A temporary Dask cluster for a batch run did not start."""


class ReportError(MlopsError):
    """A library's report (Evidently's) did not have the shape this project reads."""


def shorten(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters, with an ellipsis where it was cut.

    A bad value can be a 200 KB string; a message shows enough of it to recognise it.
    """
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
