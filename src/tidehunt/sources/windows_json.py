"""Windows events exported as JSON: evtx_dump, Winlogbeat (ECS or flattened), OTRF/Mordor.

Accepts one object per line, one array, or concatenated (pretty-printed) objects, plain,
gzip-compressed or as members of a .zip (read streaming, never unpacked to disk). The
shape of each object is recognised from its keys, not from the file name:

* ``{"Event": {"System": ..., "EventData": ...}}`` (evtx_dump, python-evtx) or the same
  without the ``Event`` wrapper (Velociraptor);
* ``{"winlog": {"event_id": ..., "event_data": {...}}, "@timestamp": ...}`` (Winlogbeat 7+);
* flattened ``{"EventID": ..., "Channel": ..., "Hostname": ..., "Image": ...}`` (Mordor/HELK).
"""

from __future__ import annotations

import codecs
import functools
import io
import json
import zipfile
from collections.abc import Iterator
from typing import IO, Any, ClassVar, cast

import orjson

from tidehunt.context import RunContext
from tidehunt.errors import SourceError, UnsupportedArtefact
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import (
    UTF8_BOM,
    from_utf16,
    gunzip,
    gunzip_head,
    text_head,
    utf16_of,
)
from tidehunt.sources._winrows import (
    WindowsRows,
    WindowsSource,
    _key,
    event_row,
    flatten_into,
    scalar_text,
)
from tidehunt.sources.base import Artefact, Source

CHUNK = 4 << 20
#: A JSON event longer than this (a line, or a value not closed within it) is skipped.
MAX_EVENT_BYTES = 16 << 20
#: Limits for .zip evidence (zip bombs): per member and in total, and the ratio.
ZIP_MAX_MEMBER = 8 << 30
ZIP_MAX_TOTAL = 32 << 30
ZIP_MAX_RATIO = 1000
ZIP_MAX_MEMBERS = 10_000

_MARKERS = (b'"Event"', b'"EventID"', b'"winlog"', b'"EventId"', b'"event_id"')
_FLAT_TS = ("TimeCreated", "@timestamp", "EventTime", "TimeGenerated", "timestamp")
_FLAT_HOST = ("Hostname", "Computer", "ComputerName", "computer_name")
_FLAT_PROVIDER = ("SourceName", "ProviderName", "Provider_Name", "provider_name")
_FLAT_RECORD = ("EventRecordID", "RecordNumber", "record_id")
_FLAT_TAKEN = frozenset(
    ("EventID", "EventId", "Channel", "channel", *_FLAT_TS, *_FLAT_HOST, *_FLAT_PROVIDER,
     *_FLAT_RECORD)
)


def _strip(head: bytes) -> bytes:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")


def looks_like_events(head: bytes) -> bool:
    """JSON that starts like an object or array and names Windows event keys early on."""
    h = _strip(head)
    return h[:1] in (b"{", b"[") and any(m in h for m in _MARKERS)


class WindowsJsonSource(WindowsSource, Source):
    """Windows event JSON exports (plain, gzip or zipped); one ``windows`` row per event."""

    NAME: ClassVar[str] = "windows_json"
    FORMAT: ClassVar[str] = "Windows events as JSON (evtx_dump, Winlogbeat, OTRF/Mordor)"
    WRITES: ClassVar[tuple[str, ...]] = ("windows",)

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """JSON with event keys; gzip of it; or a zip whose first JSON member is such."""
        if head.startswith(b"\x1f\x8b"):  # as far as a damaged stream goes
            return looks_like_events(gunzip_head(head))
        if head.startswith(b"PK\x03\x04"):
            try:
                with zipfile.ZipFile(artefact.path) as zf:
                    for info in zf.infolist()[:50]:
                        if info.is_dir():
                            continue
                        with zf.open(info) as m:
                            return looks_like_events(m.read(65536))
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
                return False
            return False
        if utf16_of(head):  # PowerShell's Out-File writes UTF-16
            return looks_like_events(text_head(head).encode("utf-8"))
        return looks_like_events(head)

    def read_rows(self, artefact: Artefact, ctx: RunContext,
                  sink: WindowsRows) -> Iterator[TableBatch]:
        """Stream every JSON object; bad objects become warnings with line or offset."""
        with artefact.open() as raw:
            head = raw.read(4)
            raw.seek(0)
            if head.startswith(b"PK\x03\x04"):
                yield from self._zip(artefact, raw, ctx, sink)
            elif head.startswith(b"\x1f\x8b"):
                # zlib, not GzipFile: a corrupt or truncated stream gives every byte before
                # the damage (GzipFile drops what its failing read had), then a warning
                def warn(message: str, locator: str) -> None:
                    ctx.warn(artefact.id, self.NAME, message, [locator],
                             path=artefact.display)

                pieces = gunzip(iter(functools.partial(raw.read, 1 << 20), b""), warn)
                yield from self._stream(artefact, cast(IO[bytes], _Pieces(pieces)), "", ctx,
                                        sink)
            else:
                yield from self._stream(artefact, raw, "", ctx, sink)

    def _zip(self, artefact: Artefact, raw: IO[bytes], ctx: RunContext,
             sink: WindowsRows) -> Iterator[TableBatch]:
        try:
            zf = zipfile.ZipFile(raw)
        except zipfile.BadZipFile as exc:
            raise SourceError(f"{artefact.display}: damaged zip archive: {exc}") from exc
        with zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) > ZIP_MAX_MEMBERS:
                ctx.warn(artefact.id, self.NAME, f"zip has {len(infos)} members; only the "
                         f"first {ZIP_MAX_MEMBERS} are read", path=artefact.display)
                infos = infos[:ZIP_MAX_MEMBERS]
            budget = ZIP_MAX_TOTAL
            for info in infos:
                name = info.filename
                if info.compress_size and info.file_size / info.compress_size > ZIP_MAX_RATIO:
                    ctx.warn(artefact.id, self.NAME, "zip member skipped: compression ratio "
                             "above limit (possible zip bomb)", [name], path=artefact.display)
                    continue
                if info.file_size > min(ZIP_MAX_MEMBER, budget):
                    ctx.warn(artefact.id, self.NAME, "zip member skipped: larger than the "
                             "size limit", [name], path=artefact.display)
                    continue
                budget -= info.file_size
                try:
                    with zf.open(info) as member:
                        first = member.read(65536)
                        if not looks_like_events(first):
                            ctx.warn(artefact.id, self.NAME, "zip member is not a Windows "
                                     "event JSON export; not read", [name],
                                     path=artefact.display)
                            continue
                        stream = cast(IO[bytes], _Capped(_Prefixed(first, member),
                                                         info.file_size))
                        yield from self._stream(artefact, stream, name + ":", ctx, sink)
                except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError,
                        EOFError) as exc:
                    ctx.warn(artefact.id, self.NAME, f"zip member unreadable: {exc}", [name],
                             path=artefact.display)

    def _stream(self, artefact: Artefact, fh: IO[bytes], prefix: str, ctx: RunContext,
                sink: WindowsRows) -> Iterator[TableBatch]:
        buf = fh if isinstance(fh, io.BufferedReader) else io.BufferedReader(
            cast(io.RawIOBase, fh), CHUNK)
        mark = buf.peek(514)[:514]
        enc = utf16_of(mark)
        if mark.startswith(UTF8_BOM):
            buf.read(3)
        elif enc is not None:
            buf.read(2)

            def warn(msg: str, where: str, n: int) -> None:
                ctx.warn(artefact.id, self.NAME, msg, [prefix + where], count=n,
                         path=artefact.display)

            pieces = from_utf16(iter(functools.partial(buf.read, CHUNK), b""), enc, warn)
            buf = io.BufferedReader(_Pieces(pieces), CHUNK)
        first = _strip(buf.peek(65536)[:65536])
        first_line = first.split(b"\n", 1)[0].strip()
        jsonl = False
        if first_line.startswith(b"{"):
            try:
                jsonl = isinstance(orjson.loads(first_line), dict)
            except orjson.JSONDecodeError:  # not UTF-8 (Latin-1 text?): JSON all the same
                try:
                    jsonl = isinstance(json.loads(first_line.decode("utf-8", "replace")), dict)
                except ValueError:
                    jsonl = False
        values = (self._lines(artefact, buf, prefix, ctx) if jsonl
                  else self._concatenated(artefact, buf, prefix, ctx))
        for obj, loc, size in values:
            row = to_row(obj) if isinstance(obj, dict) else None
            if row is None:
                ctx.warn(artefact.id, self.NAME, "JSON value is not a Windows event", [loc],
                         path=artefact.display)
                continue
            sink.add(row, loc, size)
            if sink.full():
                yield from sink.flush()

    def _lines(self, artefact: Artefact, fh: IO[bytes], prefix: str,
               ctx: RunContext) -> Iterator[tuple[Any, str, int]]:
        """One value per line: (value, locator, bytes of its line)."""
        loads = orjson.loads
        lineno = 0
        while line := fh.readline(MAX_EVENT_BYTES + 1):
            lineno += 1
            if len(line) > MAX_EVENT_BYTES and not line.endswith(b"\n"):
                while (rest := fh.readline(CHUNK)) and not rest.endswith(b"\n"):
                    pass  # the rest of the line goes by without being kept
                ctx.warn(artefact.id, self.NAME, f"line longer than {MAX_EVENT_BYTES >> 20} "
                         "MiB (not an event) skipped", [f"{prefix}line {lineno}"],
                         path=artefact.display)
                continue
            if not line.strip():
                continue
            try:
                yield loads(line), f"{prefix}line {lineno}", len(line)
            except orjson.JSONDecodeError:
                try:
                    obj = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    ctx.warn(artefact.id, self.NAME, "line is not valid JSON (skipped)",
                             [f"{prefix}line {lineno}"], path=artefact.display)
                    continue
                ctx.warn(artefact.id, self.NAME, "invalid UTF-8 replaced",
                         [f"{prefix}line {lineno}"], path=artefact.display)
                yield obj, f"{prefix}line {lineno}", len(line)

    def _concatenated(self, artefact: Artefact, fh: IO[bytes], prefix: str,
                      ctx: RunContext) -> Iterator[tuple[Any, str, int]]:
        """Concatenated or pretty-printed values, or one top-level array, streamed:
        (value, locator, characters of its text)."""
        dec = json.JSONDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")(errors=_COUNT_BAD)
        _BAD_BYTES[0] = 0
        text = ""
        base = 0  # character offset of text[0] in the stream
        pos = 0
        eof = False

        def more() -> bool:
            nonlocal text, base, pos, eof
            if eof:
                return False
            chunk = fh.read(CHUNK)
            eof = not chunk
            s = utf8.decode(chunk, final=eof)
            text = text[pos:] + s
            base += pos
            pos = 0
            return bool(s) or not eof

        more()
        started = in_array = False
        while True:
            while True:
                while pos < len(text) and text[pos] in " \t\r\n,\ufeff":
                    pos += 1
                if pos < len(text) or not more():
                    break
            if pos >= len(text):
                break
            if not started:
                started = True
                if text[pos] == "[":
                    in_array = True
                    pos += 1
                    continue
            if in_array and text[pos] == "]":
                pos += 1
                continue
            try:
                obj, end = dec.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                open_long = len(text) - pos > MAX_EVENT_BYTES
                if not eof and not open_long and more():
                    continue
                why = (f"not closed within {MAX_EVENT_BYTES >> 20} MiB (too long or damaged)"
                       if open_long else f"invalid JSON ({exc.msg})")
                ctx.warn(artefact.id, self.NAME, f"{why}; skipped to the next object",
                         [f"{prefix}offset {base + pos}"], path=artefact.display)
                start = pos + 1
                while (nxt := text.find("\n{", start)) < 0 and not eof:
                    pos = max(pos, len(text) - 1)  # what was searched is dropped
                    more()
                    start = 0
                if nxt < 0:
                    break
                pos = nxt + 1
                continue
            loc = f"{prefix}offset {base + pos}"
            size, pos = end - pos, end
            yield obj, loc, size
        if _BAD_BYTES[0]:
            ctx.warn(artefact.id, self.NAME, "invalid UTF-8 replaced with U+FFFD", [prefix or "-"],
                     count=_BAD_BYTES[0], path=artefact.display)


_BAD_BYTES = [0]
_COUNT_BAD = "tidehunt-count-replace"


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _BAD_BYTES[0] += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error(_COUNT_BAD, _count_replace)


class _Pieces(io.RawIOBase):
    """A stream over an iterator of byte strings (the transcoded UTF-16 of a file)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._cur = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._cur:
            nxt = next(self._pieces, None)
            if nxt is None:
                return 0
            self._cur = nxt
        n = min(len(b), len(self._cur))
        b[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n


class _Prefixed(io.RawIOBase):
    """A stream that first returns ``head`` and then reads on from ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Capped(io.RawIOBase):
    """Stops a zip member at its declared size (a lying header cannot inflate forever)."""

    def __init__(self, inner: io.RawIOBase, limit: int) -> None:
        self._inner = inner
        self._left = limit + 1

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[: min(len(b), self._left)]
        n = self._inner.readinto(view) or 0
        self._left -= n
        return n


def to_row(obj: dict[str, Any]) -> dict[str, Any] | None:
    """A windows row from any supported JSON event shape, or None."""
    ev = obj.get("Event")
    if type(ev) is dict:
        return event_row(ev)
    if type(obj.get("System")) is dict:
        return event_row(obj)
    wl = obj.get("winlog")
    if type(wl) is dict:
        return _winlogbeat_row(obj, wl)
    if "EventID" in obj or "EventId" in obj:
        return _flat_row(obj)
    return None


def _first(obj: dict[str, Any], names: tuple[str, ...]) -> Any:
    for n in names:
        v = obj.get(n)
        if v is not None and v != "":
            return v
    return None


def _flat_row(obj: dict[str, Any]) -> dict[str, Any]:
    host = _first(obj, _FLAT_HOST)
    if host is None and isinstance(obj.get("host"), str):
        host = obj["host"]
    row: dict[str, Any] = {
        "event_id": obj.get("EventID", obj.get("EventId")),
        "channel": obj.get("Channel", obj.get("channel")),
        "host": scalar_text(host),
        "provider": scalar_text(_first(obj, _FLAT_PROVIDER)),
        "ts": _first(obj, _FLAT_TS),
        "record_id": _first(obj, _FLAT_RECORD),
    }
    for k, v in obj.items():
        if k in _FLAT_TAKEN or v is None:
            continue
        t = type(v)
        if t is str:
            row.setdefault(_key(k), v)
        elif t is dict:
            sub: dict[str, str] = {}
            flatten_into(sub, v)
            for sk, sv in sub.items():
                row.setdefault(sk, sv)
        else:
            s = scalar_text(v)
            if s is not None:
                row.setdefault(_key(k), s)
    return row


def _winlogbeat_row(obj: dict[str, Any], wl: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": wl.get("event_id"),
        "channel": wl.get("channel"),
        "host": wl.get("computer_name"),
        "provider": wl.get("provider_name"),
        "ts": obj.get("@timestamp"),
        "record_id": wl.get("record_id"),
    }
    for key in ("event_data", "user_data"):
        node = wl.get(key)
        if isinstance(node, dict):
            sub: dict[str, str] = {}
            flatten_into(sub, node)
            for sk, sv in sub.items():
                row.setdefault(sk, sv)
    msg = obj.get("message")
    if isinstance(msg, str):
        row.setdefault("Message", msg)
    return row


__all__ = ["UnsupportedArtefact", "WindowsJsonSource", "to_row"]
