"""Threat intel: a generated case where an APT40-pack domain, a MISP address and a STIX
hash each appear once gives exactly those three matches with their ages; the same values on
a warninglist, or expired outside retro-hunt mode, give none."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt
from tidehunt.intel.ageing import AgeingPolicy
from tidehunt.intel.model import normalise, refang
from tidehunt.intel.readers import read

PACK_DOMAIN = "www.vitaminmain.info"  # PP-17, 2017: long expired
MISP_IP = "198.51.100.99"
STIX_SHA = "ab" * 32
NOW = datetime.now(UTC)


def _ev(rid: int, eid: int, data: dict) -> bytes:
    ts = (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": eid,
        "TimeCreated": {"#attributes": {"SystemTime": ts}}, "EventRecordID": rid,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "WS9.corp.example"},
        "EventData": data}}) + b"\n"


def _case(tmp_path, *, retro=True, warn=None, extra_ioc=()):
    ev = tmp_path / "ev"
    ev.mkdir(exist_ok=True)
    (ev / "sysmon.json").write_bytes(b"".join([
        _ev(1, 22, {"QueryName": PACK_DOMAIN, "Image": r"C:\x\a.exe"}),
        _ev(2, 3, {"DestinationIp": MISP_IP, "SourceIp": "10.1.1.9", "Image": r"C:\x\a.exe"}),
        _ev(3, 1, {"Image": r"C:\x\b.exe", "CommandLine": "b.exe",
                   "Hashes": f"MD5={'0' * 32},SHA256={STIX_SHA.upper()}"}),
        _ev(4, 22, {"QueryName": "www.google.com", "Image": r"C:\x\a.exe"}),
    ]))
    intel = tmp_path / "intel"
    intel.mkdir(exist_ok=True)
    seen = (NOW - timedelta(days=10)).isoformat()
    (intel / "event.json").write_text(json.dumps({"Event": {
        "info": "test event", "date": seen[:10], "Attribute": [
            {"type": "ip-dst", "value": MISP_IP.replace(".", "[.]"), "to_ids": True,
             "first_seen": seen, "category": "Network activity"},
            {"type": "domain", "value": "google.com", "to_ids": True}]}}))
    import stix2

    b = stix2.Bundle(objects=[stix2.Indicator(
        name="tool", pattern=f"[file:hashes.'SHA-256' = '{STIX_SHA}']", pattern_type="stix",
        valid_from=NOW - timedelta(days=30), confidence=90), *extra_ioc])
    (intel / "bundle.json").write_text(b.serialize())
    opts = HuntOptions(workers=1, intel=[str(intel)], retro=retro,
                       warninglists=[str(warn)] if warn else [])
    case = tmp_path / "case"
    report = hunt([str(ev)], case, RunContext(), opts)
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    return report, [f for f in found if f["rule_id"] == "th-analytic-0034"]


def test_three_sources_three_matches_with_their_ages(tmp_path):
    report, hits = _case(tmp_path)
    by = {f["dst"]: f for f in hits}
    assert len(hits) == 3 and set(by) == {PACK_DOMAIN, MISP_IP, STIX_SHA}
    pack = by[PACK_DOMAIN]
    assert "expired" in pack["summary"] and "retro-hunt" in pack["summary"]
    assert pack["level"] == "low" and "apt40-pack/PP-17" in pack["summary"]
    assert "10 days old" in by[MISP_IP]["summary"] and by[MISP_IP]["level"] == "high"
    assert "30 days old" in by[STIX_SHA]["summary"]
    assert all(f["host"] == "WS9.corp.example" for f in hits)
    # google.com is in the feed, and queried, but warninglisted
    assert report.stats["intel"]["warninglisted"] >= 1
    assert not any("google" in f["dst"] for f in hits)


def test_warninglist_and_no_retro_give_none(tmp_path):
    wl = tmp_path / "wl.yml"
    wl.write_text(f"networks: [{MISP_IP}/32]\nhashes: [{STIX_SHA}]\ndomains: [vitaminmain.info]\n")
    (tmp_path / "a").mkdir()
    _, hits = _case(tmp_path / "a", warn=wl)
    assert hits == []
    (tmp_path / "b").mkdir()
    report, hits = _case(tmp_path / "b", retro=False)
    assert {f["dst"] for f in hits} == {MISP_IP, STIX_SHA}  # the 2017 domain has expired
    assert report.stats["intel"]["expired_dropped"] >= 1


def test_ageing_policy():
    pol = AgeingPolicy()
    assert pol.lifetime("ip") == 60 and pol.lifetime("url") == 180
    assert pol.lifetime("domain") == 365
    assert pol.score("ip", 0, 80) == 80
    assert 0 < pol.score("ip", 50, 80) < pol.score("ip", 10, 80) <= 80
    assert pol.score("ip", 61, 80) == 0
    assert AgeingPolicy.parse(["ip=30", "other=90"]).lifetime("sha256") == 90


@pytest.mark.parametrize(("kind", "raw", "want"), [
    ("ip-dst", "203.0.113[.]5", ("ip", "203.0.113.5")),
    ("domain", "EVIL[.]Example[.]com.", ("domain", "evil.example.com")),
    ("url", "hxxps://evil[.]example/x", ("url", "https://evil.example/x")),
    ("filename|sha256", "a.exe|" + "AB" * 32, ("sha256", "ab" * 32)),
    ("text", "d41d8cd98f00b204e9800998ecf8427e", ("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("email-src", "Bad(at)mail[.]example", ("email", "bad@mail.example")),
    ("ip-dst", "not an ip", None),
])
def test_normalise(kind, raw, want):
    assert normalise(kind, raw) == want
    assert refang("hxxp://a[.]b") == "http://a.b"


def test_plain_and_signature_base_lists(tmp_path):
    p = tmp_path / "c2.txt"
    p.write_text("# Reference: report\nevil.example\n203.0.113.9;C2\n\\\\evil\\.dll;80\n"
                 "not a value at all\n", encoding="utf-8")
    r = read(p)
    assert [(i.type, i.value) for i in r.indicators] == [("domain", "evil.example"),
                                                         ("ip", "203.0.113.9")]
    assert r.skipped == 2 and r.patterns == 1
    assert r.indicators[0].context == "report" and r.indicators[1].context == "C2"


def test_parse_time_reads_every_layout_the_sources_meet():
    from tidehunt.model.times import parse_time

    want = datetime(2026, 10, 8, 3, 20, tzinfo=UTC)
    for v in ("2026-10-08T03:20:00Z", "2026-10-08T03:20:00", "2026-10-08T13:20:00+10:00",
              "1791429600", 1791429600, "1791429600000", "10/08/2026 3:20:00 AM",
              datetime(2026, 10, 8, 3, 20)):  # noqa: DTZ001 - a naive one is read as UTC
        assert parse_time(v) == want, v
    assert all(parse_time(v) is None for v in (None, "", "0", "yesterday", "99999999999999"))
