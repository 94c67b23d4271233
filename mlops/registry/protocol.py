"""What the tasks need of a model registry (DESIGN.md, Registry); `local` and `azureml` do it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from mlops.registry.releases import Release
    from serving.bundle import Bundle


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    url: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class NewVersion:
    """What a registry writes for a new version: the model file, its features and lineage, the
    reference sample for drift checks, the trusted holdout it was judged on and the snapshot of
    its fast path (`mlops.model.bundle.fast_path_snapshot`)."""

    model_bytes: bytes
    features: list[dict[str, str]]
    lineage: dict[str, Any]
    reference: pd.DataFrame
    holdout: pd.DataFrame | None = None
    fast_path: bytes | None = None


class RegistryWriter:
    """`register` with the protocol's signature, once; a backend implements `_register`."""

    def register(
        self, name: str, *, model_bytes: bytes, features: list[dict[str, str]],
        lineage: dict[str, Any], reference: pd.DataFrame, holdout: pd.DataFrame | None = None,
        fast_path: bool = True,
    ) -> ModelVersion:
        """Write a new version of `name` and return it; it is visible only once complete.

        With `fast_path` the bundle carries a snapshot of the model's fast path when it has one
        (`mlops.model.bundle.fast_path_snapshot`): batch processes then score without loading
        the model (docs/batch-scoring.md).
        """
        from mlops.model.bundle import fast_path_snapshot  # noqa: PLC0415

        task = lineage.get("task")
        snapshot = (fast_path_snapshot(name, model_bytes, features, task)
                    if fast_path and isinstance(task, str) else None)
        return self._register(name, NewVersion(model_bytes, features, lineage, reference, holdout,
                                               snapshot))

    def _register(self, name: str, new: NewVersion) -> ModelVersion:
        raise NotImplementedError


class Registry(Protocol):
    """Numbered, immutable model versions and the `champion` alias (DESIGN.md, Registry)."""

    def versions(self, name: str) -> list[int]: ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def load(self, name: str, version: int) -> Bundle: ...

    def bundle_url(self, name: str, version: int) -> str: ...

    def holdout(self, name: str, version: int) -> pd.DataFrame | None: ...

    def register(
        self, name: str, *, model_bytes: bytes, features: list[dict[str, str]],
        lineage: dict[str, Any], reference: pd.DataFrame, holdout: pd.DataFrame | None = None,
    ) -> ModelVersion: ...

    def alias(self, name: str, alias: str = ...) -> int | None: ...

    def set_alias(self, name: str, version: int, alias: str = ...) -> None: ...

    def append_release(self, release: Release) -> None: ...

    def releases(self, name: str) -> list[Release]: ...
