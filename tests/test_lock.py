"""The lock file must be generated from the current requirements.in (`make lock`)."""

import hashlib
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _direct_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.in").read_text().splitlines()
    return [Requirement(line) for line in (ln.split("#")[0].strip() for ln in lines) if line]


def _pins() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {
        canonicalize_name(m[1]): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, re.MULTILINE)
    }


def test_lock_records_the_digest_of_requirements_in():
    digest = hashlib.sha256((ROOT / "requirements.in").read_bytes()).hexdigest()
    header = re.search(r"# requirements.in sha256: (\w+)", (ROOT / "requirements.lock").read_text())
    assert header, "requirements.lock has no requirements.in digest: run `make lock`"
    assert header[1] == digest, "requirements.in changed since the lock was made: run `make lock`"


def test_every_direct_requirement_is_pinned_within_its_range():
    pins = _pins()
    for req in _direct_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} is outside '{req.specifier}': run `make lock`"
        )


def test_every_pin_carries_a_hash():
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split()[0] and "--hash=" not in b]
    assert not unhashed, f"pins without hashes: {unhashed}"
