"""Single RFC 5322 messages (.eml): headers, bodies, URLs and every attachment."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import ClassVar

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.sources._attach import MailSource
from tidehunt.sources._mail import batches, parse_eml
from tidehunt.sources.base import Artefact

MAX_MESSAGE = 256 << 20
_HEADER = re.compile(rb"^([A-Za-z0-9][A-Za-z0-9-]{0,60}):[ \t]?", re.M)
KNOWN = {b"received", b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
         b"return-path", b"delivered-to", b"content-type", b"reply-to", b"x-mailer",
         b"authentication-results", b"dkim-signature", b"x-originating-ip", b"sender",
         b"arc-seal", b"x-received", b"thread-topic", b"x-ms-exchange-organization-scl"}


def looks_like_headers(head: bytes) -> bool:
    """The block before the first blank line is mostly mail headers, two of them known."""
    block = re.split(rb"\r?\n\r?\n", head[:32768], maxsplit=1)[0]
    names = [m.group(1).lower() for m in _HEADER.finditer(block)]
    return len(set(names) & KNOWN) >= 2 and block[:1] not in (b" ", b"\t")


class EmailMimeSource(MailSource):
    """An .eml file (any name): one ``mail`` row, one ``mail_attachment`` row per part."""

    NAME: ClassVar[str] = "email_mime"
    FORMAT: ClassVar[str] = "RFC 5322 e-mail message (.eml)"
    WRITES: ClassVar[tuple[str, ...]] = ("mail", "mail_attachment", "file")

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Mail headers at the top, not an mbox ``From `` line."""
        return not head.startswith(b"From ") and looks_like_headers(head)

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Parse the whole message (at most 256 MiB)."""
        with artefact.open() as fh:  # sized by the file: read(MAX_MESSAGE + 1) reserves 256 MiB
            big = os.fstat(fh.fileno()).st_size > MAX_MESSAGE
            data = b"" if big else fh.read()
        if big or len(data) > MAX_MESSAGE:
            raise SourceError(f"{artefact.display}: larger than {MAX_MESSAGE >> 20} MiB; "
                              "not read as one message")
        rec = parse_eml(data, "message")
        for d in dict.fromkeys(rec.defects):
            ctx.warn(artefact.id, self.NAME, f"malformed message: {d}", ["message"],
                     path=artefact.display)
        yield from batches([rec], artefact.id, artefact.display, self.NAME,
                           **self._mail_args(artefact, ctx))
