"""serving/model_roots.py: blob prefixes and local folders, compared after normalising."""

from __future__ import annotations

import pytest

from serving.errors import ModelUrlRefused
from serving.model_roots import check_model_url, parse_root

ROOTS = [parse_root("abfs://models/registry/"), parse_root("/srv/registry")]


@pytest.mark.parametrize("url", [
    "abfs://models/registry/churn/3", "az://models/registry/churn/3",
    "abfs://models//registry/./churn/3", "/srv/registry/churn/1", "file:///srv/registry/m/2",
    "/srv/registry/../registry/m/2",
])
def test_urls_under_a_root_are_accepted(url):
    check_model_url(url, ROOTS)


@pytest.mark.parametrize("url", [
    "abfs://models/registry-old/churn/3", "abfs://models/registry/../secrets/m/1",
    "abfs://other/registry/churn/3", "https://models.blob.core.windows.net/registry/churn/3",
    "s3://models/registry/churn/3", "/srv/registry-old/m/1", "/srv/registry/../m/1", "",
])
def test_other_urls_are_refused(url):
    with pytest.raises(ModelUrlRefused, match="not under an allowed model location"):
        check_model_url(url, ROOTS)


@pytest.mark.parametrize("root", ["http://host/registry", "memory://r", "abfs://", "s3://b/r"])
def test_a_root_must_be_a_folder_or_a_blob_prefix(root):
    with pytest.raises(ValueError, match="must be a local folder or an abfs:// prefix"):
        parse_root(root)
