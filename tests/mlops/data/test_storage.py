"""Listing and fingerprinting data files by URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops.core.errors import DataLoadError
from mlops.data.storage import (
    FileInfo,
    fingerprint,
    is_hidden_or_temp,
    list_data_files,
    storage_options,
    url_to_fs,
)


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A folder of partitions with the bookkeeping files real writers leave behind."""
    root = tmp_path / "lake"
    _touch(root / "part-00001.parquet")
    _touch(root / "part-00000.parquet")
    _touch(root / "date=2024-01-01" / "part-00002.pq")
    _touch(root / "extra.csv")
    _touch(root / "_SUCCESS")
    _touch(root / ".part-00003.parquet.crc")
    _touch(root / "_temporary" / "part-00004.parquet")
    _touch(root / ".hidden" / "part-00005.parquet")
    _touch(root / "part-00006.parquet.tmp")
    _touch(root / "upload.parquet.part")
    _touch(root / "notes.txt")
    return root


def _names(files: list[FileInfo], root: Path) -> list[str]:
    return [Path(f.url).relative_to(root).as_posix() for f in files]


def test_single_file(lake: Path) -> None:
    files = list_data_files(str(lake / "part-00000.parquet"))
    assert [f.url for f in files] == [str(lake / "part-00000.parquet")]
    assert files[0].size == 1
    assert files[0].version


def test_folder_is_recursive_sorted_and_skips_bookkeeping(lake: Path) -> None:
    files = list_data_files(str(lake))
    assert _names(files, lake) == [
        "date=2024-01-01/part-00002.pq",
        "extra.csv",
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_format_filters_the_folder(lake: Path) -> None:
    assert _names(list_data_files(str(lake), fmt="csv"), lake) == ["extra.csv"]
    assert "extra.csv" not in _names(list_data_files(str(lake), fmt="parquet"), lake)


def test_glob_skips_hidden_folders(lake: Path) -> None:
    files = list_data_files(str(lake / "**" / "*.parquet"))
    assert _names(files, lake) == ["part-00000.parquet", "part-00001.parquet"]


def test_relative_path_and_file_url(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(lake.parent)
    relative = list_data_files("lake/part-00000.parquet")
    as_url = list_data_files(f"file://{lake}/part-00000.parquet")
    assert relative == as_url
    assert Path(relative[0].url).is_absolute()


def test_missing_path_names_the_url(tmp_path: Path) -> None:
    url = str(tmp_path / "nowhere")
    with pytest.raises(DataLoadError, match="nowhere.*does not exist"):
        list_data_files(url)


def test_folder_without_data_files(tmp_path: Path) -> None:
    _touch(tmp_path / "data" / "_SUCCESS")
    with pytest.raises(DataLoadError, match="no parquet or csv data files at .*data"):
        list_data_files(str(tmp_path / "data"))


def test_glob_without_matches(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="no parquet data files"):
        list_data_files(str(tmp_path / "*.parquet"), fmt="parquet")


def test_single_file_of_unknown_format(lake: Path) -> None:
    with pytest.raises(DataLoadError, match="cannot tell the format"):
        list_data_files(str(lake / "notes.txt"))
    assert len(list_data_files(str(lake / "notes.txt"), fmt="csv")) == 1


def test_unknown_format_is_refused(lake: Path) -> None:
    with pytest.raises(DataLoadError, match="unknown data format 'json'"):
        list_data_files(str(lake), fmt="json")


@pytest.mark.parametrize(
    ("path", "skipped"),
    [
        ("part-0.parquet", False),
        ("year=2024/part-0.parquet", False),
        ("_SUCCESS", True),
        ("_temporary/0/part-0.parquet", True),
        (".part-0.parquet.crc", True),
        ("part-0.parquet.tmp", True),
        ("part-0.parquet.PART", True),
    ],
)
def test_is_hidden_or_temp(path: str, skipped: bool) -> None:
    assert is_hidden_or_temp(path) is skipped


class TestFingerprint:
    def test_stable_when_nothing_changes(self, lake: Path) -> None:
        assert fingerprint(list_data_files(str(lake))) == fingerprint(list_data_files(str(lake)))

    def test_order_of_files_does_not_matter(self, lake: Path) -> None:
        files = list_data_files(str(lake))
        assert fingerprint(files) == fingerprint(list(reversed(files)))

    def test_changes_with_size(self, lake: Path) -> None:
        before = fingerprint(list_data_files(str(lake)))
        target = lake / "part-00000.parquet"
        stat = target.stat()
        target.write_bytes(b"xx")
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, new size
        assert fingerprint(list_data_files(str(lake))) != before

    def test_changes_with_mtime(self, lake: Path) -> None:
        before = fingerprint(list_data_files(str(lake)))
        target = lake / "part-00000.parquet"
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        assert fingerprint(list_data_files(str(lake))) != before

    def test_changes_when_a_file_appears(self, lake: Path) -> None:
        before = fingerprint(list_data_files(str(lake)))
        _touch(lake / "part-00009.parquet")
        assert fingerprint(list_data_files(str(lake))) != before

    def test_uses_metadata_not_bytes(self) -> None:
        files = [FileInfo("abfs://c/a.parquet", 10, "0x8DC")]
        assert fingerprint(files) == fingerprint([FileInfo("abfs://c/a.parquet", 10, "0x8DC")])
        assert fingerprint(files) != fingerprint([FileInfo("abfs://c/a.parquet", 10, "0x8DD")])


class TestStorageOptions:
    @pytest.fixture(autouse=True)
    def _clean_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in (
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY",
        ):
            monkeypatch.delenv(name, raising=False)

    def test_local_needs_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "secret")
        assert storage_options("data/x.parquet") == {}
        assert storage_options("file:///data/x.parquet") == {}

    def test_connection_string_first(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
        assert storage_options("abfs://c/x") == {"connection_string": "UseDevelopmentStorage=true"}

    def test_account_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "k3y")
        assert storage_options("az://c/x") == {"account_name": "acct", "account_key": "k3y"}

    def test_default_credential(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
        assert storage_options("abfs://c/x") == {"account_name": "acct", "anon": False}


def test_url_to_fs_unknown_scheme() -> None:
    with pytest.raises(DataLoadError, match="cannot open storage for nosuch://"):
        url_to_fs("nosuch://bucket/x")
