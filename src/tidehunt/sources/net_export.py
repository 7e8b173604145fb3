"""Proxy, firewall and flow exports into ``proxy`` and ``net_conn``: built-in presets found
from the header, or the analyst's column mapping (``--net-mapping FILE``).

Presets (the header decides; names compared without case and punctuation):

- ``elff_proxysg``: Blue Coat / Symantec ProxySG W3C ELFF (``#Fields: date time
  time-taken c-ip cs-username ... s-action ... sc-bytes cs-bytes ...``, space-separated,
  quoted values) into ``proxy``; a ``#Fields`` change mid-file is followed. ``cs-bytes``
  is what the client sent (``bytes_out``), ``sc-bytes`` what it got (``bytes_in``).
  Times are UTC by the format's definition.
- ``zscaler_nss``: a Zscaler NSS web-log feed written as CSV with the NSS field names as
  its header (``datetime`` or ``epochtime``, ``login``, ``proto``, ``eurl``, ``action``,
  ``reqsize``, ``respsize``, ``urlcat``, ``cip``, ``sip``, ``reqmethod``, ``respcode``,
  ``ua``, ``contenttype``...) into ``proxy``; ``reqsize`` is ``bytes_out``.
- ``nfdump``: ``nfdump -o csv`` (``ts,te,td,sa,da,sp,dp,pr,...,ipkt,ibyt,opkt,obyt,...,ra``)
  into ``net_conn``; ``ibyt`` (bytes of the flow from ``sa`` to ``da``) is ``bytes_out``,
  ``obyt`` (the reverse, only in bidirectional records, else 0) ``bytes_in``; the exporter
  ``ra`` is the device. nfdump writes local time without a zone (a warning says how it
  was read); the ``Summary`` trailer is skipped.
- ``paloalto_traffic``: a PAN-OS traffic log CSV export (``Receive Time``, ``Source
  address``, ``Destination address``, ``Destination Port``, ``Bytes Sent``, ``Bytes
  Received``, ``Action``...) into ``net_conn``; ``ts`` is ``Start Time`` (else
  ``Generate Time``, else ``Receive Time``), in the firewall's local time.
- ``firewall_csv``: any CSV with a time, source and destination addresses, a destination
  port and an action or protocol column under common names (``src``/``src_ip``/``source
  address``, ``dport``/``dst_port``, ``action``, ``bytes_sent``/``sentbyte``...) into
  ``net_conn``. A single ``bytes`` column has no direction and is not stored (a warning
  says so; map it with ``--net-mapping`` if you know its direction).

CSV and TSV are parsed with Arrow's CSV reader, a block of lines (8 MiB) at a time, so
memory stays flat on large exports; ELFF the same per ``#Fields`` segment; JSON lines with
Polars' reader against the mapped fields (a block with a malformed line is parsed line by
line to name it). Every line is a record, a header or trailer line (``directives``),
blank, or bad: a wrong field count, not JSON, or a row without a readable time or address,
each a warning with line numbers. Gzip is read as it streams; a cut stream is a warning.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv

from tidehunt.context import RunContext
from tidehunt.errors import ConfigError, SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import LineStats, iter_line_blocks
from tidehunt.sources._netmap import (
    PRESETS,
    Builder,
    NetMapping,
    dedup,
    header_key,
    json_get,
    mappings_from_options,
    split_header,
)
from tidehunt.sources.base import Artefact, Source
from tidehunt.sources.sniff import HEAD


def pick(head: bytes, mappings: Sequence[NetMapping]) -> NetMapping | None:
    """The first of the user's mappings, then of the presets, that reads this head."""
    for m in (*mappings, *PRESETS):
        if m.format != "squid" and m.fits(head):
            return m
    return None


class NetExportSource(Source):
    """Proxy, firewall and flow exports (presets by header, or a ``--net-mapping``)."""

    NAME: ClassVar[str] = "net_export"
    FORMAT: ClassVar[str] = ("Proxy, firewall and flow exports: ProxySG ELFF, Zscaler NSS "
                             "CSV, nfdump CSV, Palo Alto traffic CSV, firewall CSV, or mapped "
                             "CSV/TSV/JSON lines/ELFF (gzip too)")
    WRITES: ClassVar[tuple[str, ...]] = ("proxy", "net_conn")
    #: The presets are specific (proxy ELFF fields, flow headers): they win over the
    #: generic W3C and sign-in CSV readers that would also accept those heads.
    PRIORITY: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__()
        self.stats = LineStats()

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """A header one of the presets reads."""
        return pick(head, ()) is not None

    @classmethod
    def claims(cls, artefact: Artefact, head: bytes, options: Mapping[str, Any]) -> bool:
        """A header one of the user's ``--net-mapping`` mappings reads."""
        try:
            mappings = mappings_from_options(options)
        except ConfigError:
            return False  # read() reports it
        return any(m.format != "squid" and m.fits(head) for m in mappings)

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Every record of the layout the head shows, through its mapping."""
        with artefact.open() as fh:
            head = fh.read(HEAD)
        mapping = pick(head, mappings_from_options(self.options))
        if mapping is None:
            raise SourceError(f"{artefact.display}: no preset or --net-mapping reads its "
                              "header")
        builder = Builder(mapping, self.NAME, artefact, ctx, self.stats)
        if mapping.format == "elff":
            yield from self._elff(artefact, ctx, mapping, builder)
        elif mapping.format == "jsonl":
            yield from self._jsonl(artefact, ctx, mapping, builder)
        else:
            yield from self._delimited(artefact, ctx, mapping, builder)

    # ---- csv and tsv ----------------------------------------------------------------
    def _delimited(self, artefact: Artefact, ctx: RunContext, m: NetMapping,
                   b: Builder) -> Iterator[TableBatch]:
        header_line: str | None = None
        names: list[str] = []
        resolved: dict[str, int] = {}
        trailer = False
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            lines, nums = block.lines, block.lineno
            if header_line is None:
                header_line = str(lines[0]).lstrip("\ufeff")
                header = split_header(header_line, m.delimiter)
                names = dedup(header)
                resolved = _usable(m, header, artefact)
                self.stats.directives += 1
                lines, nums = lines.slice(1), nums.slice(1)
                _warn_undirected(m, header, resolved, b)
            is_dir = lines == header_line  # a header repeated by concatenated exports
            if m.stop_at is not None:
                if trailer:
                    is_dir = pl.Series([True] * len(lines))
                else:
                    at = lines.str.strip_chars() == m.stop_at
                    if at.any():
                        trailer = True
                        is_dir = is_dir | (pl.int_range(len(lines), eager=True)
                                           >= int(at.arg_true()[0]))
            self.stats.directives += int(is_dir.sum())
            data, dnums = lines.filter(~is_dir), nums.filter(~is_dir)
            if len(data) == 0:
                continue
            quote = '"' if m.format == "csv" else False
            batch = self._rows(data, dnums, names, resolved, m.delimiter, quote, b,
                               f"field count differs from the header ({len(names)} fields)")
            if batch is not None:
                yield batch

    def _rows(self, data: pl.Series, nums: pl.Series, names: list[str],
              resolved: Mapping[str, int], delimiter: str, quote: str | bool, b: Builder,
              message: str) -> TableBatch | None:
        """Parse lines with Arrow's CSV reader; a row of another width is a bad line."""
        include = list(dict.fromkeys(names[i] for i in resolved.values()))
        text = data.str.join("\n").item() + "\n"
        buf = pa.py_buffer(text.encode("utf-8"))
        bad: list[int] = []

        def invalid(row: Any) -> str:
            bad.append(-1 if row.number is None else int(row.number) - 1)
            return "skip"

        table = pcsv.read_csv(
            buf,
            read_options=pcsv.ReadOptions(column_names=names, use_threads=False,
                                          block_size=max(1 << 20, len(buf) + 1)),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char=quote,
                                            double_quote=True, newlines_in_values=False,
                                            ignore_empty_lines=False,
                                            invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(include, pa.string()), include_columns=include,
                strings_can_be_null=True, quoted_strings_can_be_null=True,
                null_values=["", "-"]))
        keep = np.ones(len(nums), dtype=bool)
        located = [i for i in bad if 0 <= i < len(nums)]
        keep[located] = False
        if len(located) != len(bad) or table.num_rows != int(keep.sum()):
            raise SourceError(f"{b.artefact.display}: rows and lines of a block disagree "
                              f"({table.num_rows} rows, {int(keep.sum())} lines)")
        mask = pl.Series(keep)
        b.warn(message, nums.filter(~mask), bad=True)
        good = nums.filter(mask)
        raw = {ours: pl.Series(table.column(names[i]).combine_chunks().cast(pa.string()))
               for ours, i in resolved.items()}
        return b.build(raw, good)

    # ---- W3C ELFF -------------------------------------------------------------------
    def _elff(self, artefact: Artefact, ctx: RunContext, m: NetMapping,
              b: Builder) -> Iterator[TableBatch]:
        fields: list[str] | None = None
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            carried = fields
            is_dir = block.lines.str.starts_with("#")
            starts: list[int] = []
            layouts: list[list[str] | None] = []
            for ln, no in zip(block.lines.filter(is_dir).to_list(),
                              block.lineno.filter(is_dir).to_list(), strict=True):
                self.stats.directives += 1  # few: one Python step per directive
                key, _, value = ln[1:].partition(":")
                if key.strip().lower() == "fields":
                    fields = value.split()
                    starts.append(no)
                    layouts.append(fields)
            lines, lineno = block.lines.filter(~is_dir), block.lineno.filter(~is_dir)
            if len(lines) == 0:
                continue
            seg = np.searchsorted(np.asarray(starts, dtype=np.int64), lineno.to_numpy(),
                                  side="right") - 1
            for k in np.unique(seg):
                sel = pl.Series(seg == k)
                lay = layouts[int(k)] if k >= 0 else carried
                sub, subno = lines.filter(sel), lineno.filter(sel)
                if lay is None:
                    b.warn("data line before any #Fields header", subno, bad=True)
                    continue
                resolved = m.resolve(lay)
                if not m.has_required(resolved):
                    b.warn("#Fields header without a time or client address field; its "
                           "lines not read", subno, bad=True)
                    continue
                batch = self._rows(sub, subno, dedup(lay), resolved, " ", '"', b,
                                   "field count differs from the #Fields header")
                if batch is not None:
                    yield batch

    # ---- JSON lines -----------------------------------------------------------------
    def _jsonl(self, artefact: Artefact, ctx: RunContext, m: NetMapping,
               b: Builder) -> Iterator[TableBatch]:
        paths = sorted({p for names in m.columns.values() for p in names})
        schema = _json_schema(paths)
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            s = block.lines.str.strip_chars()
            obj = s.str.starts_with("{") & s.str.ends_with("}")
            b.warn("line that is not a JSON object", block.lineno.filter(~obj), bad=True)
            lines, nums = s.filter(obj), block.lineno.filter(obj)
            if len(lines) == 0:
                continue
            try:
                df = pl.read_ndjson(io.BytesIO((lines.str.join("\n").item() + "\n")
                                               .encode("utf-8")), schema=schema)
                cols = {p: _json_col(df, p) for p in paths}
            except pl.exceptions.PolarsError:
                # a malformed line or a field of another shape: find it line by line
                cols, ok = _json_by_line(lines, paths)
                b.warn("line that is not a JSON object", nums.filter(~ok), bad=True)
                nums = nums.filter(ok)
            raw: dict[str, pl.Series] = {}
            for ours, names in m.columns.items():
                col = cols[names[0]]
                for p in names[1:]:  # the first field present wins, per row
                    col = col.fill_null(cols[p])
                raw[ours] = col
            batch = b.build(raw, nums)
            if batch is not None:
                yield batch


def _usable(m: NetMapping, header: list[str], artefact: Artefact) -> dict[str, int]:
    resolved = m.resolve(header)
    if not m.has_required(resolved):
        raise SourceError(f"{artefact.display}: the header has no time or address field "
                          f"that mapping {m.name} names")
    return resolved


def _warn_undirected(m: NetMapping, header: list[str], resolved: Mapping[str, int],
                     b: Builder) -> None:
    if not m.undirected or {"bytes_out", "bytes_in"} & set(resolved):
        return
    keys = {header_key(h): h for h in header}
    hit = [keys[k] for k in m.undirected if k in keys]
    if hit:
        b.ctx.warn(b.artefact.id, b.source, f"column {hit[0]!r} counts both directions "
                   "together: not stored (map it to bytes_out or bytes_in with "
                   "--net-mapping if it is one direction)", path=b.artefact.display)


def _json_schema(paths: Sequence[str]) -> dict[str, Any]:
    """A Polars schema reading every mapped path as a string (literal and nested keys)."""
    tree: dict[str, Any] = {}
    for p in paths:
        tree[p] = None
        parts = p.split(".")
        if len(parts) > 1:
            node = tree
            for part in parts[:-1]:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
            node.setdefault(parts[-1], None)

    def dtype(node: dict[str, Any]) -> dict[str, Any]:
        return {k: pl.String if v is None else pl.Struct(dtype(v)) for k, v in node.items()}

    return dtype(tree)


def _json_col(df: pl.DataFrame, path: str) -> pl.Series:
    literal = df[path] if path in df.columns and df.schema[path] == pl.String else None
    parts = path.split(".")
    nested = None
    if len(parts) > 1 and parts[0] in df.columns:
        s = df[parts[0]]
        for part in parts[1:]:
            s = s.struct.field(part)
        nested = s
    if literal is None:
        return nested if nested is not None else pl.Series([None] * df.height,
                                                           dtype=pl.String)
    return literal if nested is None else literal.fill_null(nested)


def _json_by_line(lines: pl.Series, paths: Sequence[str]
                  ) -> tuple[dict[str, pl.Series], pl.Series]:
    """Columns of the mapped paths from each line decoded on its own, and which lines
    were JSON objects (the fallback when a block does not read as a whole)."""
    cols: dict[str, list[str | None]] = {p: [] for p in paths}
    ok: list[bool] = []
    for text in lines.to_list():
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            ok.append(False)
            continue
        ok.append(True)
        for p in paths:
            cols[p].append(_cell(json_get(obj, p)))
    return ({p: pl.Series(v, dtype=pl.String) for p, v in cols.items()},
            pl.Series(ok, dtype=pl.Boolean))


def _cell(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int | float):
        return str(v)
    return orjson.dumps(v).decode()
