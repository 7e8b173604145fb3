"""Cloud uploads: a host with a normal week that sends 2 GB to Dropbox at 02:00 is flagged;
its twin that uploads 50 MB every business hour is not; traffic to a service is named by
TLS SNI (same uid) or by the DNS answer the client got."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson

from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt

MON = datetime(2026, 10, 5, 0, 0, tzinfo=UTC)


def _conn(uid, t, src, dst, out, inn):
    return {"ts": t.timestamp(), "uid": uid, "id.orig_h": src, "id.orig_p": 50000,
            "id.resp_h": dst, "id.resp_p": 443, "proto": "tcp", "service": "ssl",
            "orig_bytes": out, "resp_bytes": inn, "conn_state": "SF"}


def test_spike_flagged_steady_twin_not(tmp_path):
    conns, ssl, dns = [], [], []
    n = 0
    for day in range(5):
        for hour in range(9, 17):
            t = MON + timedelta(days=day, hours=hour, minutes=5)
            for host, size in (("10.0.0.5", 2 << 20), ("10.0.0.6", 50 << 20)):
                n += 1
                conns.append(_conn(f"C{n}", t, host, "198.51.100.41", size, 40_000))
                ssl.append({"ts": t.timestamp(), "uid": f"C{n}", "id.orig_h": host,
                            "id.resp_h": "198.51.100.41", "server_name": "content.dropboxapi.com"})
    t = MON + timedelta(days=5, hours=2, minutes=3)  # Saturday 02:03 UTC
    for i in range(4):
        n += 1
        conns.append(_conn(f"C{n}", t + timedelta(minutes=i), "10.0.0.5", "198.51.100.43",
                           512 << 20, 90_000))
    # no SNI for these: named by the DNS answer the client got just before
    dns.append({"ts": (t - timedelta(minutes=1)).timestamp(), "uid": "D1",
                "id.orig_h": "10.0.0.5", "id.resp_h": "10.0.0.1",
                "query": "content.dropboxapi.com", "answers": ["198.51.100.43"]})
    ev = tmp_path / "zeek"
    ev.mkdir()
    for name, rows in (("conn.log", conns), ("ssl.log", ssl), ("dns.log", dns)):
        (ev / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    case = tmp_path / "case"
    report = hunt([str(ev)], case, RunContext(), HuntOptions(
        workers=1, bundled_intel=False, feeds=False))
    assert report.stats["analytics"]["failed"] == []
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    hits = [f for f in found if f["rule_id"] == "th-analytic-0046"]
    assert len(hits) == 1
    (h,) = hits
    assert h["host"] == "10.0.0.5" and h["dst"] == "dropbox" and h["level"] == "critical"
    assert "2.1 GB" in h["summary"] or "2.0 GiB" in h["summary"], h["summary"]
    assert "on 2026-10-10" in h["summary"] and "from 02:00" in h["summary"]
    assert "median cloud hour" in h["summary"]
