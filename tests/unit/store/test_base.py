"""bench.store.base: what every store is. A store must implement the whole interface; the
defaults it inherits (a sorted tree from the listing, whether any file is there, tables as
Parquet through its bytes) hold for any implementation, here the smallest one, a dict."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from bench.store import LocalStore, Store


class DictStore(Store):
    """Every file in a dict: the least a store implements, inheriting every default."""

    def __init__(self) -> None:
        self.root_uri = "mem://"
        self.files: dict[str, bytes] = {}
        self.writes = 0

    def uri(self, rel: str) -> str:
        return f"mem://{rel}"

    def exists(self, rel: str) -> bool:
        return rel in self.files

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.writes += 1
        self.files[rel] = data

    def read_bytes(self, rel: str) -> bytes:
        if rel not in self.files:
            raise FileNotFoundError(self.uri(rel))
        return self.files[rel]

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        prefix = rel_dir.rstrip("/") + "/"
        return sorted(k for k in self.files if k.startswith(prefix) and "/" not in k[len(prefix) :])

    def folders(self) -> list[str]:
        return sorted({k.split("/", 1)[0] for k in self.files if "/" in k})

    def list_versions(self, rel_dir: str, suffix: str = "") -> dict[str, str]:
        prefix = rel_dir.rstrip("/") + "/"
        return {
            k: str(len(v))
            for k, v in reversed(self.files.items())  # unsorted on purpose
            if k.startswith(prefix) and k.endswith(suffix)
        }

    def delete(self, rel: str) -> None:
        self.files.pop(rel, None)

    def create(self, rel: str, data: bytes) -> bool:
        if rel in self.files:
            return False
        self.files[rel] = data
        return True

    def read_versioned(self, rel: str) -> tuple[bytes, str]:
        data = self.read_bytes(rel)
        return data, str(hash(data))

    def replace_if(self, rel: str, data: bytes, version: str) -> bool:
        if self.read_versioned(rel)[1] != version:
            return False
        self.files[rel] = data
        return True


def _table() -> pa.Table:
    return pa.table(
        {
            "cell_id": pa.array(["a", "b", None], pa.string()),
            "n": pa.array([1, 2, 3], pa.int64()),
            "p50": pa.array([1.5, None, 2.5], pa.float64()),
        }
    )


def test_a_store_that_leaves_part_of_the_interface_out_cannot_be_made():
    class Partial(Store):
        def uri(self, rel: str) -> str:
            return rel

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_the_defaults_list_a_sorted_tree_and_say_whether_any_file_is_there():
    store = DictStore()
    for rel in ("s/cells/b/2.ok.parquet", "s/cells/a.parquet", "s/cells/a/1.failed.parquet"):
        store.write_bytes(rel, b"x")
    store.write_bytes("s/cells/notes.txt", b"x")
    assert store.list_tree("s/cells", ".parquet") == [
        "s/cells/a.parquet",
        "s/cells/a/1.failed.parquet",
        "s/cells/b/2.ok.parquet",
    ]
    assert store.has_files("s/cells", ".txt") and not store.has_files("s/cells", ".json")
    assert store.list_tree("s/nothing") == [] and not store.has_files("s/nothing")


def test_the_defaults_of_an_interface_method_say_nothing_is_wrong():
    store = DictStore()
    store.check()  # a store without checks of its own is usable
    assert store.scan_options() is None  # its URIs need no credentials to scan
    assert store.io_threads == 1


def test_a_table_round_trips_through_any_stores_bytes_in_one_write():
    store = DictStore()
    store.write_table("s/t.parquet", _table())
    assert store.writes == 1 and store.files["s/t.parquet"][:4] == b"PAR1"
    back = store.read_table("s/t.parquet")
    assert back.equals(_table()) and back.schema == _table().schema


def test_a_table_round_trips_through_a_local_folder_leaving_only_its_file(tmp_path):
    store = LocalStore(str(tmp_path / "root"))
    store.write_table("s/t.parquet", _table(), compression="snappy")
    back = store.read_table("s/t.parquet")
    assert back.equals(_table())
    assert back.schema == _table().schema
    assert os.listdir(store.root / "s") == ["t.parquet"]
    with pytest.raises(FileNotFoundError):
        store.read_table("s/missing.parquet")
