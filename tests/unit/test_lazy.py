"""LazyKeyValues behaves as an ordinary list of KeyValues, converted on first use."""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Iterable

from etcd_layers.base.lazy import LazyKeyValues
from etcd_layers.base.responses import KeyValue


class _Recorder:
    """Converts fake messages (plain bytes) and counts how often it was asked to."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages: Iterable[bytes]) -> list[KeyValue]:
        self.calls += 1
        return [KeyValue(key, b"v") for key in messages]


def _lazy(*keys: bytes) -> tuple[LazyKeyValues, _Recorder]:
    recorder = _Recorder()
    return LazyKeyValues(list(keys), recorder), recorder


def test_lazy_key_values_convert_once_on_first_use() -> None:
    """Nothing is converted until the list is used, and then only once."""
    kvs, recorder = _lazy(b"a", b"b")
    assert recorder.calls == 0
    assert len(kvs) == 2
    assert [kv.key for kv in kvs] == [b"a", b"b"]
    assert kvs[1].key == b"b"
    assert recorder.calls == 1


def test_lazy_key_values_compare_equal_to_plain_lists_both_ways() -> None:
    """Equality with a plain list holds from either side, before any other use."""
    expected = [KeyValue(b"a", b"v")]
    left, _ = _lazy(b"a")
    right, _ = _lazy(b"a")
    assert left == expected
    assert expected == right
    assert isinstance(left, list)


def test_lazy_key_values_compare_and_concatenate_with_each_other_unloaded() -> None:
    """Two lazy lists compare and add as their items, though neither was used before."""
    left, _ = _lazy(b"a")
    right, _ = _lazy(b"a")
    assert left == right
    later, _ = _lazy(b"b")
    assert left != later
    first, _ = _lazy(b"a")
    assert [kv.key for kv in first + later] == [b"a", b"b"]


def test_lazy_key_values_pickle_and_copy_as_plain_lists() -> None:
    """Pickling and copying give plain lists with the same items."""
    kvs, _ = _lazy(b"a", b"b")
    assert pickle.loads(pickle.dumps(kvs)) == [KeyValue(b"a", b"v"), KeyValue(b"b", b"v")]
    other, _ = _lazy(b"c")
    assert copy.deepcopy(other) == [KeyValue(b"c", b"v")]
    assert type(copy.copy(other)) is list


def test_lazy_key_values_empty_is_falsy() -> None:
    """An empty result is an empty, falsy list."""
    kvs, recorder = _lazy()
    assert not kvs
    assert kvs == []
    assert recorder.calls == 0


def test_lazy_key_values_load_once_across_threads() -> None:
    """Threads racing to use one list see every item exactly once."""
    kvs, recorder = _lazy(*[b"%03d" % i for i in range(200)])
    lengths: list[int] = []
    threads = [threading.Thread(target=lambda: lengths.append(len(kvs))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert lengths == [200] * 8
    assert recorder.calls == 1


def test_lazy_key_values_mutation_works_after_load() -> None:
    """Mutating methods load first and then act as on a list."""
    kvs, _ = _lazy(b"a")
    kvs.append(KeyValue(b"z"))
    assert [kv.key for kv in kvs] == [b"a", b"z"]
    assert repr(kvs).startswith("[KeyValue(")


def test_lazy_key_values_of_a_lazy_list_stay_lazy_and_load_through() -> None:
    """A lazy list mapped over another loads neither until used, then both, without deadlock."""
    inner, recorder = _lazy(b"p/a", b"p/b")
    outer = LazyKeyValues(inner, lambda kvs: [KeyValue(kv.key[2:], kv.value) for kv in kvs])
    assert recorder.calls == 0
    assert [kv.key for kv in outer] == [b"a", b"b"]
    assert recorder.calls == 1
