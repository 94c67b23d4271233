"""``mlops status``: the local stack's processes, or with ``--spec`` a model's release state."""

from __future__ import annotations

import logging

from mlops.core.settings import Settings
from mlops.core.spec import load_spec
from mlops.registry.backend import registry_for
from mlops.release.status import endpoint_view, status_markdown
from tools import stack

logger = logging.getLogger(__name__)


def status(settings: Settings, spec_path: str | None = None) -> str | None:
    """Say which stack processes run; with a spec, the model's champion, traffic table,
    deployments and last releases instead.

    Args:
        spec_path: A model's pipeline spec (YAML): show where its releases stand.
    """
    if spec_path is None:
        stack.status(settings)
        return None
    spec = load_spec(spec_path)
    registry = registry_for(spec, settings)
    text = status_markdown(spec.model_name, registry.alias(spec.model_name),
                           endpoint_view(spec, settings),
                           registry.releases(spec.model_name))
    logger.info("%s", text)
    return text
