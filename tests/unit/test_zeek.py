"""Zeek reader on hostile and changing input: a header that changes mid-file, lines with
the wrong field count, unset and empty fields, non-JSON lines in JSON logs, gzip cut short."""

from __future__ import annotations

import gzip

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.ingest import ingest

TSV = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
    "#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\t"
    "orig_bytes\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\n"
    "1700000000.5\tC1\t10.0.0.1\t5000\t198.51.100.1\t443\ttcp\t1200\n"
    "1700000001.5\tC2\t10.0.0.1\t5001\t198.51.100.1\t443\ttcp\n"           # short line
    "1700000002.5\tC3\t10.0.0.2\t5002\t198.51.100.2\t443\ttcp\t-\n"         # unset bytes
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\n"
    "1700000003.5\tC4\t10.0.0.3\t5003\t198.51.100.3\t53\tudp\t(empty)\n"    # new header
)


def test_tsv_header_change_bad_lines_unset_empty(tmp_path):
    p = tmp_path / "conn.log"
    p.write_text(TSV)
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(p)], store, RunContext(), workers=1)
    (rec,) = store.artefacts.values()
    assert rec["lines"] == {"lines": 12, "records": 3, "directives": 8, "blank": 0, "bad": 1}
    assert any("field count" in w["message"] and "line 9" in w["locators"]
               for w in rec["warnings"])
    rows = store.sql("SELECT uid, bytes_out, service FROM net_conn ORDER BY uid").to_pylist()
    assert rows == [{"uid": "C1", "bytes_out": 1200, "service": None},
                    {"uid": "C3", "bytes_out": None, "service": None},
                    {"uid": "C4", "bytes_out": None, "service": ""}]


def test_json_bad_lines_and_truncated_gzip(tmp_path):
    import hashlib

    body = b"".join(
        b'{"ts":1700000000.%d,"uid":"C%s","id.orig_h":"10.0.0.1","query":"%s.EVIL.example",'
        b'"qtype_name":"TXT"}\nnot json at all %d\n' % (
            i, hashlib.sha256(b"%d" % i).hexdigest().encode(),
            hashlib.md5(b"%d" % i).hexdigest().encode(), i) for i in range(300))
    gz = gzip.compress(body)
    p = tmp_path / "dns.json.gz"
    p.write_bytes(gz[: len(gz) * 2 // 3])  # cut short
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(p)], store, RunContext(), workers=1)
    (rec,) = store.artefacts.values()
    lines = rec["lines"]
    assert 100 <= lines["records"] < 300 and 100 <= lines["bad"] <= 300
    assert lines["records"] + lines["bad"] + lines["blank"] == lines["lines"]
    msgs = " ".join(w["message"] for w in rec["warnings"])
    assert "not a JSON object" in msgs and ("gzip" in msgs or "truncated" in msgs)
    q = store.sql("SELECT query FROM dns").to_pylist()
    assert len(q) == lines["records"] and all(r["query"].endswith(".evil.example") for r in q)


def test_intel_matches_network_tables(tmp_path):
    import orjson

    from tidehunt.engine import HuntOptions, hunt

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "dns.log").write_text(
        '{"ts":1790000000.1,"uid":"C1","id.orig_h":"10.0.0.9","id.resp_h":"10.0.0.1",'
        '"query":"c2.bad.example","answers":["203.0.113.66"]}\n')
    (ev / "conn.log").write_text(
        '{"ts":1790000001.1,"uid":"C2","id.orig_h":"10.0.0.9","id.orig_p":5555,'
        '"id.resp_h":"203.0.113.66","id.resp_p":443,"proto":"tcp","orig_bytes":10}\n')
    intel = tmp_path / "iocs.txt"
    intel.write_text("bad.example\n203.0.113.66\n")
    hunt([str(ev)], tmp_path / "case", RunContext(), HuntOptions(
        workers=1, intel=[str(intel)], bundled_intel=False, feeds=False))
    found = [orjson.loads(x) for x in (tmp_path / "case" / "findings.jsonl").read_bytes()
             .splitlines() if b"th-analytic-0034" in x]
    by = {f["dst"]: f for f in found}
    assert set(by) == {"bad.example", "203.0.113.66"}
    assert "in dns, net_conn" in by["203.0.113.66"]["summary"]
    assert all(f["host"] == "10.0.0.9" for f in found)
