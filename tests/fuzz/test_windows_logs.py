"""Property tests: Windows event logs, EVTX (binary, Rust parser plus our header checks)
and Windows event JSON (evtx_dump, Velociraptor, Winlogbeat, flattened Mordor; lines,
arrays, concatenated objects; plain, gzip or zipped).

EVTX inputs are structured: a file header and chunk headers with correct or wrong
checksums, random chunk bodies, and mutated real files from ``../shared/corpus`` when it
is present (read at run time, nothing copied).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CORPUS
from tests.fuzz._contract import (
    examples,
    hostile_text,
    json_values,
    maybe_gzip,
    mutated,
    run_source,
)

HEADER, CHUNK = 4096, 65536


def _small_corpus_evtx(n: int = 3) -> list[Path]:
    if not CORPUS.is_dir():
        return []
    found = [p for d in ("evtx-malformed", "evtx-benign", "evtx/deepbluecli")
             for p in sorted((CORPUS / d).glob("*.evtx")) if p.stat().st_size <= 2 * CHUNK
             + HEADER]
    return found[:n]


CORPUS_EVTX = _small_corpus_evtx()


def file_header(n_chunks: int, flags: int, good_crc: bool) -> bytes:
    h = bytearray(HEADER)
    h[:8] = b"ElfFile\x00"
    struct.pack_into("<QQQIHHHH", h, 8, 0, max(n_chunks - 1, 0), 1, 128, 1, 3, HEADER, n_chunks)
    struct.pack_into("<I", h, 120, flags)
    crc = zlib.crc32(bytes(h[:120]))
    struct.pack_into("<I", h, 124, crc if good_crc else crc ^ 1)
    return bytes(h)


@st.composite
def chunk(draw: st.DrawFn) -> bytes:
    c = bytearray(CHUNK)
    c[:8] = b"ElfChnk\x00" if draw(st.integers(0, 9)) else draw(st.binary(min_size=8,
                                                                           max_size=8))
    first = draw(st.integers(0, 2**63))
    struct.pack_into("<QQQQI", c, 8, first, first + draw(st.integers(0, 50)), first,
                     first + draw(st.integers(0, 50)), 128)
    body = draw(st.binary(max_size=2048))
    if draw(st.booleans()):  # something shaped like an event record
        rec = b"\x2a\x2a\x00\x00" + struct.pack("<IQQ", 24 + len(body) + 4, first, 0) + body
        body = rec + struct.pack("<I", len(rec) + 4)
    c[512:512 + len(body)] = body
    free = draw(st.sampled_from([512 + len(body), 0, CHUNK, CHUNK + 1]))
    struct.pack_into("<II", c, 44, 512, free)
    struct.pack_into("<I", c, 52, zlib.crc32(bytes(c[512:free])) if 512 <= free <= CHUNK else 0)
    crc = zlib.crc32(bytes(c[:120]) + bytes(c[128:512]))
    struct.pack_into("<I", c, 124, draw(st.sampled_from([crc, 0, crc ^ 4])))
    return bytes(c)


@st.composite
def evtx_file(draw: st.DrawFn) -> bytes:
    if CORPUS_EVTX and draw(st.booleans()):
        data = draw(st.sampled_from(CORPUS_EVTX)).read_bytes()
        return draw(mutated(data, max_ops=10))
    chunks = draw(st.lists(chunk(), max_size=2))
    data = file_header(draw(st.integers(0, 4)), draw(st.sampled_from([0, 1, 3])),
                       draw(st.booleans())) + b"".join(chunks)
    return data[:draw(st.integers(8, len(data)))] if draw(st.booleans()) else data


def single_thread(src):
    src.threads = 1


@settings(max_examples=examples(2))
@given(evtx_file())
def test_evtx(data):
    run_source("evtx", data, filename="x.evtx", whole_sniff=True, prepare=single_thread)


@settings(max_examples=examples(1))
@given(st.binary(max_size=6000).map(lambda b: b"ElfFile\x00" + b))
def test_evtx_random_bytes(data):
    run_source("evtx", data, filename="x.evtx", prepare=single_thread)


@st.composite
def system(draw: st.DrawFn) -> object:
    return draw(st.one_of(
        st.fixed_dictionaries({
            "EventID": st.one_of(st.integers(-5, 2**70), hostile_text, json_values,
                                 st.fixed_dictionaries({"#text": st.integers(0, 70000)})),
            "Channel": st.one_of(st.sampled_from(["Security", "Microsoft-Windows-Sysmon/"
                                                  "Operational"]), json_values),
            "Computer": json_values,
            "TimeCreated": st.one_of(
                st.fixed_dictionaries({"#attributes": st.fixed_dictionaries({
                    "SystemTime": st.one_of(st.just("2024-01-02T03:04:05.123456Z"),
                                            hostile_text, json_values)})}), json_values),
            "EventRecordID": json_values,
            "Provider": json_values,
        }), json_values))


@st.composite
def event_object(draw: st.DrawFn) -> object:
    data = draw(st.dictionaries(st.sampled_from(["Image", "CommandLine", "User", "Data",
                                                 "#text", "", "a b", "ProcessId"]),
                                json_values, max_size=5))
    shape = draw(st.sampled_from(["evtx_dump", "velociraptor", "winlogbeat", "flat", "any"]))
    if shape == "evtx_dump":
        return {"Event": {"System": draw(system()), "EventData": draw(st.one_of(
            st.just(data), json_values))}}
    if shape == "velociraptor":
        return {"System": draw(system()), "EventData": data}
    if shape == "winlogbeat":
        return {"@timestamp": draw(json_values), "message": draw(json_values),
                "winlog": draw(st.one_of(st.fixed_dictionaries({
                    "event_id": json_values, "channel": json_values,
                    "event_data": st.one_of(st.just(data), json_values),
                    "computer_name": json_values}), json_values))}
    if shape == "flat":
        return {"EventID": draw(json_values), "Channel": draw(json_values),
                "Hostname": draw(json_values), "TimeCreated": draw(json_values), **data}
    return draw(json_values)


@st.composite
def windows_json(draw: st.DrawFn) -> bytes:
    objs = draw(st.lists(event_object(), min_size=1, max_size=6))
    layout = draw(st.sampled_from(["lines", "array", "pretty", "concat"]))
    if layout == "lines":
        text = "\n".join(json.dumps(o) for o in objs) + "\n"
    elif layout == "array":
        text = json.dumps(objs)
    elif layout == "pretty":
        text = "\n".join(json.dumps(o, indent=2) for o in objs)
    else:
        text = "".join(json.dumps(o) for o in objs)
    data = draw(mutated(text.encode("utf-8", "replace")))
    if draw(st.integers(0, 4)) == 0:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(draw(st.sampled_from(["a.json", "../b.json", "dir/"])), data)
            if draw(st.booleans()):
                zf.writestr("notes.txt", b"not json")
        z = buf.getvalue()
        return draw(st.sampled_from([z, z[:len(z) // 2], draw(mutated(z, max_ops=3))]))
    return draw(maybe_gzip(data))


@settings(max_examples=examples(3))
@given(windows_json())
def test_windows_json(data):
    run_source("windows_json", data, filename="events.json", whole_sniff=True)


@settings(max_examples=examples(2))
@given(st.lists(event_object(), min_size=1, max_size=8))
def test_windows_json_lines_accounted(objs):
    """JSON lines: every non-blank line is a row or a skip warning (one per line)."""
    lines = [json.dumps(o) for o in objs]
    if not lines[0].startswith("{"):
        lines.insert(0, json.dumps({"EventID": 1}))
    out = run_source("windows_json", ("\n".join(lines) + "\n").encode(), filename="e.json")
    assert out.error is None
    skipped = out.warned("not valid JSON", "not a Windows event")
    assert out.rows + skipped == len(lines)
