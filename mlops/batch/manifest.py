"""The run's manifest: which inputs (with fingerprints) became which outputs, with which model.

Written as ``_manifest.json`` in the output folder when a run ends, also when partitions
failed: they are listed under ``missing`` with the reason, so a reader of the folder knows what
it lacks. Written atomically (`mlops.data.storage.write_file`); the leading underscore keeps
it out of any listing of the folder's data (`mlops.data.storage.is_hidden_or_temp`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from mlops.batch.partitions import (
    FORMAT_VERSION,
    OutputPlan,
    Partition,
    PartitionResult,
    copied_columns,
)
from mlops.data.storage import fingerprint, url_to_fs, write_file

MANIFEST_FILE = "_manifest.json"


def build_manifest(input_url: str, plan: OutputPlan, partitions: list[Partition],
                   results: dict[str, PartitionResult], failures: dict[str, str],
                   flow_run_id: str | None = None) -> dict[str, Any]:
    """The manifest of a run over `partitions`: `results` and `failures` are keyed by input
    URL; a partition in neither was never attempted and counts as missing."""
    done, missing = [], []
    for p in partitions:
        result = results.get(p.input.url)
        entry = {"input": p.input.url, "size": p.input.size, "version": p.input.version,
                 "fingerprint": fingerprint([p.input]), "output": p.output_name}
        if result is None:
            missing.append({**entry, "error": failures.get(p.input.url, "not attempted")})
        else:
            done.append({**entry, "rows": result.rows, "failed_rows": result.failed_rows,
                         "skipped": result.skipped, "worker": result.worker})
    return {
        "format_version": FORMAT_VERSION,
        "written_at": datetime.now(UTC).isoformat(),
        "flow_run_id": flow_run_id,
        "input_url": input_url,
        "input_fingerprint": fingerprint([p.input for p in partitions]),
        "output_url": plan.output_url,
        "model": asdict(plan.model),
        "columns": {"copied": copied_columns(plan), "probabilities": plan.probabilities},
        "rows": sum(e["rows"] for e in done),
        "failed_rows": sum(e["failed_rows"] for e in done),
        "partitions": done,
        "missing": missing,
    }


def write_manifest(manifest: dict[str, Any]) -> str:
    """Write the manifest into its output folder; returns its URL."""
    fs, root = url_to_fs(manifest["output_url"])
    path = f"{root.rstrip('/')}/{MANIFEST_FILE}"
    fs.makedirs(root, exist_ok=True)
    write_file(fs, path, json.dumps(manifest, indent=2).encode())
    return f"{manifest['output_url'].rstrip('/')}/{MANIFEST_FILE}"


def read_manifest(output_url: str) -> dict[str, Any]:
    fs, root = url_to_fs(output_url)
    with fs.open(f"{root.rstrip('/')}/{MANIFEST_FILE}", "rb") as handle:
        return json.loads(handle.read())
