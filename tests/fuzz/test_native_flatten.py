"""Property test: the native EVTX flatten gives the Python flatten's rows and warnings.

Records are drawn in the parser's shape (``{"Event": {"System": ..., "EventData": ...}}``
as JSON text), with System values of every type in the places tidehunt reads, and
EventData / UserData that are flat, nested, lists, ``#text`` / ``#attributes`` objects
or not objects at all; names from a pool holding case variants, reserved and System
names, ``_``-suffixed ones and non-ASCII ones; values of every JSON type (floats, huge
integers, hostile text). Whatever the native flatten takes must come out as Python would
have flattened it; whatever it does not take, it must hand back.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz._contract import examples, hostile_text, json_values
from tests.unit.test_flatten_equivalence import assert_native_same

pytestmark = pytest.mark.usefixtures("native")

NAMES = ["Image", "CommandLine", "commandline", "Commandline", "User", "Data", "Name",
         "#text", "#attributes", "Level", "level", "Version", "Channel", "Channel_",
         "channel", "ts", "event_id", "EventID", "host", "source_file", "_locator",
         "ProcessId", "Binary", "param1", "", "a b", "Ünïcode", "K\u00e9", "x" * 40]

names = st.one_of(st.sampled_from(NAMES), hostile_text)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["", "a", "C:\\Windows\\System32\\cmd.exe", "0x10"]),
                    hostile_text)
flat = st.dictionaries(names, scalars, max_size=6)
nested = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(names, kids, max_size=4)), max_leaves=10)
data = st.one_of(flat, flat, nested, json_values,
                 st.fixed_dictionaries({"Data": st.lists(st.one_of(
                     st.fixed_dictionaries({"#attributes": st.fixed_dictionaries(
                         {"Name": names}), "#text": scalars}), scalars), max_size=4)}),
                 st.fixed_dictionaries({"#text": st.lists(scalars, max_size=3)}))


@st.composite
def system(draw: st.DrawFn) -> Any:
    eid = st.one_of(st.integers(0, 70000), st.integers(-2**70, 2**70), scalars,
                    st.fixed_dictionaries({"#attributes": st.fixed_dictionaries(
                        {"Qualifiers": scalars}), "#text": scalars}))
    tc = st.one_of(st.fixed_dictionaries({"#attributes": st.fixed_dictionaries(
        {"SystemTime": st.one_of(st.just("2019-03-19T23:34:25.268450Z"),
                                 st.just("2019-13-40T99:00:00Z"), scalars)})}), scalars)
    prov = st.one_of(st.fixed_dictionaries({"#attributes": st.dictionaries(
        st.sampled_from(["Name", "EventSourceName", "Guid"]), scalars, max_size=3)}),
        scalars)
    pair = st.one_of(st.fixed_dictionaries({"#attributes": st.dictionaries(
        st.sampled_from(["ProcessID", "ThreadID", "UserID"]), scalars, max_size=2)}),
        scalars)
    s: dict[str, Any] = {"Provider": draw(prov), "EventID": draw(eid),
                         "TimeCreated": draw(tc),
                         "Channel": draw(st.one_of(st.sampled_from(["Security", "App"]),
                                                   scalars)),
                         "Computer": draw(st.one_of(st.just("ws1"), scalars)),
                         "EventRecordID": draw(st.one_of(st.integers(0, 10**6), scalars))}
    for k, v in draw(st.dictionaries(st.sampled_from(
            ["Version", "Level", "Task", "Opcode", "Keywords", "Execution", "Security",
             "Correlation"]), st.one_of(scalars, pair), max_size=5)).items():
        s[k] = v
    return draw(st.one_of(st.just(s), st.just(s), st.just(s), json_values))


@st.composite
def event(draw: st.DrawFn) -> Any:
    e: dict[str, Any] = {"System": draw(system())}
    if draw(st.booleans()):
        e["EventData"] = draw(data)
    if draw(st.integers(0, 3)) == 0:
        e["UserData"] = draw(data)
    return e


@settings(max_examples=examples(4))
@given(st.lists(st.tuples(st.sampled_from(["a1", "a2"]), event()), min_size=1, max_size=30),
       st.sampled_from([1, 3, 2048]))
def test_native_flatten_matches_python(events, chunk):
    assert_native_same([(a, e, i) for i, (a, e) in enumerate(events, 1)], chunk=chunk,
                       merge_case=True)
