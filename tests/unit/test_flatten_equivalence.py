"""The columnar EVTX flatten (``EvtxRows.add_event``) builds exactly the batches of the
generic one (``event_row`` + ``WindowsRows.add``), and the native flatten
(``tidehunt._evtxflat``, from the parser's JSON text) exactly the same rows and warnings:
on the corpus and on made-up records that exercise every rule of the flatten."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import tidehunt.sources._winrows as winrows
from tests.conftest import CORPUS
from tidehunt.context import RunContext
from tidehunt.sources._wincolumnar import EvtxRows
from tidehunt.sources._winrows import WindowsRows, event_row
from tidehunt.sources.base import Artefact
from tidehunt.sources.evtx import EvtxSource

Events = Iterable[tuple[str, Any, Any]]  # (artefact, Event object, parser record id)


def generic(events: Events) -> tuple[list[Any], list[Any], list[Any]]:
    """Batches, warnings and records without System through the generic flatten."""
    sink, ctx, no_system = WindowsRows("evtx"), RunContext(), []
    out: list[Any] = []
    art = None
    for a, event, rid in events:
        if a != art:
            sink.begin(a, a + ".evtx")
            art = a
        row = event_row(event) if type(event) is dict else None  # as EvtxSource does
        if row is None:
            no_system.append(rid)
            continue
        if row.get("record_id") is None:
            row["record_id"] = rid
        sink.add(row, str(rid))
        if sink.full():
            out += sink.flush()
    out += sink.flush()
    sink.report(ctx, "evtx")
    return out, ctx.warnings, no_system


def columnar(events: Events) -> tuple[list[Any], list[Any], list[Any]]:
    """The same through ``EvtxRows.add_event``."""
    sink, ctx, no_system = EvtxRows("evtx"), RunContext(), []
    out: list[Any] = []
    art = None
    for a, event, rid in events:
        if a != art:
            sink.begin(a, a + ".evtx")
            art = a
        if not sink.add_event(event, str(rid), rid):
            no_system.append(rid)
            continue
        if sink.full():
            out += sink.flush()
    out += sink.flush()
    sink.report(ctx, "evtx")
    return out, ctx.warnings, no_system


def assert_same(events: list[tuple[str, Any, Any]]) -> None:
    ga, gw, gn = generic(events)
    ca, cw, cn = columnar(events)
    assert gn == cn
    assert [w.to_dict() for w in gw] == [w.to_dict() for w in cw]
    assert len(ga) == len(ca)
    for x, y in zip(ga, ca, strict=True):
        assert x.data.schema == y.data.schema
        assert x.data.equals(y.data), _first_difference(x.data, y.data)


needs_native = pytest.mark.usefixtures("native")


def from_text(events: Events, native: bool, chunk: int = 2048) -> tuple[pa.Table, list[Any]]:
    """``EvtxSource.read_records`` over parser-like records (each event as JSON text),
    with the native flatten or without it: the rows as one table, and the warnings."""
    src, ctx = EvtxSource(), RunContext()
    sink = EvtxRows("evtx", native=native)
    assert (sink.native is not None) == native
    by_art: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    for a, event, rid in events:
        if a not in by_art:
            order.append(a)
        by_art.setdefault(a, []).append(
            {"data": json.dumps({"Event": event}), "event_record_id": rid})
    out: list[Any] = []
    import tidehunt.sources.evtx as evtx_mod
    old, evtx_mod.NATIVE_CHUNK = evtx_mod.NATIVE_CHUNK, chunk  # type: ignore[misc]
    try:
        for a in order:
            art = Artefact(a, Path(a + ".evtx"), a + ".evtx")
            sink.begin(art.id, art.display)
            out += src.read_records(iter(by_art[a]), art, ctx, sink)
        out += sink.flush()
    finally:
        evtx_mod.NATIVE_CHUNK = old  # type: ignore[misc]
    sink.report(ctx, src.NAME)
    return _table(out), ctx.warnings


def assert_native_same(events: list[tuple[str, Any, Any]], chunk: int = 2048,
                       merge_case: bool = False) -> None:
    """Same rows and warnings. With ``merge_case``, columns whose names differ only by
    case are merged first, as the store merges them on reading: rows the native flatten
    hands back sit in batches of their own, where another spelling may come first."""
    (pt, pw), (nt, nw) = from_text(events, False), from_text(events, True, chunk)
    assert _warnings(pw) == _warnings(nw)
    if merge_case:
        pt, nt = _merge_case(pt), _merge_case(nt)
    assert pt.schema == nt.schema
    assert pt.equals(nt), _first_difference(pt, nt)


def _warnings(ws: list[Any]) -> list[str]:
    """Warnings in a comparable form: locators in sorted order when all are listed (the
    order rows are flushed in differs between the paths)."""
    out = []
    for w in ws:
        d = w.to_dict()
        if d["count"] <= len(d["locators"]):
            d["locators"] = sorted(d["locators"])
        out.append(repr(d))
    return sorted(out)


def _merge_case(t: pa.Table) -> pa.Table:
    by: dict[str, list[str]] = {}
    for n in t.column_names:
        by.setdefault(n.lower(), []).append(n)
    cols = {}
    for names in by.values():
        merged = t.column(names[0])
        for n in names[1:]:
            assert pc.all(pc.or_(merged.is_null(), t.column(n).is_null())).as_py()
            merged = pc.coalesce(merged, t.column(n))
        cols[min(names)] = merged
    return pa.table(dict(sorted(cols.items())))


def _first_difference(a: pa.RecordBatch, b: pa.RecordBatch) -> str:
    for name in a.schema.names:
        la, lb = a.column(name).to_pylist(), b.column(name).to_pylist()
        if la != lb:
            i = next(i for i, (x, y) in enumerate(zip(la, lb, strict=True)) if x != y)
            return f"{name}[{i}]: {la[i]!r} != {lb[i]!r}"
    return "equal values"


# -- made-up records ------------------------------------------------------------------

def system(eid: Any = 4688, channel: Any = "Security", rid: Any = 1, **over: Any) -> dict:
    s: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing",
                                     "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D"}},
        "EventID": eid, "Version": 2, "Level": 0, "Task": 13312, "Opcode": 0,
        "Keywords": "0x8020000000000000",
        "TimeCreated": {"#attributes": {"SystemTime": "2019-03-19T23:34:25.268450Z"}},
        "EventRecordID": rid, "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 4144}},
        "Channel": channel, "Computer": "WIN10", "Security": None,
    }
    for k, v in over.items():
        if v is _DROP:
            s.pop(k, None)
        else:
            s[k] = v
    return s


_DROP = object()


def ev(data: Any = None, *, user: Any = None, **sys_over: Any) -> dict:
    e: dict[str, Any] = {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/"
                                                  "events/event"},
                         "System": system(**sys_over)}
    if data is not None:
        e["EventData"] = data
    if user is not None:
        e["UserData"] = user
    return e


# two spellings of one name in one record: a value has to go (with a warning)
CLASH = ev({"Commandline": "b", "CommandLine": "c"}, eid=12, channel="App")

TRICKY: list[dict] = [
    ev({"SubjectUserName": "bob", "NewProcessName": "C:\\x.exe", "ProcessId": "0x1"}),
    ev({"SubjectUserName": "eve", "NewProcessName": None, "TokenElevationType": 1936}),
    # nested UserData with attributes and duplicate leaf names (first spelling wins)
    ev(user={"LogFileCleared": {"#attributes": {"xmlns": "http://manifests/"},
                                "SubjectUserName": "admin", "Inner": {"SubjectUserName": "x",
                                                                      "Other": "y"}}},
       eid=1102, channel="Security"),
    ev(user={"EventXML": {"#attributes": {"xmlns:auto-ns2": "a", "xmlns": "b"},
                          "Param1": {"#text": "p1", "#attributes": {"Name": "n"}},
                          "Empty": {}, "Null": None, "List": ["a", None, {"#text": "c"}]}},
       eid=104, channel="System"),
    # #text and #attributes at the top of EventData
    ev({"#text": "plain"}, eid=7, channel="App"),
    ev({"#text": ["l1", "l2"]}, eid=7, channel="App"),
    ev({"#text": True, "Other": "o"}, eid=7, channel="App"),  # a boolean "#text" is "Data"
    ev({"#text": 5, "#attributes": "text attributes"}, eid=7, channel="App"),
    ev({"Data": {"#text": ["sa", " Reason: bad", " [CLIENT: 10.0.2.17]"]}}, eid=18456,
       channel="Application"),
    ev({"#attributes": {"Name": "EVENT_X"}, "Data": "d"}, eid=8, channel="App"),
    ev({"Binary": {"#attributes": {"Length": 4}, "#text": "00FF"}}, eid=8, channel="App"),
    # lists, booleans, floats, big and negative integers, empty values
    ev({"Values": ["a", "b", None, 3, True], "Flag": True, "Off": False, "Ratio": 1.5,
        "Whole": 2.0, "Big": 2**63 + 5, "Huge": 2**70, "Neg": -7, "Empty": "", "None": None,
        "EmptyList": []}, eid=9, channel="App"),
    ev({"Flag": False, "Ratio": 3, "Big": 1, "Neg": "x"}, eid=9, channel="App"),
    ev({"Flag": 1, "Ratio": None, "Big": True}, eid=9, channel="App"),
    # reserved names are not shadowed; a renamed key meeting a literal one
    ev({"Channel": "evil", "ts": "1999", "Host": "h", "source_file": "s", "_locator": "l",
        "event_id": 1, "Provider": "p"}, eid=10, channel="App"),
    ev({"Channel": "evil", "Channel_": "literal"}, eid=10, channel="App"),
    ev({"Channel_": "literal first", "Channel": "evil"}, eid=10, channel="App"),
    # names meeting System values, case variants within a row and across rows
    ev({"Level": "data level", "Version": "v"}, eid=11, channel="App"),
    ev({"level": "lower level"}, eid=11, channel="App"),
    ev({"CommandLine": "a"}, eid=12, channel="App"),
    CLASH,
    ev({"commandline": "d"}, eid=12, channel="App"),
    ev({"CommandLine": "e", "Image": "i"}, eid=13, channel="App"),
    ev({"commandLine": "f"}, eid=13, channel="App", Execution=None),
    # lone surrogates in values and names
    ev({"Bad": "x\ud800y", "K\udc00": "v"}, eid=14, channel="App"),
    ev({"Bad": "ok", "K\udc01": "w"}, eid=14, channel="App"),
    # System variants
    ev({"A": "1"}, eid={"#attributes": {"Qualifiers": 16384}, "#text": 7036}, channel="System"),
    ev({"A": "2"}, eid={"#attributes": {"Qualifiers": 16384}}, channel="System"),
    ev({"A": "3"}, eid="7036", channel="System"),
    ev({"A": "4"}, eid="not a number", channel="System"),
    ev({"A": "5"}, eid=2**64, channel="System"),
    ev({"A": "6"}, eid=[1, 2], channel=["a", "b"]),
    ev({"A": "7"}, channel=None, eid=None),
    ev({"A": "8"}, TimeCreated={"#attributes": {"SystemTime": "2019-13-45T00:00:00Z"}}),
    ev({"A": "9"}, TimeCreated={"#attributes": {"SystemTime": "yesterday"}}),
    ev({"A": "10"}, TimeCreated={"#attributes": {}}),
    ev({"A": "11"}, TimeCreated=_DROP),
    ev({"A": "12"}, TimeCreated="2019-03-19 23:34:25.1234567"),
    ev({"A": "13"}, TimeCreated={"#attributes": None}),
    ev({"A": "14"}, Provider={"#attributes": {"EventSourceName": "Service Control Manager"}}),
    ev({"A": "15"}, Provider={"#attributes": {"Name": "", "EventSourceName": "fallback"}}),
    ev({"A": "16"}, Provider={"#attributes": ""}),
    ev({"A": "17"}, Provider="text provider"),
    ev({"A": "18"}, Execution={"#attributes": {"ProcessID": True, "ThreadID": 1.5}}),
    ev({"A": "19"}, Execution={"#attributes": {"ProcessID": "12", "ThreadID": None}}),
    ev({"A": "20"}, Execution={"#attributes": "x"}),
    ev({"A": "21"}, Security={"#attributes": {"UserID": "S-1-5-18"}}),
    ev({"A": "22"}, Security={"#attributes": {"UserID": 5}}),
    ev({"A": "23"}, Security={"#attributes": {"UserID": {"#text": "S-1"}}}),
    ev({"A": "24"}, Level={"#text": 4}, Task=True, Opcode=1.0, Keywords=None, Version={}),
    ev({"A": "25"}, Level=[1, 2], Task="t", Version=_DROP, Opcode=_DROP),
    ev({"A": "26"}, EventRecordID=None),
    ev({"A": "27"}, EventRecordID="12"),
    ev({"A": "28"}, EventRecordID="x"),
    ev({"A": "29"}, Computer=None),
    ev({"A": "30"}, Computer=123),
    # EventData that is not an object, empty, or absent
    ev("just text", eid=15, channel="App"),
    ev(["a", "b"], eid=15, channel="App"),
    ev({}, eid=15, channel="App"),
    ev(None, eid=15, channel="App"),
    ev({"A": None, "B": None}, eid=15, channel="App"),
    ev({"X": "data"}, user={"U": "user"}, eid=15, channel="App"),
    ev(user="user text", eid=15, channel="App"),
    {"System": "not an object", "EventData": {"A": "1"}},
    {"EventData": {"A": "1"}},
    None,
    ["not", "an", "event"],
]


def test_tricky_records_one_artefact():
    assert_same([("a1", e, i) for i, e in enumerate(TRICKY, 1)])


def test_tricky_records_interleaved_artefacts_and_flushes(monkeypatch):
    monkeypatch.setattr(winrows, "FLUSH_ROWS", 7)
    events = [(f"a{i % 3}", e, i) for i, e in enumerate(TRICKY * 3, 1)]
    assert_same(events)


def test_case_clash_in_one_record_is_a_warning():
    """The value kept is the same whatever else the batch holds (the spelling first in
    code-point order), and the loss is reported with the record."""
    first = ("a1", ev({"commandline": "a"}, eid=12, channel="App"), 1)
    for events in ([first, ("a1", CLASH, 2)], [("a1", CLASH, 2)]):
        tables, warnings, _ = columnar(events)
        assert [(w.message, w.count, w.locators) for w in warnings] == [
            (winrows.CASE_CLASH, 1, ("2",))]
        t = _table(tables)
        (name,) = [n for n in t.column_names if n.lower() == "commandline"]
        assert t.column(name).to_pylist()[-1] == "c"


# the native flatten hands CLASH back to Python, which flattens it in a batch of its own:
# same value, but under the spelling first seen in that batch (merged when the store reads)
NATIVE_TRICKY = [e for e in TRICKY if e is not CLASH]


@needs_native
def test_native_tricky_records():
    assert_native_same([("a1", e, i) for i, e in enumerate(NATIVE_TRICKY, 1)])


@needs_native
def test_native_tricky_records_interleaved_artefacts_and_flushes(monkeypatch):
    monkeypatch.setattr(winrows, "FLUSH_ROWS", 7)
    events = [(f"a{i % 3}", e, i) for i, e in enumerate(NATIVE_TRICKY * 3, 1)]
    assert_native_same(events, chunk=5)


@needs_native
def test_native_case_clash():
    events = [("a1", ev({"CommandLine": "a"}, eid=12, channel="App"), 1), ("a1", CLASH, 2)]
    (pt, pw), (nt, nw) = from_text(events, False), from_text(events, True)
    assert [(w.message, w.count) for w in pw] == [(w.message, w.count) for w in nw] == [
        (winrows.CASE_CLASH, 1)]
    assert pt.column("CommandLine").to_pylist() == ["a", "c"]
    assert "Commandline" not in pt.column_names
    # read as the store reads it: spellings merged
    merged = pc.coalesce(nt.column("CommandLine"), nt.column("Commandline"))
    assert merged.to_pylist() == ["a", "c"]


@needs_native
def test_native_takes_nested_data_and_refuses_what_python_must_do():
    """The generic shapes are taken natively (the corpus's SQL Server and UserData
    events); floats, lone surrogates, non-ASCII names, case variants in one record and
    records Python warns about or raises on are handed back."""
    from tidehunt import _evtxflat  # type: ignore[attr-defined]
    from tidehunt.sources._winrows import _RESERVED

    taken = [
        ev({"Data": {"#text": ["sa", " Reason: x", " [CLIENT: 10.0.2.17]"]}, "Binary": "00"}),
        ev(user={"LogFileCleared": {"#attributes": {"xmlns": "m"}, "SubjectUserName": "a"}}),
        ev({"#attributes": {"Name": "EVENT_X"}, "param1": "p"}),
        ev({"A": "plain", "N": 5, "B": True}),
    ]
    refused = [
        ev({"Ratio": 1.5}),
        ev({"Bad": "x\ud800y"}),
        ev({"Name\u00e9": "v"}),
        ev({"CommandLine": {"#text": "a"}, "commandline": "b"}),
        ev({"level": {"#text": "x"}}),
        {"EventData": {"A": "1"}},
        None,
        ev({"A": "1"}, TimeCreated={"#attributes": "text"}),
    ]
    buf = _evtxflat.Buffer(sorted(_RESERVED))
    recs = [{"data": json.dumps({"Event": e}), "event_record_id": i}
            for i, e in enumerate(taken + refused)]
    assert buf.add(recs, 0) == list(range(len(taken), len(taken) + len(refused)))
    assert buf.n == len(taken)
    assert buf.add([{"data": "{not json", "event_record_id": 1}, {"data": 5}, "x",
                    {"data": "{}", "event_record_id": 2**70}], 0) == [0, 1, 2, 3]


def test_raises_where_the_generic_flatten_raises():
    bad = ev({"A": "1"}, TimeCreated={"#attributes": "text"})
    with pytest.raises(AttributeError):
        generic([("a", bad, 1)])
    with pytest.raises(AttributeError):
        columnar([("a", bad, 1)])
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    nested = ev({"Deep": deep})
    with pytest.raises(RecursionError):
        generic([("a", nested, 1)])
    with pytest.raises(RecursionError):
        columnar([("a", nested, 1)])


_KEYS = ["CommandLine", "commandline", "Image", "Level", "Channel", "Channel_", "ts", "Data",
         "#text", "TargetUserName", "ProcessId", "Hashes", "User", "user", "Version", "X\ud800"]
_VALUES: list[Any] = ["a", "", "0x10", "x\udfff", 0, 7, -1, 2**63, 2**65, True, False, 1.25,
                      2.0, None, [], ["a", 1], {"#text": "t"}, {"#text": ["a", "b"]},
                      {"#attributes": {"Name": "n"}}, {"Inner": {"Image": "deep"}}, {}]


def _random_event(rng: random.Random, i: int) -> dict:
    shape = rng.choice([("CommandLine", "Image", "ProcessId"), ("TargetUserName", "Level"),
                        ("Image", "Hashes", "User"), ("User", "user")])
    if rng.random() < 0.3:
        shape = tuple(rng.sample(_KEYS, rng.randint(0, 5)))
    data = {k: (rng.choice(_VALUES) if rng.random() < 0.3 else f"v{i}") for k in shape}
    over: dict[str, Any] = {}
    if rng.random() < 0.1:
        over["Level"] = rng.choice(_VALUES)
    if rng.random() < 0.1:
        over["Execution"] = {"#attributes": {"ProcessID": rng.choice(_VALUES)}}
    if rng.random() < 0.05:
        over["EventRecordID"] = None
    e = ev(data if rng.random() < 0.95 else None, eid=rng.choice([1, 1, 1, 3, "3", 11]),
           channel=rng.choice(["Sysmon", "Sysmon", "Security"]), rid=i, **over)
    if rng.random() < 0.05:
        e["UserData"] = {"Wrap": {"#attributes": {"xmlns": "u"}, "Image": "from user"}}
    return e


@pytest.mark.parametrize("seed", range(4))
def test_random_records(monkeypatch, seed):
    rng = random.Random(seed)
    monkeypatch.setattr(winrows, "FLUSH_ROWS", rng.choice([50, 400, 65_536]))
    events = [(f"a{i // 97}", _random_event(rng, i), i) for i in range(1500)]
    assert_same(events)


@needs_native
@pytest.mark.parametrize("seed", range(4))
def test_native_random_records(monkeypatch, seed):
    rng = random.Random(seed)
    monkeypatch.setattr(winrows, "FLUSH_ROWS", rng.choice([50, 400, 65_536]))
    events = [(f"a{i // 97}", _random_event(rng, i), i) for i in range(1500)]
    assert_native_same(events, chunk=rng.choice([1, 64, 2048]), merge_case=True)


# -- corpus ---------------------------------------------------------------------------

def _read(files: list[Path], columnar: bool, native: bool = False
          ) -> tuple[list[Any], list[Any]]:
    """``EvtxSource`` over the files through one buffer, as an ingest task reads them."""
    src = EvtxSource()
    src.columnar = columnar  # type: ignore[misc]
    ctx = RunContext()
    sink = EvtxRows(src.NAME, native=native) if columnar else src.new_sink()
    assert isinstance(sink, EvtxRows) == columnar
    out: list[Any] = []
    for f in files:
        art = Artefact(str(f), f, str(f))
        sink.begin(art.id, art.display)
        out += src.read_rows(art, ctx, sink)
    out += sink.flush()
    sink.report(ctx, src.NAME)
    return out, ctx.warnings


def _table(batches: list[Any]) -> pa.Table:
    if not batches:
        return pa.table({})
    t = pa.concat_tables([pa.Table.from_batches([b.data]) for b in batches],
                         promote_options="default")
    return t.select(sorted(t.column_names)).sort_by(
        [("_artefact", "ascending"), ("record_id", "ascending"), ("_locator", "ascending")])


@pytest.mark.parametrize("root", ["evtx", "evtx-benign", "evtx-malformed"])
def test_corpus(corpus, root):
    """Each file alone (its table, columns by name and rows by record ID, and warnings),
    then all of them through one buffer (every batch identical)."""
    files = sorted(corpus(root).rglob("*.evtx"))
    if not files:
        pytest.skip(f"no .evtx files under {CORPUS / root}")
    for f in files:
        (ga, gw), (ca, cw) = _read([f], False), _read([f], True)
        assert [w.to_dict() for w in gw] == [w.to_dict() for w in cw], f
        assert len(ga) == len(ca), f
        if ga:
            assert _table(ga).equals(_table(ca)), f
    (ga, gw), (ca, cw) = _read(files, False), _read(files, True)
    assert [w.to_dict() for w in gw] == [w.to_dict() for w in cw]
    assert len(ga) == len(ca)
    for x, y in zip(ga, ca, strict=True):
        assert x.data.equals(y.data), _first_difference(x.data, y.data)


@needs_native
@pytest.mark.parametrize("root", ["evtx", "evtx-benign", "evtx-malformed"])
def test_corpus_native(corpus, root):
    """The native flatten gives the Python flatten's rows (one table, columns by name,
    rows by artefact and record ID) and warnings, file by file and all through one
    buffer; it takes nearly every record itself."""
    files = sorted(corpus(root).rglob("*.evtx"))
    if not files:
        pytest.skip(f"no .evtx files under {CORPUS / root}")
    for f in files:
        (pa_, pw), (na, nw) = _read([f], True), _read([f], True, native=True)
        assert [w.to_dict() for w in pw] == [w.to_dict() for w in nw], f
        if pa_:
            assert _table(pa_).equals(_table(na)), f
    (pa_, pw), (na, nw) = _read(files, True), _read(files, True, native=True)
    assert sorted(map(repr, (w.to_dict() for w in pw))) == \
        sorted(map(repr, (w.to_dict() for w in nw)))
    assert _table(pa_).equals(_table(na))
