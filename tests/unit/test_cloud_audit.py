"""Cloud audit analytics on generated Microsoft 365 and Google Workspace exports, each with
a positive case and a benign twin."""

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

T0 = datetime(2026, 10, 8, 1, 0, tzinfo=UTC)


def _m(n: int, minutes: float, user: str, op: str, **kw) -> dict:
    return {"Id": f"m{n}", "CreationTime": (T0 + timedelta(minutes=minutes)).strftime(
        "%Y-%m-%dT%H:%M:%S"), "Operation": op, "UserId": user,
        "Workload": kw.pop("Workload", "SharePoint"), "ClientIP": "198.51.100.80", **kw}


def _g(n: int, minutes: float, user: str, app: str, name: str, **params) -> dict:
    return {"kind": "admin#reports#activity", "id": {
        "time": (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "applicationName": app, "uniqueQualifier": str(n)}, "actor": {"email": user},
        "ipAddress": "203.0.113.81", "events": [{"name": name, "parameters": [
            {"name": k, "value": v} for k, v in params.items()]}]}


def build_cloud_case(root: Path) -> tuple[Path, dict]:
    """Cloud audit logs (M365 and Google Workspace) for every cloud analytic; returns
    the case folder to hunt them into and the hunt options they need (the org profile)."""
    ev = root / "ev"
    ev.mkdir()
    m = []
    # mass download by the attacker in one hour (and a quiet day before), a normal user
    m += [_m(i, -1440 + i * 30, "j.smith@corp.example", "FileDownloaded",
             ObjectId=f"https://corp.sharepoint.com/d/old{i}.docx") for i in range(5)]
    m += [_m(100 + i, i * 0.5, "j.smith@corp.example", "FileDownloaded",
             ObjectId=f"https://corp.sharepoint.com/d/research{i}.docx") for i in range(60)]
    m += [_m(200 + i, i * 5, "k.lee@corp.example", "FileDownloaded",
             ObjectId=f"https://corp.sharepoint.com/d/k{i}.docx") for i in range(10)]
    m.append(_m(300, 70, "j.smith@corp.example", "AnonymousLinkCreated",
                ObjectId="https://corp.sharepoint.com/d/plans.docx"))
    m.append(_m(301, 71, "j.smith@corp.example", "SharingInvitationCreated",
                ObjectId="https://corp.sharepoint.com/d/fleet.xlsx",
                TargetUserOrGroupName="drop@mail.example"))
    m.append(_m(302, 72, "k.lee@corp.example", "SharingInvitationCreated",
                ObjectId="https://corp.sharepoint.com/d/menu.docx",
                TargetUserOrGroupName="r.lee@corp.example"))
    m.append(_m(303, 80, "j.smith@corp.example", "Consent to application.",
                Workload="AzureActiveDirectory", Target=[{"ID": "MailSyncPro", "Type": 1}]))
    m.append(_m(304, 90, "j.smith@corp.example", "New-InboxRule", Workload="Exchange",
                ObjectId="j.smith@corp.example", Parameters=[
                    {"Name": "Name", "Value": "."}, {"Name": "ForwardTo",
                                                     "Value": "collector@mail.example"}]))
    m.append(_m(305, 91, "k.lee@corp.example", "New-InboxRule", Workload="Exchange",
                ObjectId="k.lee@corp.example", Parameters=[
                    {"Name": "Name", "Value": "move"}, {"Name": "MoveToFolder",
                                                        "Value": "Archive"}]))
    m.append(_m(306, 92, "k.lee@corp.example", "Set-Mailbox", Workload="Exchange",
                ObjectId="k.lee@corp.example", Parameters=[
                    {"Name": "ForwardingSmtpAddress", "Value": "smtp:k.lee2@corp.example"}]))
    (ev / "ual.json").write_text(json.dumps(m))
    # the portal's CSV shape, with the record in AuditData
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["CreationDate", "UserIds", "Operations", "AuditData"])
    rec = _m(400, 100, "a.b@corp.example", "FileUploaded", ObjectId="x.docx")
    w.writerow([rec["CreationTime"], rec["UserId"], rec["Operation"], json.dumps(rec)])
    w.writerow(["2026-10-08T02:00:00", "x", "y", "{not json"])
    (ev / "ual_portal.csv").write_text(buf.getvalue())
    g = [_g(i, i * 0.4, "staff@corp.example", "drive", "download", doc_title=f"doc{i}")
         for i in range(55)]
    g.append(_g(90, 60, "staff@corp.example", "drive", "change_document_visibility",
                doc_title="board.pdf", visibility="people_with_link"))
    g.append(_g(91, 61, "staff@corp.example", "token", "authorize", app_name="Notes Helper"))
    (ev / "drive.json").write_text(json.dumps({"kind": "admin#reports#activities",
                                               "items": g}))
    org = root / "org.yaml"
    org.write_text("own_domains: [corp.example]\n")
    return root / "case", {"org": str(org)}


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    case, extra = build_cloud_case(tmp_path_factory.mktemp("cloud"))
    report = hunt([str(case.parent / "ev")], case, RunContext(), HuntOptions(
        workers=1, bundled_intel=False, feeds=False, **extra))
    rows = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    return report, rows


def _by(rows, rule):
    return [f for f in rows if f["rule_id"] == rule]


def test_sources(found):
    report, _ = found
    assert report.stats["tables"]["cloud_audit"] == 5 + 60 + 10 + 7 + 1 + 57
    assert any("AuditData cell that is not JSON" in w["message"] for w in report.warnings)


def test_mass_download(found):
    hits = _by(found[1], "th-analytic-0042")
    assert sorted(f["user"] for f in hits) == ["j.smith@corp.example", "staff@corp.example"]
    assert all(f["dst"] == "download" for f in hits)


def test_external_and_anonymous_sharing(found):
    hits = {f["dst"]: f for f in _by(found[1], "th-analytic-0043")}
    assert set(hits) == {"https://corp.sharepoint.com/d/plans.docx",
                         "https://corp.sharepoint.com/d/fleet.xlsx", "board.pdf"}
    assert hits["https://corp.sharepoint.com/d/plans.docx"]["level"] == "high"
    assert hits["https://corp.sharepoint.com/d/fleet.xlsx"]["level"] == "medium"


def test_oauth_consent(found):
    hits = _by(found[1], "th-analytic-0044")
    assert sorted(f["dst"] for f in hits) == ["MailSyncPro", "Notes Helper"]


def test_mail_forwarding(found):
    hits = {f["dst"]: f for f in _by(found[1], "th-analytic-0045")}
    assert set(hits) == {"collector@mail.example", "smtp:k.lee2@corp.example"}
    assert hits["collector@mail.example"]["level"] == "critical"
    assert hits["smtp:k.lee2@corp.example"]["level"] == "high"
