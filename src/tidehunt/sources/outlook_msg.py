"""Outlook .msg files (OLE compound files) through extract-msg, embedded .msg included."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.sources._attach import MailSource
from tidehunt.sources._mail import (
    MAX_BODY,
    MAX_DEPTH,
    Attachment,
    MailRecord,
    batches,
    header_list,
    parse_date,
)
from tidehunt.sources.base import Artefact

CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MSG_STREAM = "__substg1.0_".encode("utf-16-le")


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class OutlookMsgSource(MailSource):
    """An Outlook .msg message: one ``mail`` row and its attachments."""

    NAME: ClassVar[str] = "outlook_msg"
    MAGIC: ClassVar[bytes | None] = CFB_MAGIC
    FORMAT: ClassVar[str] = "Outlook message (.msg)"
    WRITES: ClassVar[tuple[str, ...]] = ("mail", "mail_attachment", "file")
    PRIORITY: ClassVar[int] = 1

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """An OLE compound file holding MAPI property streams."""
        return head.startswith(CFB_MAGIC) and _MSG_STREAM in head

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Open read-only with extract-msg; a file it refuses is unreadable."""
        import extract_msg

        for name in ("extract_msg", "olefile"):
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            msg = extract_msg.openMsg(str(artefact.path))
        except Exception as exc:
            raise SourceError(f"{artefact.display}: not a readable .msg ({exc})") from exc
        try:
            rec = self._record(msg, "message", 0, ctx, artefact)
        finally:
            msg.close()
        yield from batches([rec], artefact.id, artefact.display, self.NAME,
                           **self._mail_args(artefact, ctx))

    def _record(self, msg: Any, locator: str, depth: int, ctx: RunContext,
                artefact: Artefact) -> MailRecord:
        header = msg.header
        headers, defects = header_list(header) if header is not None else ([], [])
        rec = MailRecord(locator, headers, defects=defects)
        try:
            rec.text = _text(msg.body)[:MAX_BODY]
        except Exception as exc:  # noqa: BLE001 - a body stream in the wrong encoding
            rec.defects.append(f"plain-text body not decodable ({type(exc).__name__})")
        try:
            rec.html = _text(msg.htmlBody)[:MAX_BODY]
        except Exception as exc:  # noqa: BLE001 - RTF/HTML decoding errors of the library
            rec.defects.append(f"HTML body not decodable ({type(exc).__name__})")
        rec.subject = _text(msg.subject) or None
        sender = _text(msg.sender)
        from email.utils import parseaddr

        rec.sender_name, rec.sender = parseaddr(sender)
        d = msg.date
        rec.date = parse_date(d) if isinstance(d, str) else (
            d.astimezone() if d is not None and d.tzinfo else d)
        self._attachments(msg, rec, depth, locator, ctx, artefact)
        for dft in dict.fromkeys(rec.defects):
            ctx.warn(artefact.id, self.NAME, f"malformed message: {dft}", [locator],
                     path=artefact.display)
        return rec

    def _attachments(self, msg: Any, rec: MailRecord, depth: int, parent: str,
                     ctx: RunContext, artefact: Artefact) -> None:
        for i, a in enumerate(msg.attachments):
            name = getattr(a, "longFilename", None) or getattr(a, "shortFilename", None)
            data = a.data
            if isinstance(data, bytes | bytearray):
                rec.attachments.append(Attachment(name, getattr(a, "mimetype", None),
                                                  bytes(data), depth, parent))
            elif data is not None and hasattr(data, "attachments"):
                rec.attachments.append(Attachment(
                    name or f"embedded-{i}.msg", "application/vnd.ms-outlook", b"", depth,
                    parent, note="embedded Outlook message; its attachments follow"))
                if depth + 1 < MAX_DEPTH:
                    self._attachments(data, rec, depth + 1, f"{parent}>{name or i}", ctx,
                                      artefact)
            else:
                rec.attachments.append(Attachment(
                    name, getattr(a, "mimetype", None), b"", depth, parent,
                    note=f"attachment type {type(a).__name__} has no readable content"))
                ctx.warn(artefact.id, self.NAME, "attachment without readable content",
                         [f"{parent}/attachment {i}"], path=artefact.display)
