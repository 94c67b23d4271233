"""serving.entry: the bundle Azure ML mounted, as both entry scripts find it."""

from __future__ import annotations

import pytest

from serving.bundle import MANIFEST_FILE
from serving.entry import find_bundle


def _bundle(folder):
    folder.mkdir(parents=True)
    (folder / MANIFEST_FILE).write_text("{}")
    return folder


def test_the_model_folder_itself_is_the_bundle(tmp_path):
    _bundle(tmp_path / "model" / "inner")  # ignored: the folder itself holds a manifest
    (tmp_path / "model" / MANIFEST_FILE).write_text("{}")
    assert find_bundle(tmp_path / "model") == tmp_path / "model"


def test_the_one_subfolder_with_a_manifest_is_the_bundle(tmp_path):
    (tmp_path / "model" / "notes").mkdir(parents=True)
    bundle = _bundle(tmp_path / "model" / "bundle")
    assert find_bundle(str(tmp_path / "model")) == bundle


@pytest.mark.parametrize("bundles", [0, 2])
def test_none_or_several_bundles_are_refused(tmp_path, bundles):
    (tmp_path / "model").mkdir()
    for i in range(bundles):
        _bundle(tmp_path / "model" / f"b{i}")
    with pytest.raises(FileNotFoundError,
                       match=f"expected one model bundle .* in .*model .*found {bundles}"):
        find_bundle(tmp_path / "model")


def test_a_bundle_two_levels_down_is_not_found(tmp_path):
    _bundle(tmp_path / "model" / "a" / "b")
    with pytest.raises(FileNotFoundError, match="found 0"):
        find_bundle(tmp_path / "model")
