"""The local results store: atomic writes, listing, versions, compare-and-swap, file modes.
(Where files go: test_paths.py; which store a root names: test_uri.py; tables: test_base.py.)"""

from __future__ import annotations

import os
import stat

import pytest

from bench.store import LocalStore, StoreError


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path / "root"))


def test_write_creates_folders_and_leaves_no_temp_files(store):
    store.write_bytes("s/cells/a.parquet", b"hello")
    folder = store.root / "s" / "cells"
    assert os.listdir(folder) == ["a.parquet"]
    assert store.read_bytes("s/cells/a.parquet") == b"hello"
    assert store.exists("s/cells/a.parquet")
    assert not store.exists("s/cells/b.parquet")


def test_overwrite_replaces_the_content(store):
    store.write_bytes("x.bin", b"first, and longer")
    store.write_bytes("x.bin", b"second")
    assert store.read_bytes("x.bin") == b"second"
    assert os.listdir(store.root) == ["x.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(store, monkeypatch):
    store.write_bytes("x.bin", b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StoreError, match=r"cannot write .*x.bin: disk full"):
        store.write_bytes("x.bin", b"new")
    monkeypatch.undo()
    assert store.read_bytes("x.bin") == b"old"
    assert os.listdir(store.root) == ["x.bin"]


def test_list_ignores_dotfiles_temp_files_and_folders(store):
    store.write_bytes("s/cells/b.parquet", b"b")
    store.write_bytes("s/cells/a.parquet", b"a")
    store.write_bytes("s/cells/notes.txt", b"n")
    cells = store.root / "s" / "cells"
    (cells / ".a.parquet.abc123.tmp").write_bytes(b"half")  # an interrupted write
    (cells / ".hidden.parquet").write_bytes(b"h")
    (cells / "sub.parquet").mkdir()
    assert store.list("s/cells", ".parquet") == ["s/cells/a.parquet", "s/cells/b.parquet"]
    assert store.list("s/cells") == [
        "s/cells/a.parquet",
        "s/cells/b.parquet",
        "s/cells/notes.txt",
    ]
    assert store.list("s/nothing-here", ".parquet") == []


def test_delete(store):
    store.write_bytes("x.bin", b"x")
    store.delete("x.bin")
    assert not store.exists("x.bin")
    store.delete("x.bin")  # deleting what is gone is fine


def test_uri_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = LocalStore("relative/results")
    assert store.root == tmp_path / "relative" / "results"
    assert store.uri("s/manifest.json") == str(tmp_path / "relative/results/s/manifest.json")


def test_create_is_exclusive_and_replace_if_is_compare_and_swap(tmp_path):
    store = LocalStore(str(tmp_path))
    assert store.create("s/leases/c.json", b"first")
    assert not store.create("s/leases/c.json", b"second")
    data, version = store.read_versioned("s/leases/c.json")
    assert data == b"first"
    assert store.replace_if("s/leases/c.json", b"mine", version)
    assert not store.replace_if("s/leases/c.json", b"late", version)  # read before "mine"
    assert store.read_bytes("s/leases/c.json") == b"mine"
    assert sorted(p.name for p in (tmp_path / "s" / "leases").iterdir()) == ["c.json"]


def test_files_get_the_users_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        store = LocalStore(str(tmp_path))
        store.write_bytes("s/a.bin", b"x")
        store.create("s/b.bin", b"y")
    finally:
        os.umask(previous)
    for name in ("a.bin", "b.bin"):
        assert stat.S_IMODE((tmp_path / "s" / name).stat().st_mode) == 0o644


def test_list_tree_descends_and_skips_temp_files(tmp_path):
    store = LocalStore(str(tmp_path))
    store.write_bytes("s/cells/old.parquet", b"1")
    store.write_bytes("s/cells/c1/a.ok.parquet", b"2")
    (tmp_path / "s" / "cells" / "c1" / ".a.ok.parquet.x.tmp").write_bytes(b"half")
    assert store.list_tree("s/cells", ".parquet") == [
        "s/cells/c1/a.ok.parquet",
        "s/cells/old.parquet",
    ]
    assert store.list_tree("s/nothing") == []
    assert store.has_files("s/cells", ".parquet")
    assert not store.has_files("s/cells", ".json")
    assert not store.has_files("s/nothing", ".parquet")
    (tmp_path / "s" / "cells" / "c2" / ".hidden").mkdir(parents=True)
    (tmp_path / "s" / "cells" / "c2" / ".hidden" / "x.parquet").write_bytes(b"3")
    assert "s/cells/c2/.hidden/x.parquet" not in store.list_tree("s/cells", ".parquet")


def test_versions_change_when_a_file_is_rewritten(tmp_path):
    store = LocalStore(str(tmp_path))
    store.write_bytes("s/cells/c1/a.ok.parquet", b"1")
    before = store.list_versions("s/cells", ".parquet")
    store.write_bytes("s/cells/c1/a.ok.parquet", b"22")
    after = store.list_versions("s/cells", ".parquet")
    assert list(after) == ["s/cells/c1/a.ok.parquet"]
    assert after != before
