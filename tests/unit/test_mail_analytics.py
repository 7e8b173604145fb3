"""Sender analytics on generated mailboxes: look-alike domains, failed auth, replies elsewhere."""

from __future__ import annotations

from email.message import EmailMessage

import pyarrow as pa

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.ingest import ingest


def _msg(sender: str, subject: str, *, reply_to: str | None = None,
         auth: str = "spf=pass dkim=pass dmarc=pass") -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "j.smith@corp.example, k.lee@corp.example"
    if reply_to:
        m["Reply-To"] = reply_to
    m["Subject"] = subject
    m["Date"] = "Mon, 05 Oct 2026 09:12:00 +0000"
    m["Authentication-Results"] = f"mx.corp.example; {auth}"
    m.set_content("hello")
    return m.as_bytes()


def _hunt(tmp_path, mails):
    d = tmp_path / "mails"
    d.mkdir()
    for i, data in enumerate(mails):
        (d / f"{i}.eml").write_bytes(data)
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(d)], store, RunContext(), workers=1)
    det = AnalyticsDetector()
    rows = pa.Table.from_batches(list(det.run(store, RunContext()))).to_pylist()
    assert det.stats.failed == []
    return rows


def test_lookalike_sender_domains(tmp_path):
    rows = _hunt(tmp_path, [
        _msg("IT Support <it@corp.example>", "Password expiry"),
        _msg("IT Support <it@c0rp.example>", "Password expiry notice"),
        _msg("Payroll <pay@corp-example.example>", "Salary review"),
        _msg("HR <hr@xn--crp-xla.example>", "Interview questions"),
        _msg("Editor <ed@maritime-review.example>", "Call for papers"),
    ])
    hits = {r["dst"] for r in rows if r["rule_id"] == "th-analytic-0022"}
    assert hits == {"c0rp.example", "xn--crp-xla.example"}
    c0 = next(r for r in rows if r["dst"] == "c0rp.example")
    assert c0["level"] == "high" and "look-alike of corp.example" in c0["summary"]


def test_auth_failure_and_reply_elsewhere(tmp_path):
    rows = _hunt(tmp_path, [
        _msg("Editor <ed@maritime-review.example>", "Paper", auth="spf=pass dkim=pass "
             "dmarc=pass"),
        _msg("Editor <ed@maritime-review.example>", "Paper v2", auth="spf=fail dkim=none "
             "dmarc=fail", reply_to="ed.review@mail-box.example"),
        _msg("News <news@port.example>", "Digest", reply_to="replies@port.example",
             auth="spf=softfail dkim=none dmarc=none"),
        _msg("News <news@port.example>", "Digest 2", reply_to="desk@eu.port.example"),
    ])
    got = {(r["summary"].split('"')[1], r["level"]) for r in rows
           if r["rule_id"] == "th-analytic-0023"}
    assert got == {("Paper v2", "high"), ("Digest", "medium")}
