"""The random calls of the differential test, as hypothesis strategies.

A call is drawn as a spec, a tuple that names no revision and no lease id of any store: a
revision is drawn relative to the example's current one and a lease as a pick among the
example's leases, and the state machine resolves both when it makes the call on each side.
"""

from __future__ import annotations

import operator
from typing import Any, Final

from hypothesis import strategies as st

from etcd_layers import SortOrder, SortTarget

KEYS: Final = (b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\xff", b"ab", b"b", b"\xff", b"\xff\xff")
keys = st.sampled_from(KEYS)
# An empty key means all keys with prefix or from_key, and is refused otherwise.
any_keys = st.one_of(keys, st.just(b""))
values = st.sampled_from((b"", b"v", b"w", b"\x00\xff"))
ranges: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}),
    st.just({"prefix": True}),
    st.just({"from_key": True}),
    keys.map(lambda end: {"range_end": end}),  # b"\x00" is "every key from key on"
)
# A revision relative to the example's current one (-6 .. +1, at least 1); None: no revision.
revisions = st.integers(-6, 1)
optional_revisions = st.one_of(st.none(), revisions)
# A lease: -2 (or below) for no lease, -1 for an id never granted, n >= 0 for the example's
# n-th lease (modulo how many were granted).
lease_picks = st.integers(-2, 6)
EXPLICIT_IDS: Final = (0x10, 0x11)
NEVER_GRANTED: Final = 0x5EED
get_options = st.fixed_dictionaries(
    {},
    optional={
        "limit": st.sampled_from((0, 1, 2, 5)),
        "count_only": st.booleans(),
        "keys_only": st.booleans(),
        "serializable": st.booleans(),
        "sort_order": st.sampled_from((None, *SortOrder)),
        "sort_target": st.sampled_from((None, *SortTarget)),
        "revision": optional_revisions,
        "min_mod_revision": optional_revisions,
        "max_mod_revision": optional_revisions,
        "min_create_revision": optional_revisions,
        "max_create_revision": optional_revisions,
    },
)
put_flags = st.sampled_from(((False, False), (True, False), (False, True)))
put_specs = st.tuples(st.just("put"), any_keys, values, lease_picks, st.booleans(), put_flags)
get_specs = st.tuples(st.just("get"), any_keys, ranges, get_options)
delete_specs = st.tuples(st.just("delete"), any_keys, ranges, st.booleans())
compare_specs = st.tuples(
    st.sampled_from(("value", "version", "create_revision", "mod_revision", "lease")),
    keys,
    st.one_of(st.just({}), st.just({"prefix": True}), keys.map(lambda e: {"range_end": e})),
    st.sampled_from((operator.eq, operator.ne, operator.lt, operator.gt)),
    st.one_of(values, st.integers(-6, 3)),  # bytes for value, else a number (see operand)
)
op_specs = st.recursive(
    st.one_of(put_specs, get_specs, delete_specs),
    lambda inner: st.tuples(
        st.just("txn"),
        st.lists(compare_specs, max_size=2),
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=2),
    ),
    max_leaves=6,
)
