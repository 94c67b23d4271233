"""What the tasks need of a model registry (DESIGN.md, Registry); `local` and `azureml` do it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from serving.bundle import Bundle


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    url: str
    manifest: dict[str, Any]


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
