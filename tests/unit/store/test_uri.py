"""bench.store.uri: the store a root URI names (a local folder, file:// or s3://), and every
other root refused in one line naming store.root."""

from __future__ import annotations

import pytest

from bench.config.checks import ConfigError
from bench.store import LocalStore, open_store


@pytest.mark.parametrize("root", ["s3://b/p", "gs://bucket", "https://example.com/x"])
def test_unsupported_or_malformed_roots_are_refused(root):
    with pytest.raises(ConfigError) as info:
        open_store(root)
    assert info.value.key == "store.root"
    assert "store.root" in str(info.value)
    assert root in str(info.value)


def test_open_store_local_roots(tmp_path):
    plain = open_store(str(tmp_path / "a"))
    assert isinstance(plain, LocalStore)
    assert plain.root == tmp_path / "a"
    via_file = open_store(f"file://{tmp_path}/b")
    assert via_file.root == tmp_path / "b"
    via_file.write_bytes("x", b"1")
    assert (tmp_path / "b" / "x").read_bytes() == b"1"


@pytest.mark.parametrize("root", ["", "   ", "file://", "s3://"])
def test_an_empty_root_is_refused_rather_than_the_current_folder(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        open_store(root)
    assert info.value.key == "store.root" and "(not empty)" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was written where the command ran


def test_an_s3_root_is_an_s3_store_of_that_bucket_and_prefix(monkeypatch):
    # only the client is made here: nothing is sent until the store is used
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from bench.store.s3 import S3Store

    store = open_store("s3://bench-results/team/runs/")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("bench-results", "team/runs")
    assert store.uri("s/manifest.json") == "s3://bench-results/team/runs/s/manifest.json"
