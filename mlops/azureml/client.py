"""The Azure ML client the backends share, and how Azure's errors become ours.

Credentials never come from the spec or the settings: ``DefaultAzureCredential`` finds them in
the environment (``az login``, a managed or workload identity, or ``AZURE_CLIENT_ID`` /
``AZURE_TENANT_ID`` / ``AZURE_CLIENT_SECRET``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.ai.ml import MLClient
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from marshmallow.exceptions import ValidationError as SchemaError

from mlops.azureml.entities import AZUREML_REF, environment_entity
from mlops.core.errors import MlopsError, RegistryError
from mlops.core.spec.targets import AzureMLSpec

logger = logging.getLogger(__name__)

ROLES_HINT = "see docs/azure.md for the roles each step needs"


def credential() -> Any:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

    return DefaultAzureCredential()


def workspace_client(target: AzureMLSpec) -> MLClient:
    """A client of the spec's workspace (no call is made until an operation runs)."""
    return MLClient(
        credential(), target.subscription_id, target.resource_group, target.workspace,
        show_progress=False,
    )


def registry_client(registry_name: str) -> MLClient:
    """A client of an Azure ML registry (construction asks Azure where the registry lives)."""
    with azure_errors(RegistryError, f"reaching Azure ML registry '{registry_name}'"):
        return MLClient(credential(), registry_name=registry_name, show_progress=False)


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


@contextmanager
def azure_errors(error: type[MlopsError], doing: str) -> Iterator[None]:
    """Turn Azure's exceptions into `error`, saying what we were doing.

    Connection failures pass through unchanged, so the I/O tasks' retries handle them (the SDK
    has already retried throttling and server errors).
    """
    try:
        yield
    except (ServiceRequestError, ServiceResponseError):
        raise
    except ClientAuthenticationError as exc:
        raise error(
            f"{doing}: Azure refused the credential ({_first_line(exc)}); sign in with "
            f"`az login` or give the process an identity, and {ROLES_HINT}"
        ) from exc
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        # a long-running operation that ended Failed comes with its last poll's 200
        where = f" (HTTP {status})" if status and status >= 400 else ""
        hint = f"; {ROLES_HINT}" if status == 403 else ""
        raise error(f"{doing} failed{where}: {_first_line(exc)}{hint}") from exc
    except SchemaError as exc:
        raise error(f"{doing}: Azure ML's schema refused it: {exc.messages}") from exc


def wait(poller: Any, timeout_s: float, error: type[MlopsError], doing: str) -> Any:
    """Wait for a long-running operation; raise `error` if it fails or outlasts `timeout_s`."""
    with azure_errors(error, doing):
        result = poller.result(timeout=timeout_s)
        if not poller.done():
            raise error(f"{doing}: not finished after {timeout_s / 60:.0f} min")
    return result


def ensure_environment(ml_client: MLClient, target: AzureMLSpec, error: type[MlopsError]) -> str:
    """The environment reference for deployments and jobs, registering it if it is new.

    Its version is a digest of its content, so an unchanged environment is never registered (or
    built by Azure) twice.
    """
    if target.environment and target.environment.startswith(AZUREML_REF):
        return target.environment
    with azure_errors(error, f"reading environment {target.environment or 'definition'}"):
        env = environment_entity(target)
    reference = f"{AZUREML_REF}{env.name}:{env.version}"
    with azure_errors(error, f"registering environment {reference}"):
        try:
            ml_client.environments.get(name=env.name, version=env.version)
        except ResourceNotFoundError:
            ml_client.environments.create_or_update(env)
            logger.info("Registered environment %s", reference)
    return reference
