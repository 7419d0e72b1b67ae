"""MemoryEtcd's port of Go 1.16's sort.Sort: etcd's order among equal sort values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from etcd_layers.testing.memory._gosort import go_sorted


def test_ties_come_out_as_etcd_3_5_answers_them() -> None:
    """etcd 3.5.1's answer to a version sort of k (version 1) and k00..k19 (version 2)."""
    items = [(b"k", 1)] + [(b"k%02d" % i, 2) for i in range(20)]
    ordered = [key for key, _ in go_sorted(items, key=lambda kv: kv[1], reverse=False)]
    expected = [b"k", b"k09", *(b"k%02d" % i for i in range(1, 9)), b"k00"]
    assert ordered == expected + [b"k%02d" % i for i in range(10, 20)]


@given(st.lists(st.integers(0, 4), max_size=300), st.booleans())
def test_the_result_is_sorted_and_a_permutation(values: list[int], reverse: bool) -> None:
    items = list(enumerate(values))
    ordered = go_sorted(items, key=lambda item: item[1], reverse=reverse)
    assert [value for _, value in ordered] == sorted(values, reverse=reverse)
    assert sorted(ordered) == items


def test_distinct_values_take_the_fast_path_with_the_same_answer() -> None:
    items = [(i * 7919) % 1000 for i in range(1000)]
    assert go_sorted(items, key=lambda v: v, reverse=True) == sorted(items, reverse=True)
