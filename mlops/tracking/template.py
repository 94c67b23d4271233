"""A new SQLite store as a copy of an empty, migrated one, instead of migrating it again.

MLflow creates a new SQLite store by running its whole chain of schema migrations (alembic,
some seventy steps): about a second of CPU in the recorder process, on every new state folder,
while the flow trains. The schema depends only on MLflow's version and its migration files, so
the first new store of that schema is also saved, empty, in a cache folder (`template_folder`,
one file per `schema_key`), and every later new store starts as a copy of it. MLflow still checks
the copy's schema when it opens it, as for any store.

The template holds no experiment: whoever opens the copy first adds the ``Default``
experiment, MLflow (with the artifact root it is given, as for a store it migrated itself) or
`sqlite_store` (under the store's artifact root).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

# MLflow's experiment created on a store's first opening; dropped from the template
DEFAULT_EXPERIMENT_ID = 0


def schema_key(version: str, migrations: Path) -> str:
    """What the empty schema depends on: MLflow's version and the names of its migrations."""
    names = "\n".join(sorted(p.name for p in migrations.glob("*.py")))
    return f"{version}-{hashlib.sha256(names.encode()).hexdigest()[:12]}"


def installed_schema_key() -> str | None:
    """`schema_key` of the installed MLflow, read from its files without importing it (its
    import costs seconds); None when MLflow is not installed."""
    found = importlib.util.find_spec("mlflow")
    if found is None or not found.submodule_search_locations:
        return None
    package = Path(found.submodule_search_locations[0])
    version = re.search(r'^VERSION = "([^"]+)"', (package / "version.py").read_text(), re.M)
    if version is None:
        return None
    return schema_key(version[1], package / "store" / "db_migrations" / "versions")


def template_folder() -> Path:
    """Where the templates live: ``$XDG_CACHE_HOME/mlops/mlflow-store`` (``~/.cache`` by
    default), shared by every state folder of this user."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlops" / "mlflow-store"


def _publish(source: Path, final: Path) -> None:
    """Put a copy of `source` at `final` whole or not at all; a `final` that appeared
    meanwhile (another run's) is kept."""
    part = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
    try:
        shutil.copyfile(source, part)
        with contextlib.suppress(FileExistsError):
            os.link(part, final)
    finally:
        part.unlink(missing_ok=True)


def _make_template(key: str, migrate: Callable[[str], None]) -> Path:
    folder = template_folder()
    template = folder / f"{key}.db"
    if template.exists():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".{uuid.uuid4().hex}.db"
    try:
        migrate(f"sqlite:///{scratch}")
        with contextlib.closing(sqlite3.connect(scratch)) as db, db:
            db.execute("DELETE FROM experiments WHERE experiment_id = ?",
                       (DEFAULT_EXPERIMENT_ID,))
        _publish(scratch, template)
    finally:
        scratch.unlink(missing_ok=True)
    return template


def seed_from_template(database: Path, key: str) -> bool:
    """Make `database` a copy of the template for `key` if that template exists; returns
    whether `database` exists now (another run may have made it meanwhile)."""
    template = template_folder() / f"{key}.db"
    if not template.exists():
        return database.exists()
    database.parent.mkdir(parents=True, exist_ok=True)
    _publish(template, database)
    return True


def seed_store(database: Path, key: str, migrate: Callable[[str], None]) -> bool:
    """Make `database`, if it does not exist, a copy of the template for `key`; `migrate`
    creates a store at a ``sqlite:///`` URI the first time (MLflow opening it). Returns whether
    it made the copy; an existing database is left alone."""
    if database.exists():
        return False
    template = _make_template(key, migrate)
    database.parent.mkdir(parents=True, exist_ok=True)
    _publish(template, database)
    return True
