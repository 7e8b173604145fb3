"""Sources: golden counts on corpus files, sniffing, and broken input."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from tests.fixtures.evtx_malformed import DEFECTS
from tidehunt.sources.base import Artefact
from tidehunt.sources.evtx import EvtxSource
from tidehunt.sources.sniff import sniff
from tidehunt.sources.windows_json import WindowsJsonSource


def read_all(src, path: Path, ctx) -> pa.Table:
    art = Artefact("a1", path, str(path))
    batches = [b.data for b in src.read(art, ctx)]
    if not batches:
        return pa.table({})
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches],
                            promote_options="permissive")


def _benign_manifest() -> list[dict[str, str]]:
    import csv

    from tests.conftest import CORPUS

    path = CORPUS / "evtx-benign" / "manifest.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("row", _benign_manifest(), ids=lambda r: r["file"][:30])
def test_evtx_golden_counts(corpus, ctx, row):
    t = read_all(EvtxSource(), corpus("evtx-benign") / row["file"], ctx)
    assert t.num_rows == int(row["records"])
    hosts = set(t.column("host").to_pylist())
    assert hosts == set(row["computers"].split(";"))
    assert t.column("ts").type == pa.timestamp("us", tz="UTC")
    assert t.column("ts").null_count == 0


def test_evtx_first_row(corpus, ctx):
    t = read_all(EvtxSource(), corpus("evtx-benign") / "issue_43.evtx", ctx)
    row = t.slice(0, 1).to_pylist()[0]
    assert row["channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert row["provider"] == "Microsoft-Windows-Sysmon"
    assert isinstance(row["event_id"], int) and row["record_id"] is not None
    assert "Image" in t.column_names


def test_evtx_and_json_renderings_agree(corpus, ctx):
    """The sigma-regression JSON files are the same events as the EVTX beside them."""
    base = corpus("evtx/sigma-regression/regression_data/rules/windows/process_creation")
    evtx_file = next(base.rglob("*.evtx"))
    ev = read_all(EvtxSource(), evtx_file, ctx).to_pylist()
    js = read_all(WindowsJsonSource(), evtx_file.with_suffix(".json"), ctx).to_pylist()
    assert len(ev) == len(js) >= 1
    drop = {"_source", "_locator", "source_file"}
    # the corpus JSON renderer trims trailing blanks that the EVTX keeps
    a = {k: v.strip() if isinstance(v, str) else v for k, v in ev[0].items()
         if k not in drop and v is not None}
    b = {k: v.strip() if isinstance(v, str) else v for k, v in js[0].items()
         if k not in drop and v is not None}
    assert a == b


MALFORMED = {  # file: records the evtx 0.14 parser gives at least (corpus manifest)
    "omer-sample_with_a_bad_chunk_magic.evtx": 14,
    "omer-sample-with-zero-data-size-event.evtx": 2,
    "omer-sysmon.evtx": 358,
    "omer-security_bad_string_cache.evtx": 2261,
    "omer-Application_no_crc32.evtx": 17,
    "omer-2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx": 95,
    "pyevtx-dns_log_malformed.evtx": 5,
    "pyevtx-issue_38.evtx": 1,
    "plaso-System2.evtx": 194,
}
#: defects we must report for each file: tests/fixtures/evtx_malformed.py (shared with
#: tests/robustness/test_evtx_malformed.py, which checks every manifest row end to end)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_evtx_salvaged(corpus, ctx, name):
    t = read_all(EvtxSource(), corpus("evtx-malformed") / name, ctx)
    assert t.num_rows >= MALFORMED[name]
    messages = [w.message for w in ctx.warnings]
    for needle in DEFECTS.get(name, []):
        assert any(needle in m for m in messages), (needle, messages)
    for w in ctx.warnings:  # every warning says where, unless the parser gave no place
        assert w.count >= 1 and w.artefact == "a1"


def test_mordor_zip_streamed(corpus, ctx):
    z = next(corpus("json/mordor").rglob("*bitsadmin*.zip"))
    head = z.read_bytes()[:65536]
    assert WindowsJsonSource.sniff(Artefact("a1", z, str(z)), head)
    t = read_all(WindowsJsonSource(), z, ctx)
    assert t.num_rows == 424 and ctx.warnings == []
    assert set(t.column("channel").to_pylist()) >= {"Security"}
    assert t.column("_locator")[0].as_py().endswith(":line 1")


def _event(i: int, **data) -> dict:
    return {"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": 1, "EventRecordID": i, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws1", "TimeCreated": {"#attributes": {"SystemTime":
                                                           f"2026-10-06T01:00:0{i}Z"}}},
        "EventData": {"Image": "C:\\x.exe", **data}}}


def test_json_shapes_lines_array_concatenated(tmp_path, ctx):
    lines = tmp_path / "a"
    lines.write_text("\n".join(json.dumps(_event(i)) for i in range(3)) + "\n")
    array = tmp_path / "b"
    array.write_text(json.dumps([_event(i) for i in range(3)], indent=2))
    concat = tmp_path / "c"
    concat.write_text("".join(json.dumps(_event(i), indent=2) + "\n" for i in range(3)))
    gz = tmp_path / "d"
    gz.write_bytes(gzip.compress(lines.read_bytes()))
    for p in (lines, array, concat, gz):
        art = Artefact("a1", p, str(p))
        assert sniff(art) is WindowsJsonSource, p
        t = read_all(WindowsJsonSource(), p, ctx)
        assert t.num_rows == 3, p
        assert t.column("record_id").to_pylist() == [0, 1, 2]
    assert ctx.warnings == []


def test_flat_and_winlogbeat_shapes(tmp_path, ctx):
    p = tmp_path / "flat.jsonl"
    p.write_text(json.dumps({"EventID": 4688, "Channel": "Security", "Hostname": "dc1",
                             "SourceName": "Microsoft-Windows-Security-Auditing",
                             "@timestamp": "2026-10-06T01:00:00.123Z",
                             "NewProcessName": "C:\\w\\cmd.exe", "host": "dc1"}) + "\n"
                 + json.dumps({"@timestamp": "2026-10-06T01:00:01Z", "winlog": {
                     "event_id": 1, "channel": "Microsoft-Windows-Sysmon/Operational",
                     "computer_name": "ws1", "provider_name": "Microsoft-Windows-Sysmon",
                     "record_id": 7, "event_data": {"Image": "C:\\a.exe"}}}) + "\n")
    rows = read_all(WindowsJsonSource(), p, ctx).to_pylist()
    assert [r["event_id"] for r in rows] == [4688, 1]
    assert rows[0]["host"] == "dc1" and rows[0]["NewProcessName"] == "C:\\w\\cmd.exe"
    assert rows[0]["host_"] == "dc1"  # an EventData key named like a declared column
    assert rows[1]["Image"] == "C:\\a.exe" and rows[1]["record_id"] == 7


def test_bad_json_lines_warned_and_skipped(tmp_path, ctx):
    p = tmp_path / "bad.jsonl"
    good = json.dumps(_event(1))
    p.write_bytes((good + "\n{not json\n" + good + "\n" + "[1, 2]\n").encode()
                  + b'{"EventID": 1, "Channel": "x", "Image": "\xff\xfe"}\n')
    t = read_all(WindowsJsonSource(), p, ctx)
    assert t.num_rows == 3
    msgs = {w.message: w for w in ctx.warnings}
    assert msgs["line is not valid JSON (skipped)"].locators == ("line 2",)
    assert msgs["JSON value is not a Windows event"].locators == ("line 4",)
    assert msgs["invalid UTF-8 replaced"].locators == ("line 5",)


def test_bad_timestamp_kept_with_warning(tmp_path, ctx):
    p = tmp_path / "ts.jsonl"
    e = _event(1)
    e["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] = "yesterday"
    p.write_text(json.dumps(_event(2)) + "\n" + json.dumps(e) + "\n")
    t = read_all(WindowsJsonSource(), p, ctx)
    assert t.num_rows == 2
    assert t.column("ts").null_count == 1
    assert any("unreadable event time" in w.message for w in ctx.warnings)


def test_zip_bomb_member_refused(tmp_path, ctx):
    p = tmp_path / "bomb.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("events.json", json.dumps(_event(1)) + "\n")
        zf.writestr("zeros.json", b'{"EventID": 1}' + b" " * (40 << 20))
    t = read_all(WindowsJsonSource(), p, ctx)
    assert t.num_rows == 1
    assert any("zip bomb" in w.message and w.locators == ("zeros.json",)
               for w in ctx.warnings)


def test_sniff_rejects_other_content(tmp_path):
    for content in (b"hello world\n", b'{"a": 1}\n', b"\x00" * 100, b""):
        p = tmp_path / "x"
        p.write_bytes(content)
        assert sniff(Artefact("a", p, str(p))) is None


def test_parser_error_warnings_merge_numbers_but_keep_magic_values(ctx, tmp_path):
    """A parser message's offsets, sizes and record numbers are merged into one warning
    per kind of defect; the magic values it names (``2a2a0000``) are kept as written
    (a digit-by-digit rewrite had made ``2a2a0000`` read ``NaNaN``)."""
    art = Artefact("a1", tmp_path / "x.evtx", "x.evtx")
    src = EvtxSource()
    for found in ("[ 0, 6E,  0, 64]", "[3D, 13, 6A,  0]"):
        src._parser_error(art, "An error occurred while trying to deserialize evtx stream.: "
                          "Invalid EVTX record header magic, expected `2a2a0000`, found "
                          f"`{found}`", ctx)
    for size in (0, 3):
        src._parser_error(art, "Invalid EVTX record data size, should be equals or greater "
                          f"than 28, found `{size}`", ctx)
    src._parser_error(art, "Failed to parse chunk number 10: Failed to parse chunk header: "
                      "Invalid EVTX chunk header magic, expected `ElfChnk0`, found "
                      "`[ 0,  0,  0,  0,  0,  0,  0,  0]`", ctx)
    by_message = {w.message: w for w in ctx.warnings}
    assert len(by_message) == 3, list(by_message)
    magic = next(w for m, w in by_message.items() if "record header magic" in m)
    assert "expected `2a2a0000`, found `[...]`" in magic.message and magic.count == 2
    size = next(w for m, w in by_message.items() if "data size" in m)
    assert "greater than N, found `N`" in size.message and size.count == 2
    chunk = next(w for m, w in by_message.items() if "chunk" in m)
    assert chunk.message.endswith("chunk number N")
    assert chunk.locators == ("chunk 10 @ offset 659456",)  # the place, in the locator


def test_printable_keeps_every_string_valid_utf8():
    """A warning's path or text may hold a file name's undecodable bytes or a document's
    lone surrogate: both become escapes, never an error."""
    from tidehunt.context import RunContext, printable

    assert printable("plain/é.evtx") == "plain/é.evtx"
    assert printable("a/\udcff\udcfe.evtx") == "a/\\xff\\xfe.evtx"
    assert printable("doc \ud800 x") == "doc \\ud800 x"
    ctx = RunContext()
    ctx.warn("a1", "evtx", "bad \ud800 value", ["loc \udcff"], path="f\udcff")
    w = ctx.warnings[0]
    assert (w.message, w.locators, w.path) == ("bad \\ud800 value", ("loc \\xff",), "f\\xff")
