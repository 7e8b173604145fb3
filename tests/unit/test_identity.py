"""Identity analytics on generated sign-in logs (Entra ID JSON, Okta System Log, a VPN CSV),
each with a positive case and a benign twin; a small GeoIP database made with mmdb-writer."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

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


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
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
    case = root / "case"
    report = hunt([str(ev)], case, RunContext(), HuntOptions(
        workers=1, org=str(org), geoip=str(geo), risky_networks=str(risky),
        bundled_intel=False, feeds=False))
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
