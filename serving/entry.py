"""What Azure ML's entry scripts share: finding the bundle Azure ML mounted for them.

Both the online deployment's ``deployments/azureml/score.py`` and the batch deployment's
``deployments/azureml/batch_score.py`` get the registered model folder as
``AZUREML_MODEL_DIR``. A bundle registered as a folder is mounted either as that folder itself
or as its one subfolder, depending on how it was registered.
"""

from __future__ import annotations

from pathlib import Path

from serving.bundle import MANIFEST_FILE


def find_bundle(model_dir: str | Path) -> Path:
    """The bundle folder inside ``AZUREML_MODEL_DIR`` (itself, or its one child with a manifest).

    Raises:
        FileNotFoundError: no manifest, or more than one bundle, under `model_dir`.
    """
    root = Path(model_dir)
    if (root / MANIFEST_FILE).exists():
        return root
    found = sorted(p.parent for p in root.glob(f"*/{MANIFEST_FILE}"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected one model bundle ({MANIFEST_FILE}) in {root} or its subfolders, "
            f"found {len(found)}"
        )
    return found[0]
