"""Identity analytics on generated sign-in logs (Entra ID JSON, Okta System Log, a VPN CSV),
each with a positive case and a benign twin; a small GeoIP database made with mmdb-writer."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt

T0 = datetime(2026, 10, 6, 0, 0, tzinfo=UTC)


def _t(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _entra(n: int, minutes: float, user: str, ip: str, *, ok=True, factor="none",
           interactive=True, session="s-%d", app="Office 365", city="Sydney") -> dict:
    return {"id": f"e{n}", "createdDateTime": _t(minutes), "userPrincipalName": user,
            "appDisplayName": app, "ipAddress": ip, "isInteractive": interactive,
            "correlationId": session % n if "%d" in session else session,
            "status": {"errorCode": 0 if ok else 50126},
            "authenticationRequirement": "singleFactorAuthentication" if factor == "none"
            else "multiFactorAuthentication",
            "mfaDetail": {} if factor == "none" else {"authMethod": factor},
            "location": {"city": city, "countryOrRegion": "AU"}}


def _okta(n: int, minutes: float, user: str, event: str, result: str) -> dict:
    return {"uuid": f"o{n}", "published": _t(minutes), "eventType": event,
            "actor": {"alternateId": user}, "outcome": {"result": result},
            "client": {"ipAddress": "198.51.100.70"},
            "debugContext": {"debugData": {"factor": "OKTA_VERIFY_PUSH"}}}


def build_identity_case(root: Path) -> tuple[Path, dict]:
    """Sign-in logs (Entra, Okta, a VPN CSV) for every identity analytic, hunted into
    ``root/case``; returns the case and the hunt options it needs (org, GeoIP, risky)."""
    ev = root / "ev"
    ev.mkdir()
    entra = [
        # single factor: vpn-user (MFA required) positive; guest (not required) benign
        _entra(1, 0, "vpn-user@corp.example", "203.0.113.10", app="Corp VPN"),
        _entra(2, 1, "guest@corp.example", "203.0.113.11", app="Wiki"),
        # impossible travel: traveller Sydney -> London in 40 min; commuter same city twice
        _entra(3, 10, "traveller@corp.example", "198.51.100.10", factor="push"),
        _entra(4, 50, "traveller@corp.example", "192.0.2.20", factor="push"),
        _entra(5, 10, "commuter@corp.example", "198.51.100.10", factor="push"),
        _entra(6, 50, "commuter@corp.example", "198.51.100.11", factor="push"),
        # session reuse: one correlation ID from two networks; a twin from one network
        _entra(7, 100, "alice@corp.example", "198.51.100.30", factor="push",
               session="sess-stolen"),
        _entra(8, 130, "alice@corp.example", "203.0.113.99", factor="push",
               session="sess-stolen"),
        _entra(9, 100, "bob@corp.example", "198.51.100.31", factor="push", session="sess-b"),
        _entra(10, 130, "bob@corp.example", "198.51.100.32", factor="push", session="sess-b"),
        # service account interactive vs its non-interactive twin
        _entra(11, 200, "svc_backup@corp.example", "198.51.100.40", factor="push"),
        _entra(12, 200, "svc_report@corp.example", "198.51.100.41", factor="push",
               interactive=False),
    ]
    (ev / "signins.json").write_text(json.dumps({"value": entra}))
    okta = [_okta(i, 300 + i, "victim@corp.example", "system.push.send_factor_verify_push",
                  "SUCCESS") for i in range(6)]
    okta += [_okta(10 + i, 300 + i + 0.5, "victim@corp.example",
                   "user.mfa.okta_verify.deny_push", "FAILURE") for i in range(5)]
    okta.append(_okta(20, 308, "victim@corp.example", "user.authentication.auth_via_mfa",
                      "SUCCESS"))
    okta += [_okta(30 + i, 300 + 20 * i, "calm@corp.example",
                   "system.push.send_factor_verify_push", "SUCCESS") for i in range(3)]
    (ev / "okta.json").write_text("\n".join(json.dumps(o) for o in okta))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["timestamp", "username", "source_ip", "result", "factor"])
    w.writerow([_t(400), "remote1", "185.220.101.5", "success", "otp"])   # tor exit
    w.writerow([_t(401), "remote2", "198.51.100.50", "success", "otp"])   # ordinary
    w.writerow(["not a time", "remote3", "198.51.100.51", "success", "otp"])
    (ev / "vpn.csv").write_text(buf.getvalue())
    risky = root / "risky.yml"
    risky.write_text("tor: [185.220.101.0/24]\nsoho: [203.0.113.200]\n")
    import mmdb_writer
    from netaddr import IPSet

    db = mmdb_writer.MMDBWriter(4, "GeoIP2-City", languages=["en"])
    db.insert_network(IPSet(["198.51.100.0/24"]), {
        "location": {"latitude": -33.87, "longitude": 151.21},
        "country": {"iso_code": "AU"}, "city": {"names": {"en": "Sydney"}}})
    db.insert_network(IPSet(["192.0.2.0/24"]), {
        "location": {"latitude": 51.51, "longitude": -0.13},
        "country": {"iso_code": "GB"}, "city": {"names": {"en": "London"}}})
    geo = root / "geo.mmdb"
    db.to_db_file(str(geo))
    org = root / "org.yaml"
    org.write_text("own_domains: [corp.example]\nmfa_required:\n  users: "
                   "[vpn-user@corp.example]\n  apps: [corp vpn]\n")
    return root / "case", {"org": str(org), "geoip": str(geo),
                           "risky_networks": str(risky)}


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    case, extra = build_identity_case(tmp_path_factory.mktemp("identity"))
    report = hunt([str(case.parent / "ev")], case, RunContext(), HuntOptions(
        workers=1, bundled_intel=False, feeds=False, **extra))
    rows = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    return report, rows


def _by(rows, rule):
    return [f for f in rows if f["rule_id"] == rule]


def test_sources_read_every_row(found):
    report, _ = found
    assert report.stats["tables"]["auth"] == 12 + 15 + 2
    assert any("without a readable time" in w["message"] for w in report.warnings)


def test_single_factor(found):
    hits = _by(found[1], "th-analytic-0036")
    assert [f["user"] for f in hits] == ["vpn-user@corp.example"]
    assert hits[0]["level"] == "high"


def test_impossible_travel(found):
    hits = _by(found[1], "th-analytic-0038")
    assert [f["user"] for f in hits] == ["traveller@corp.example"]
    assert "London" in hits[0]["summary"] and "km/h" in hits[0]["summary"]


def test_session_reuse(found):
    hits = _by(found[1], "th-analytic-0040")
    assert [f["user"] for f in hits] == ["alice@corp.example"]


def test_service_account_interactive(found):
    hits = _by(found[1], "th-analytic-0041")
    assert [f["user"] for f in hits] == ["svc_backup@corp.example"]


def test_mfa_fatigue(found):
    hits = _by(found[1], "th-analytic-0037")
    assert [f["user"] for f in hits] == ["victim@corp.example"]
    assert hits[0]["level"] == "critical" and "gave in" in hits[0]["summary"]


def test_risky_network(found):
    hits = _by(found[1], "th-analytic-0039")
    assert [(f["user"], f["dst"]) for f in hits] == [("remote1", "tor")]


# -- the Windows side: Security 4624 / 4648 of service accounts ------------------------

def _sec(rec: int, eid: int, minutes: float, host: str, data: dict) -> dict:
    """One Security event as evtx_dump writes it (JSON)."""
    return {"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
        "EventID": eid, "EventRecordID": rec, "Channel": "Security", "Computer": host,
        "TimeCreated": {"#attributes": {"SystemTime": _t(minutes)}}}, "EventData": data}}


def _logon(rec, minutes, host, user, logon_type, ip="-", workstation="-"):
    return _sec(rec, 4624, minutes, host, {
        "SubjectUserName": f"{host}$", "SubjectDomainName": "CORP", "TargetUserName": user,
        "TargetDomainName": "CORP", "LogonType": logon_type, "IpAddress": ip,
        "WorkstationName": workstation, "LogonProcessName": "User32",
        "ProcessName": r"C:\Windows\System32\svchost.exe"})


def _explicit(rec, minutes, host, subject, user, process, target):
    return _sec(rec, 4648, minutes, host, {
        "SubjectUserName": subject, "SubjectDomainName": "CORP", "TargetUserName": user,
        "TargetDomainName": "CORP", "TargetServerName": target, "ProcessName": process,
        "IpAddress": "-"})


def _win_hunt(root, org_text=None):
    ev = root / "ev"
    ev.mkdir()
    events = [
        # positive: svc_backup over RDP (type 10) to DC01; its twins: the same account's
        # service logon (type 5), and a person's RDP logon
        _logon(1, 0, "DC01", "svc_backup", 10, "10.30.0.5", "WS-ADMIN"),
        _logon(2, 1, "DC01", "svc_backup", 10, "10.30.0.5", "WS-ADMIN"),
        _logon(3, 2, "DC01", "svc_backup", 5),
        _logon(4, 3, "DC01", "alice", 10, "10.30.0.6", "WS-ALICE"),
        # console (2) and cached (11) logons of service accounts: positive
        _logon(5, 10, "FS01", "sql-svc", 2, "127.0.0.1"),
        _logon(6, 11, "WS01", "srv-deploy", 11),
        # a network logon (3) and a batch job (4) of a service account: benign
        _logon(7, 12, "FS01", "svc_backup", 3, "10.20.0.9"),
        _logon(8, 13, "FS01", "svc_report", 4),
        # profile-only account (positive only with the profile)
        _logon(9, 14, "FS01", "backupadmin", 10, "10.30.0.7"),
        # 4648: alice types svc_backup's password into mstsc (positive); the scheduler
        # (svchost) uses svc_report's (benign); alice uses bob's in mstsc (not a service)
        _explicit(10, 20, "WS-ALICE", "alice", "svc_backup",
                  r"C:\Windows\System32\mstsc.exe", "DC01.corp.example"),
        _explicit(11, 21, "FS01", "FS01$", "svc_report", r"C:\Windows\System32\svchost.exe",
                  "localhost"),
        _explicit(12, 22, "WS-ALICE", "alice", "bob", r"C:\Windows\System32\mstsc.exe",
                  "DC01.corp.example"),
    ]
    (ev / "security.json").write_text("".join(json.dumps(e) + "\n" for e in events))
    org = None
    if org_text:
        org = root / "org.yaml"
        org.write_text(org_text)
    case = root / "case"
    report = hunt([str(ev)], case, RunContext(), HuntOptions(
        workers=1, org=str(org) if org else None, bundled_intel=False, feeds=False))
    assert report.stats["analytics"]["failed"] == []
    rows = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    return _by(rows, "th-analytic-0061")


def test_windows_service_account_interactive_default_patterns(tmp_path):
    hits = _win_hunt(tmp_path)
    got = {(f["host"], f["user"], f["fields"]["kind"]) for f in hits}
    assert got == {
        ("DC01", "CORP\\svc_backup", "RDP logon (4624 type 10)"),
        ("FS01", "CORP\\sql-svc", "interactive logon (4624 type 2)"),
        ("WS01", "CORP\\srv-deploy", "cached interactive logon (4624 type 11)"),
        ("WS-ALICE", "CORP\\svc_backup", "explicit credentials (4648)")}
    rdp = next(f for f in hits if f["host"] == "DC01")
    assert rdp["src"] == "10.30.0.5" and rdp["level"] == "high"
    assert rdp["summary"].startswith("2 RDP logon(s) (4624 type 10) of the service account "
                                     "CORP\\svc_backup on DC01 from 10.30.0.5 (workstation "
                                     "WS-ADMIN)")
    assert len(rdp["evidence"]) == 2
    mstsc = next(f for f in hits if f["host"] == "WS-ALICE")
    assert "by mstsc.exe run by CORP\\alice" in mstsc["summary"]
    assert mstsc["dst"] == "DC01.corp.example"
    assert not any(f["host"] == "FS01" and f["src"] for f in hits)  # console: no source


def test_windows_service_account_interactive_profile_patterns(tmp_path):
    hits = _win_hunt(tmp_path, "service_accounts: ['^svc_', '^backupadmin$']\n")
    assert {f["user"] for f in hits} == {"CORP\\svc_backup", "CORP\\backupadmin"}
