"""markets.kvstore: the SQLite key -> bytes store under the experts' and the router's caches."""
from __future__ import annotations

import multiprocessing as mp

import pytest

from markets.kvstore import KeyValueStore


def _writer(path: str, start: int) -> None:
    KeyValueStore(path, "kv").put_many((f"k{i}", str(i).encode()) for i in range(start, start + 500))


def test_round_trip_many_keys_replace_and_both_key_types(tmp_path):
    path = tmp_path / "sub" / "c.sqlite"
    store = KeyValueStore(path, "kv")
    store.put_many((f"k{i}", bytes([i % 256]) * 3) for i in range(2500))  # more than one read chunk
    got = store.get_many([f"k{i}" for i in range(0, 3000, 7)] + ["k7", "absent"])
    assert len(got) == len(range(0, 2500, 7)) and got["k7"] == b"\x07" * 3 and "absent" not in got
    store.put_many([("k7", b"new")])
    assert KeyValueStore(path, "kv").get_many(["k7"]) == {"k7": b"new"} and len(store) == 2500
    blobs = KeyValueStore(path, "blobs")  # another table in the same file; bytes keys
    blobs.put_many([(b"\x00\x01", b"v")])
    assert blobs.get_many([b"\x00\x01", b"\x02"]) == {b"\x00\x01": b"v"} and len(store) == 2500
    store.put_many([])
    with pytest.raises(ValueError, match="identifier"):
        KeyValueStore(path, "kv; DROP TABLE kv")


def test_processes_write_concurrently_without_losing_rows(tmp_path):
    path = str(tmp_path / "c.sqlite")
    KeyValueStore(path, "kv")
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, s)) for s in (0, 500, 1000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(KeyValueStore(path, "kv")) == 1500
