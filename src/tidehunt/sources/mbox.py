"""Unix mbox mailboxes: messages split on ``From `` lines, streamed, never locked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from tidehunt.context import RunContext
from tidehunt.model.batch import TableBatch
from tidehunt.sources._attach import MailSource
from tidehunt.sources._mail import MailRecord, batches, parse_eml
from tidehunt.sources.base import Artefact
from tidehunt.sources.email_mime import looks_like_headers

BATCH = 200
MAX_MESSAGE = 256 << 20


class MboxSource(MailSource):
    """An mbox file: one ``mail`` row per message (mboxrd ``>From`` lines unescaped).

    Read with a line loop (a message boundary is a ``From `` line after a blank line), not
    the standard library's ``mailbox``, which opens the file for writing when it can.
    """

    NAME: ClassVar[str] = "mbox"
    FORMAT: ClassVar[str] = "Unix mbox mailbox"
    WRITES: ClassVar[tuple[str, ...]] = ("mail", "mail_attachment", "file")

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """A ``From `` separator line followed by mail headers."""
        if not head.startswith(b"From "):
            return False
        return looks_like_headers(head.split(b"\n", 1)[1] if b"\n" in head else b"")

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Messages in batches of 200."""
        recs: list[MailRecord] = []
        for n, (line_no, data) in enumerate(self._messages(artefact, ctx)):
            rec = parse_eml(data, f"message {n + 1} (line {line_no})")
            for d in dict.fromkeys(rec.defects):
                ctx.warn(artefact.id, self.NAME, f"malformed message: {d}", [rec.locator],
                         path=artefact.display)
            recs.append(rec)
            if len(recs) >= BATCH:
                yield from batches(recs, artefact.id, artefact.display, self.NAME,
                           **self._mail_args(artefact, ctx))
                recs = []
        yield from batches(recs, artefact.id, artefact.display, self.NAME,
                           **self._mail_args(artefact, ctx))

    def _messages(self, artefact: Artefact, ctx: RunContext) -> Iterator[tuple[int, bytes]]:
        buf: list[bytes] = []
        size = 0
        start = 1
        prev_blank = True
        with artefact.open() as fh:
            for no, line in enumerate(fh, 1):
                if line.startswith(b"From ") and prev_blank:
                    if buf:
                        yield start, b"".join(buf)
                    buf, size, start = [], 0, no
                    prev_blank = False
                    continue
                if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
                    line = line[1:]
                prev_blank = line in (b"\n", b"\r\n")
                if size < MAX_MESSAGE:
                    buf.append(line)
                    size += len(line)
                elif size == MAX_MESSAGE:
                    ctx.warn(artefact.id, self.NAME, "message larger than 256 MiB cut",
                             [f"line {start}"], path=artefact.display)
                    size += 1
        if buf:
            yield start, b"".join(buf)
