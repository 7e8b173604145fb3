"""W3C extended log files (IIS, and other servers that write the format).

The ``#Fields:`` directive decides the columns, and may change mid-file (IIS writes a new
header when the logged fields change or the service restarts); lines are split on runs of
spaces (W3C fields never contain one: IIS writes ``+``). A line whose field count does not
match its header is a warning. Times are UTC by definition of the format; a layout without
a ``date`` field takes the date of the last ``#Date:`` directive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import polars as pl

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import LineStats, head_lines, iter_line_blocks, warn_bad
from tidehunt.sources._weblog import to_batch
from tidehunt.sources.base import Artefact, Source

#: W3C field name (lower case) -> web_access column.
COLUMNS: dict[str, str] = {
    "s-sitename": "site",
    "s-computername": "host",
    "s-ip": "server_ip",
    "s-port": "server_port",
    "cs-method": "method",
    "cs-uri-stem": "uri_stem",
    "cs-uri-query": "uri_query",
    "cs-username": "user",
    "c-ip": "client_ip",
    "cs-version": "protocol",
    "cs(user-agent)": "user_agent",
    "cs(referer)": "referer",
    "cs(cookie)": "cookie",
    "cs-host": "vhost",
    "cs(host)": "vhost",
    "sc-status": "status",
    "sc-substatus": "substatus",
    "sc-win32-status": "win32_status",
    "sc-bytes": "bytes_sent",
    "cs-bytes": "bytes_received",
    "time-taken": "time_taken_ms",
    "x-forwarded-for": "xff",
    "cs(x-forwarded-for)": "xff",
    "originalip": "xff",
}
PLUS_IS_SPACE = ("user_agent", "referer", "cookie")


def _extra_name(field: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in field.lower()).strip("_")
    return f"w3c_{safe}"


class IisW3cSource(Source):
    """IIS (W3C extended) access logs; one ``web_access`` row per request line."""

    NAME: ClassVar[str] = "iis_w3c"
    FORMAT: ClassVar[str] = "W3C extended log (IIS)"
    WRITES: ClassVar[tuple[str, ...]] = ("web_access",)

    def __init__(self) -> None:
        super().__init__()
        self.stats = LineStats()

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """A ``#Fields:`` or IIS ``#Software:`` directive among the first lines."""
        for ln in head_lines(head):
            if ln.startswith(("#Fields:", "#Software: Microsoft Internet Information Services")):
                return True
        return False

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Per block: directives in order (few), data lines in bulk per header segment."""
        fields: list[str] | None = None
        date: str | None = None
        seen_any = False
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            carried = (fields, date)  # the layout in force when this block starts
            is_dir = block.lines.str.starts_with("#")
            # directive lines set the layout for the data lines after them
            starts: list[int] = []
            layouts: list[tuple[list[str] | None, str | None]] = []
            for ln, no in zip(block.lines.filter(is_dir).to_list(),
                              block.lineno.filter(is_dir).to_list(), strict=True):
                self.stats.directives += 1
                key, _, value = ln[1:].partition(":")
                key = key.strip().lower()
                if key == "fields":
                    fields = value.split()
                elif key == "date":
                    date = value.strip()[:10] or None
                else:
                    continue
                starts.append(no)
                layouts.append((fields, date))
            lines, lineno = block.lines.filter(~is_dir), block.lineno.filter(~is_dir)
            if len(lines) == 0:
                continue
            if not seen_any and fields is None and not starts:
                raise SourceError(f"{artefact.display}: W3C log without a #Fields header")
            seen_any = True
            # segment of each data line: index of the last directive before it (-1: the
            # layout carried over from the previous block)
            seg = np.searchsorted(np.asarray(starts, dtype=np.int64), lineno.to_numpy(),
                                  side="right") - 1
            for k in np.unique(seg):
                sel = pl.Series(seg == k)
                lay_fields, lay_date = layouts[int(k)] if k >= 0 else carried
                sub, subno = lines.filter(sel), lineno.filter(sel)
                if lay_fields is None:
                    warn_bad(ctx, artefact, self.NAME, "data line before any #Fields header",
                             subno, self.stats)
                    continue
                yield from self._segment(sub, subno, lay_fields, lay_date, artefact, ctx)

    def _segment(self, lines: pl.Series, lineno: pl.Series, fields: list[str],
                 date: str | None, artefact: Artefact, ctx: RunContext
                 ) -> Iterator[TableBatch]:
        toks = lines.str.strip_chars(" \t").str.replace_all(r"[ \t]+", " ").str.split(" ")
        ok = toks.list.len() == len(fields)
        warn_bad(ctx, artefact, self.NAME,
                 f"field count differs from the #Fields header ({len(fields)} fields)",
                 lineno.filter(~ok), self.stats)
        toks, lineno = toks.filter(ok), lineno.filter(ok)
        if len(toks) == 0:
            return
        self.stats.records += len(toks)
        raw: dict[str, pl.Series] = {}
        for i, name in enumerate(fields):
            col = COLUMNS.get(name.lower(), _extra_name(name))
            s = toks.list.get(i)
            if col in raw:  # two fields for one column (cs-host and cs(host)): first wins
                raw[col] = raw[col].fill_null(s)
            else:
                raw[col] = s
        raw = {k: v.replace("-", None) for k, v in raw.items()}
        for k in PLUS_IS_SPACE:
            if k in raw:
                raw[k] = raw[k].str.replace_all("+", " ", literal=True)
        lower = [f.lower() for f in fields]
        day = raw.pop("w3c_date", None)
        clock = raw.pop("w3c_time", None)
        if clock is None:
            ts = pl.Series("ts", [None] * len(toks), dtype=pl.String)
        elif day is None:
            if date is None and "date" not in lower:
                ctx.warn(artefact.id, self.NAME, "no date field and no #Date directive: "
                         "times have no day", [f"line {lineno[0]}"], count=len(toks),
                         path=artefact.display)
            ts = clock.str.replace(r"^", date + " ") if date else clock
        else:
            ts = day + " " + clock
        stamp = ts.str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%d %H:%M:%S%.f",
                                strict=False) if ts.dtype == pl.String else ts
        bad_ts = stamp.is_null() & ts.is_not_null()
        if bad_ts.any():
            ctx.warn(artefact.id, self.NAME, "unreadable date/time; row kept without a time",
                     [f"line {x}" for x in lineno.filter(bad_ts).head(20).to_list()],
                     count=int(bad_ts.sum()), path=artefact.display)
        raw["ts"] = stamp
        yield to_batch(raw, lineno, artefact, self.NAME, "iis_w3c")
