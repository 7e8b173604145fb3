"""The OTRF APT29 (day 1) and LSASS-campaign Zeek logs give the findings their emulation
plans document where the step is network-visible, and nothing else.

APT29 day 1 (OTRF compound/apt29; lab: 10.0.0.4 the DC, 10.0.1.4 SCRANTON and 10.0.1.6
NASHUA the workstations, 192.168.0.x the attacker):
  * the first C2 over HTTPS to 192.168.0.5:443 with a self-signed certificate, held open
    for 32 minutes (th-analytic-0060, 0052);
  * the collected files sent as OfficeSupplies.7z to the attacker's WebDAV share
    (th-analytic-0059);
  * python.exe fetched from that share for lateral movement (th-analytic-0058);
  * SMB, RPC and WinRM from SCRANTON to NASHUA, a violation of the lab's workstation
    isolation (th-analytic-0056, with the zone policy below);
  * NASHUA's own C2 to 192.168.0.4:8443, 376 TLS sessions to a self-signed server
    (th-analytic-0060). It is a 4-minute burst, not a beacon, and 0051 rightly says
    nothing.
LSASS campaign 01: the payload downloaded from 10.0.5.13 over plain HTTP with no host
name (th-analytic-0058). Its Meterpreter channel on 8080 is six connections: too few for
a beacon and none long; it is not flagged, and this test says so.
"""

from __future__ import annotations

import orjson

from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt

LAB = """
zones:
  dc: {networks: [10.0.0.4/32], role: server}
  workstations: {networks: [10.0.1.0/24], isolated: true}
allow:
  - {from: workstations, to: dc, ports: [53, 88, 123, 135, 389, 445, 464, 636, 3268,
                                          49152-65535]}
"""


def _hunt(tmp_path, rel, org=None):
    from tests.conftest import corpus_path

    opts = HuntOptions(workers=1, bundled_intel=False, feeds=False)
    if org:
        (tmp_path / "org.yaml").write_text(org)
        opts = HuntOptions(workers=1, bundled_intel=False, feeds=False,
                           org=str(tmp_path / "org.yaml"))
    report = hunt([str(corpus_path(rel))], tmp_path / "case", RunContext(), opts)
    assert report.stats["analytics"]["failed"] == []
    return [orjson.loads(x) for x in (tmp_path / "case" / "findings.jsonl").read_bytes()
            .splitlines()]


def test_apt29_day1_network_steps(tmp_path):
    found = _hunt(tmp_path, "zeek/otrf-apt29-day1-json", LAB)
    net = {(f["rule_id"], f["src"], f["dst"]) for f in found
           if f["engine"] == "analytics"}
    assert net == {
        ("th-analytic-0060", "10.0.1.4", "192.168.0.5"),
        ("th-analytic-0052", "10.0.1.4", "192.168.0.5"),
        ("th-analytic-0059", "10.0.1.4", "192.168.0.4"),
        ("th-analytic-0058", "10.0.1.4", "192.168.0.4"),
        ("th-analytic-0060", "10.0.1.6", "192.168.0.4"),
        ("th-analytic-0056", "10.0.1.4", "10.0.1.6"),
    }, net
    by = {f["rule_id"]: f for f in found if f["src"] == "10.0.1.4"}
    assert "OfficeSupplies.7z" in by["th-analytic-0059"]["summary"]
    assert "python.exe" in by["th-analytic-0058"]["summary"]
    ports = {f["fields"]["port"] for f in found if f["rule_id"] == "th-analytic-0056"}
    assert {"445", "5985", "135"} <= ports
    nashua = [f for f in found if f["rule_id"] == "th-analytic-0060"
              and f["src"] == "10.0.1.6"]
    assert nashua[0]["fields"]["sessions"] == "376" and nashua[0]["level"] == "high"


def test_lsass_campaign_payload_download(tmp_path):
    found = _hunt(tmp_path, "zeek/otrf-lsass-campaign-01-tsv")
    net = {(f["rule_id"], f["src"], f["dst"]) for f in found
           if f["engine"] == "analytics"}
    assert net == {("th-analytic-0058", "192.168.1.41", "10.0.5.13")}
    (f,) = [f for f in found if f["rule_id"] == "th-analytic-0058"]
    assert "application/x-dosexec" in f["summary"]
