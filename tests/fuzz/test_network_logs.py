"""Property tests: Zeek logs (TSV with random ``#fields`` headers, JSON lines) and the
proxy/firewall/flow exports (net_export presets and mappings: CSV, TSV, ELFF, JSON lines).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz._contract import (
    examples,
    hostile_text,
    json_values,
    lines_of,
    maybe_gzip,
    mutated,
    run_source,
)

ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "history", "query", "qtype_name", "answers", "method", "host", "uri",
               "status_code", "user_agent", "version", "server_name", "established", "ja3",
               "fuid", "mime_type", "weird_thing"]
ZEEK_PATHS = ["conn", "dns", "http", "ssl", "files", "weird", "x509", "", "conn dns"]


@st.composite
def zeek_value(draw: st.DrawFn, name: str) -> str:
    if name == "ts":
        return draw(st.one_of(st.floats(-1e12, 1e12, allow_nan=False).map(lambda f: f"{f:.6f}"),
                              st.just("-"), hostile_text))
    if name.endswith(("_p", "_bytes", "status_code")):
        return draw(st.one_of(st.integers(-1, 2**70).map(str), st.just("-"),
                              st.just("(empty)")))
    if name in ("local_orig", "established"):
        return draw(st.sampled_from(["T", "F", "-", "true", "x"]))
    return draw(st.one_of(hostile_text.map(lambda t: t.replace("\t", " ").replace("\n", " ")),
                          st.just("-"), st.just("(empty)"), st.just("a,b,c")))


@st.composite
def zeek_tsv(draw: st.DrawFn) -> bytes:
    out = ["#separator \\x09", "#set_separator\t,",
           f"#empty_field\t{draw(st.sampled_from(['(empty)', '', '-']))}",
           f"#unset_field\t{draw(st.sampled_from(['-', '', 'NULL']))}"]
    for _ in range(draw(st.integers(1, 3))):
        out.append(f"#path\t{draw(st.sampled_from(ZEEK_PATHS))}")
        fields = draw(st.lists(st.sampled_from(ZEEK_FIELDS), min_size=1, max_size=12))
        out.append("#fields\t" + "\t".join(fields))
        out.append("#types\t" + "\t".join("string" for _ in fields))
        for _ in range(draw(st.integers(0, 6))):
            out.append("\t".join(draw(zeek_value(f)) for f in fields))
        if draw(st.booleans()):
            out.append("#close\t2024-01-01-00-00-00")
    return draw(maybe_gzip(draw(mutated(lines_of(out)))))


@st.composite
def zeek_json(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(1, 8))):
        obj = {"ts": draw(st.one_of(st.floats(allow_nan=False), st.integers(), hostile_text)),
               "uid": "C1"}
        for f in draw(st.lists(st.sampled_from(ZEEK_FIELDS), max_size=8)):
            obj[f] = draw(json_values)
        if draw(st.booleans()):
            obj["_path"] = draw(st.one_of(st.sampled_from(ZEEK_PATHS), json_values))
        if draw(st.booleans()):
            obj["@system"] = draw(json_values)
        out.append(json.dumps(obj))
    return draw(maybe_gzip(draw(mutated(lines_of(out)))))


@settings(max_examples=examples(3))
@given(zeek_tsv(), st.sampled_from(["conn.log", "dns.00:00:00-01:00:00.log.gz", "x"]))
def test_zeek_tsv(data, name):
    run_source("zeek", data, filename=name, whole_sniff=True)


@settings(max_examples=examples(2))
@given(zeek_json())
def test_zeek_json(data):
    run_source("zeek", data, filename="http.log", whole_sniff=True)


#: Headers of the net_export presets, and of generic firewall CSVs.
HEADERS = [
    ["ts", "te", "td", "sa", "da", "sp", "dp", "pr", "flg", "fwd", "stos", "ipkt", "ibyt",
     "opkt", "obyt", "in", "out", "sas", "das", "smk", "dmk", "dtos", "dir", "nh", "nhb",
     "svln", "dvln", "ismc", "odmc", "idmc", "osmc", "mpls1", "cl", "sl", "al", "ra", "eng",
     "exid", "tr"],
    ["datetime", "login", "proto", "eurl", "action", "reqsize", "respsize", "urlcat", "cip",
     "sip", "reqmethod", "respcode", "ua", "contenttype"],
    ["Receive Time", "Source address", "Destination address", "Destination Port",
     "Bytes Sent", "Bytes Received", "Action", "Start Time", "IP Protocol"],
    ["time", "src_ip", "dst_ip", "dst_port", "action", "bytes", "proto"],
    ["timestamp", "src", "dst", "dport", "protocol", "sentbyte", "rcvdbyte"],
]


@st.composite
def cell(draw: st.DrawFn) -> str:
    return draw(st.one_of(
        st.ip_addresses().map(str), st.integers(-1, 2**70).map(str),
        st.sampled_from(["2024-01-02 03:04:05", "2024-01-02T03:04:05Z", "1704164645",
                         "1704164645.123", "01/02/2024 03:04:05", "-", "", "allow",
                         "deny", "tcp", '"quoted, cell"', '"bad"quote', "Summary"]),
        hostile_text))


@st.composite
def net_csv(draw: st.DrawFn) -> bytes:
    header = list(draw(st.sampled_from(HEADERS)))
    if draw(st.booleans()):
        header = draw(st.permutations(header))[:draw(st.integers(1, len(header)))]
    sep = draw(st.sampled_from([",", ",", "\t"]))
    rows = [sep.join(header)]
    for _ in range(draw(st.integers(0, 8))):
        n = len(header) + draw(st.sampled_from([0, 0, 0, -1, 1]))
        rows.append(sep.join(draw(cell()) for _ in range(max(n, 0))))
    if draw(st.booleans()):
        rows += ["Summary: total flows: 1", "x,y"]
    if draw(st.booleans()):
        rows.insert(draw(st.integers(1, len(rows))), sep.join(header))
    return draw(maybe_gzip(draw(mutated(lines_of(rows)))))


@st.composite
def elff(draw: st.DrawFn) -> bytes:
    fields = ["date", "time", "time-taken", "c-ip", "cs-username", "s-action", "sc-status",
              "cs-method", "cs-uri-scheme", "cs-host", "cs-uri-path", "sc-bytes", "cs-bytes",
              "cs(User-Agent)", "s-ip"]
    out = ["#Software: SGOS 6.7", "#Version: 1.0"]
    for _ in range(draw(st.integers(1, 2))):
        fs = draw(st.permutations(fields))[:draw(st.integers(1, len(fields)))]
        out.append("#Fields: " + " ".join(fs))
        for _ in range(draw(st.integers(0, 6))):
            out.append(" ".join(draw(st.one_of(cell(), st.just('"a b"'))).replace(" ", "+")
                                if draw(st.booleans()) else draw(cell()) or "-"
                                for _ in range(len(fs) + draw(st.sampled_from([0, 0, 1])))))
    return draw(maybe_gzip(draw(mutated(lines_of(out)))))


@settings(max_examples=examples(3))
@given(st.one_of(net_csv(), elff()))
def test_net_export_presets(data):
    run_source("net_export", data, whole_sniff=True)


MAPPINGS = [
    {"table": "net_conn", "format": "csv", "columns": {
        "ts": "when", "src_ip": "from", "dst_ip": "to", "dst_port": "port",
        "bytes_out": "up"}},
    {"table": "proxy", "format": "jsonl", "timezone": "Australia/Brisbane", "columns": {
        "ts": ["time", "event.time"], "src_ip": "client.ip", "url": "url",
        "bytes_out": "sent"}},
    {"table": "net_conn", "format": "tsv", "columns": {
        "ts": "when", "src_ip": "from", "dst_ip": "to"}},
]


@st.composite
def mapped_input(draw: st.DrawFn) -> tuple[dict, bytes]:
    m = draw(st.sampled_from(MAPPINGS))
    if m["format"] == "jsonl":
        out = []
        for _ in range(draw(st.integers(0, 8))):
            obj = {"time": draw(cell()), "client": draw(st.one_of(
                st.fixed_dictionaries({"ip": cell()}), json_values)),
                "url": draw(json_values), "sent": draw(json_values),
                "event": draw(st.one_of(st.fixed_dictionaries({"time": cell()}), json_values))}
            out.append(json.dumps(obj))
        body = lines_of(out)
    else:
        sep = "," if m["format"] == "csv" else "\t"
        head = ["when", "from", "to", "port", "up"]
        rows = [sep.join(head)] + [sep.join(draw(cell()) for _ in head)
                                   for _ in range(draw(st.integers(0, 8)))]
        body = lines_of(rows)
    return m, draw(maybe_gzip(draw(mutated(body))))


@settings(max_examples=examples(2))
@given(mapped_input())
def test_net_export_mappings(case):
    mapping, data = case
    run_source("net_export", data, options={"net_mapping": [mapping]})


@settings(max_examples=examples(1))
@given(st.binary(max_size=4096), st.sampled_from(["zeek", "net_export"]))
def test_random_bytes(data, name):
    run_source(name, data)
