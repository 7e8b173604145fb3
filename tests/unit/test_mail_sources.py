"""Mail sources on generated messages: headers, auth, URLs, nested and hostile parts."""

from __future__ import annotations

from email.message import EmailMessage

import pyarrow as pa

from tidehunt.context import RunContext
from tidehunt.sources.base import Artefact
from tidehunt.sources.sniff import sniff


def _mail(subject="Research paper for review", attach=()):
    m = EmailMessage()
    m["From"] = "=?utf-8?b?SmFuZSBEb2Ug4oCT?= <jane@maritime-review.example>"
    m["To"] = "j.smith@corp.example"
    m["Reply-To"] = "editor@mar1time-review.example"
    m["Return-Path"] = "<bounce@mailer.example>"
    m["Subject"] = subject
    m["Date"] = "Mon, 05 Oct 2026 09:12:00 +0800"
    m["Message-ID"] = "<abc@maritime-review.example>"
    m["Received"] = ("from mx.mailer.example (mx.mailer.example [198.51.100.9]) by "
                     "mx.corp.example with ESMTPS; Mon, 05 Oct 2026 01:12:03 +0000")
    m["Authentication-Results"] = ("mx.corp.example; spf=fail smtp.mailfrom=mailer.example; "
                                   "dkim=none; dmarc=fail header.from=maritime-review.example")
    m.set_content("Please see hxxps://docs.maritime-review[.]example/paper and reply.")
    m.add_alternative('<p><a href="https://cdn.example/x.rtf">paper</a></p>', subtype="html")
    for name, data in attach:
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m


def _read(path):
    art = Artefact("a", path, str(path))
    cls = sniff(art)
    ctx = RunContext()
    out = {}
    for b in cls().read(art, ctx):
        out.setdefault(b.table, []).append(pa.table(b.data))
    return cls.NAME, {k: pa.concat_tables(v).to_pylist() for k, v in out.items()}, ctx


def test_eml_fields(tmp_path):
    p = tmp_path / "msg.bin"
    p.write_bytes(_mail(attach=[("../../../etc/cron.d/x.rtf", b"{\\rtf1 x}"),
                                ("invoice\u202efdp.exe", b"MZ\x90\x00")]).as_bytes())
    name, t, _ = _read(p)
    assert name == "email_mime"
    m = t["mail"][0]
    assert m["from_name"] == "Jane Doe \u2013" and m["from_domain"] == "maritime-review.example"
    assert (m["reply_to"], m["return_path"]) == ("editor@mar1time-review.example",
                                                 "bounce@mailer.example")
    assert (m["spf"], m["dkim"], m["dmarc"]) == ("fail", "none", "fail")
    assert m["ts"].isoformat() == "2026-10-05T01:12:00+00:00"
    assert m["received_hops"] == 1
    assert m["urls"].split("\n") == ["https://docs.maritime-review.example/paper",
                                     "https://cdn.example/x.rtf"]
    names = [(a["filename"], a["filename_raw"], a["kind"]) for a in t["mail_attachment"]]
    assert names == [("x.rtf", "../../../etc/cron.d/x.rtf", "rtf"),
                     ("invoice_fdp.exe", "invoice\u202efdp.exe", "pe")]


def test_attached_message_is_walked(tmp_path):
    inner = _mail("inner", attach=[("lure.docx", b"PK\x03\x04rest")])
    outer = _mail("Fwd: inner")
    outer.add_attachment(inner)
    p = tmp_path / "fwd.eml"
    p.write_bytes(outer.as_bytes())
    _, t, _ = _read(p)
    atts = {(a["filename"], a["depth"]) for a in t["mail_attachment"]}
    assert ("lure.docx", 1) in atts
    assert t["mail"][0]["attachment_count"] == 2


def test_mbox_messages_and_from_escapes(tmp_path):
    parts = []
    for i in range(3):
        body = _mail(f"m{i}").as_bytes().replace(b"and reply.", b"and reply.\n>From here")
        parts.append(b"From MAILER-DAEMON Mon Oct  5 01:12:03 2026\n" + body + b"\n")
    p = tmp_path / "box"
    p.write_bytes(b"".join(parts))
    name, t, _ = _read(p)
    assert name == "mbox"
    assert [m["subject"] for m in t["mail"]] == ["m0", "m1", "m2"]
    assert "From here" in t["mail"][0]["body_text"]
