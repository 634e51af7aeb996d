"""Hypothesis strategies for hostile input: any JSON value, and documents "near" a valid
one (each field kept, dropped or replaced by junk, nested fields too), so a fuzzer gets
past the first type check and reaches the code behind it."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Values that break naive parsers: huge and negative integers (past 32 and 64 bits),
# floats that are not numbers or are infinite (json.loads accepts NaN and Infinity),
# bools where ints belong (bool is an int in Python), odd Unicode.
HOSTILE_INTS = st.sampled_from(
    [0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**63, 2**64, -(2**63), 10**30, 10**400]
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HOSTILE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "\u202e", "0" * 300, "2026-01-05T09:00:00.000Z", "AAAA"]),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def near(template: Any) -> st.SearchStrategy[Any]:
    """Documents shaped like ``template`` with hostile changes at any depth."""
    if isinstance(template, dict):
        fields = {key: near(value) for key, value in template.items()}
        shaped = st.fixed_dictionaries({}, optional=fields)
        extra = st.dictionaries(st.text(max_size=8), json_values, max_size=2)
        return st.one_of(
            shaped,
            st.tuples(shaped, extra).map(lambda pair: {**pair[1], **pair[0]}),
            json_values,
        )
    if isinstance(template, list) and template:
        return st.one_of(st.lists(near(template[0]), max_size=3), json_values)
    return st.one_of(st.just(template), json_values)


def deep_nesting() -> st.SearchStrategy[bytes]:
    """JSON nested deeper than Python's recursion limit: ``[[[[…`` and ``{"a":{…``."""
    depth = st.integers(min_value=900, max_value=5000)
    return st.one_of(
        depth.map(lambda n: b"[" * n + b"]" * n),
        depth.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        depth.map(lambda n: b"[" * n),
    )
