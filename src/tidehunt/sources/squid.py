"""Squid's native access.log (plain or gzip) into ``proxy``, one row per request line.

The native layout is ``time.msec elapsed client action/code size method URL ident
hierarchy/from content-type`` (logformat ``squid``: ``%ts.%03tu %6tr %>a %Ss/%03>Hs %<st
%rm %ru %[un %Sh/%<a %mt``). ``size`` (``%<st``) is what Squid sent to the client, so it is
``bytes_in``; the native layout has no request size, so ``bytes_out`` is null unless a
custom logformat appends it and a ``--net-mapping`` of ``format: squid`` names the appended
fields (``extra_fields: [bytes_out, user_agent]``). Times are epoch seconds (UTC);
``elapsed`` is milliseconds. ``from`` is the server's address (``dst_ip``) when it is
one; a parent proxy's host name is not an address and stays out.

Blocks of lines are matched with a Polars regex (no Python loop per line). Every line is
a record, blank, or bad: not a Squid line, or without a readable time or client address;
bad lines are warnings with their line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

import polars as pl

from tidehunt.context import RunContext
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import LineStats, head_lines, iter_line_blocks, warn_bad
from tidehunt.sources._netmap import SQUID, Builder, NetMapping, mappings_from_options
from tidehunt.sources.base import Artefact, Source

_LINE = (r"^(?P<ts>\d{9,11}(?:\.\d{1,6})?)\s+(?P<elapsed>-?\d+)\s+(?P<client>\S+)\s+"
         r"(?P<action>[A-Za-z_]+)/(?P<status>\d{3}|-)\s+(?P<size>\d+|-)\s+"
         r"(?P<method>[A-Za-z_-]+|-)\s+(?P<url>\S+)\s+(?P<ident>\S+)\s+"
         r"(?P<hier>[A-Za-z_]+)/(?P<peer>\S+)\s+(?P<ctype>\S+)(?:\s+(?P<extra>.*?))?\s*$")
_SNIFF = re.compile(_LINE)
#: A field of a custom logformat's tail: quoted (may hold spaces) or a run of non-blanks.
_TOKEN = r'"(?:[^"\\]|\\.)*"|\S+'
#: Native field -> proxy column.
NATIVE = {"ts": "ts", "elapsed": "duration", "client": "src_ip", "action": "action",
          "status": "status_code", "size": "bytes_in", "method": "method", "url": "url",
          "ident": "user", "peer": "dst_ip", "ctype": "content_type"}


class SquidSource(Source):
    """Squid native access.log; one ``proxy`` row per request line."""

    NAME: ClassVar[str] = "squid"
    FORMAT: ClassVar[str] = "Squid native access.log (gzip too)"
    WRITES: ClassVar[tuple[str, ...]] = ("proxy",)

    def __init__(self) -> None:
        super().__init__()
        self.stats = LineStats()

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Most of the first lines are Squid native lines (a bad line may be among them)."""
        lines = head_lines(head, 5)
        hits = sum(1 for ln in lines if _SNIFF.match(ln))
        return bool(lines) and hits * 2 > len(lines)

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Blocks of lines matched in bulk; the appended fields of a mapping read too."""
        mapping = next((m for m in mappings_from_options(self.options)
                        if m.format == "squid"), None)
        builder = Builder(mapping or SQUID, self.NAME, artefact, ctx, self.stats)
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            m = block.lines.str.extract_groups(_LINE)
            ok = m.struct.field("ts").is_not_null()
            warn_bad(ctx, artefact, self.NAME, "not a Squid native access.log line",
                     block.lineno.filter(~ok), self.stats)
            m, lineno = m.filter(ok), block.lineno.filter(ok)
            if len(m) == 0:
                continue
            raw = {col: m.struct.field(f) for f, col in NATIVE.items()}
            extra = m.struct.field("extra")
            if mapping is not None:
                raw.update(_extra(extra, mapping))
            else:
                tail = extra.is_not_null() & (extra != "")
                if tail.any():
                    ctx.warn(artefact.id, self.NAME,
                             "fields after the content type (a custom logformat) not read; "
                             "name them with extra_fields in a --net-mapping of format squid",
                             [f"line {x}" for x in lineno.filter(tail).head(20).to_list()],
                             count=int(tail.sum()), path=artefact.display)
            # the hierarchy's peer is a host name for parent proxies: an address or null
            peer = raw["dst_ip"]
            raw["dst_ip"] = peer.zip_with(
                peer.str.contains(r"^[0-9A-Fa-f:.\[\]]+$").fill_null(False),
                pl.Series([None] * len(peer), dtype=pl.String))
            batch = builder.build(raw, lineno)
            if batch is not None:
                yield batch


def _extra(extra: pl.Series, mapping: NetMapping) -> dict[str, pl.Series]:
    """The appended fields as the mapping names them (quotes removed, ``-`` null)."""
    toks = extra.fill_null("").str.extract_all(_TOKEN)
    out: dict[str, pl.Series] = {}
    for i, col in enumerate(mapping.extra_fields):
        if col == "-":
            continue
        v = toks.list.get(i, null_on_oob=True)
        quoted = v.str.starts_with('"') & v.str.ends_with('"') & (v.str.len_chars() >= 2)
        bare = v.str.strip_prefix('"').str.strip_suffix('"')
        out[col] = v.zip_with(~quoted.fill_null(False), bare)
    return out
