"""Zeek logs, TSV (``#fields`` header, which may change mid-file) or JSON lines, plain or
gzip: conn into ``net_conn``, dns into ``dns``, http into ``http``, ssl into ``tls``, every
other log into ``net_event`` with its fields as JSON.

TSV blocks are split with Polars (no Python loop per line); JSON lines are decoded with
orjson one line at a time (the parse itself). Every line is accounted for: records,
directives, blank lines, and bad lines (wrong field count, not JSON), which are warnings
with their line numbers. Unset fields (``-``) are null, ``(empty)`` is an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from typing import Any, ClassVar

import orjson
import polars as pl

from tidehunt.context import RunContext
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import LineStats, head_lines, iter_line_blocks, warn_bad
from tidehunt.sources.base import Artefact, Source

#: Zeek log (path) -> table.
TABLE_OF = {"conn": "net_conn", "dns": "dns", "http": "http", "ssl": "tls"}
COMMON = {"ts": "ts", "uid": "uid", "id.orig_h": "src_ip", "id.orig_p": "src_port",
          "id.resp_h": "dst_ip", "id.resp_p": "dst_port"}
#: Zeek field -> column, per table (besides COMMON).
FIELDS: dict[str, dict[str, str]] = {
    "net_conn": {"proto": "proto", "service": "service", "duration": "duration",
                 "orig_bytes": "bytes_out", "resp_bytes": "bytes_in",
                 "conn_state": "conn_state", "local_orig": "local_orig",
                 "local_resp": "local_resp", "orig_pkts": "orig_pkts",
                 "resp_pkts": "resp_pkts", "history": "history"},
    "dns": {"proto": "proto", "query": "query", "qtype_name": "qtype_name",
            "rcode_name": "rcode_name", "answers": "answers"},
    "http": {"method": "method", "host": "http_host", "uri": "uri", "referrer": "referrer",
             "user_agent": "user_agent", "request_body_len": "request_body_len",
             "response_body_len": "response_body_len", "status_code": "status_code",
             "resp_mime_types": "resp_mime_types"},
    "tls": {"version": "version", "cipher": "cipher", "server_name": "server_name",
            "established": "established", "subject": "subject", "issuer": "issuer",
            "ja3": "ja3"},
    "net_event": {},
}
INTS = {"src_port", "dst_port", "bytes_out", "bytes_in", "orig_pkts", "resp_pkts",
        "request_body_len", "response_body_len", "status_code"}
FLOATS = {"duration"}
BOOLS = {"local_orig", "local_resp", "established"}
LOWER = {"query", "server_name", "http_host"}
_NAME = re.compile(r"(?:^|_)(conn|dns|http|ssl|files|smb_files|smb_mapping|rdp|dce_rpc|"
                   r"kerberos|ntlm|notice|weird|x509|pe|dpd|software|smtp|ssh|analyzer|"
                   r"tunnel|ocsp|dhcp|ntp|snmp|sip|radius|socks|known_\w+)(?:\.|$)")


def _log_from_name(name: str) -> str:
    base = name.lower().split(".", 1)[0]
    m = _NAME.search(base + ".")
    return m.group(1) if m else base


def looks_like_json(head: bytes) -> bool:
    """A JSON object per line with Zeek's ts, uid or id fields."""
    lines = head_lines(head, 3)
    if not lines or not lines[0].startswith("{"):
        return False
    try:
        first = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return False
    if not isinstance(first, dict) or "ts" not in first:
        return False
    keys = set(first)
    return bool(keys & {"uid", "id.orig_h", "id_orig_h", "_path", "@stream", "fuid"})


class ZeekSource(Source):
    """Zeek's logs, TSV or JSON."""

    NAME: ClassVar[str] = "zeek"
    FORMAT: ClassVar[str] = "Zeek logs (TSV with #fields, or JSON lines; gzip too)"
    WRITES: ClassVar[tuple[str, ...]] = ("net_conn", "dns", "http", "tls", "net_event")
    PRIORITY: ClassVar[int] = 3

    def __init__(self) -> None:
        super().__init__()
        self.stats = LineStats()

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """``#separator`` and ``#fields`` directives, or Zeek JSON lines."""
        lines = head_lines(head, 12)
        if lines and lines[0].startswith("#separator"):
            return any(ln.startswith("#fields") for ln in lines)
        return looks_like_json(head)

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Every record into its table; TSV and JSON told apart by the first line."""
        log = _log_from_name(artefact.display.replace("\\", "/").rsplit("/", 1)[-1])
        header: list[str] | None = None
        unset, empty = "-", "(empty)"
        is_json: bool | None = None
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            if is_json is None:
                is_json = str(block.lines[0]).lstrip().startswith("{")
            if is_json:
                yield from self._json(block.lines, block.lineno, log, artefact, ctx)
                continue
            # directives split the block into segments sharing one #fields header
            is_dir = block.lines.str.starts_with("#")
            idx = [i for i, d in enumerate(is_dir.to_list()) if d]
            self.stats.directives += len(idx)
            bounds = [-1, *idx, len(block.lines)]
            for a, b in pairwise(bounds):
                if a >= 0:
                    d = str(block.lines[a])
                    key, _, val = d.partition("\t") if "\t" in d else d.partition(" ")
                    if key == "#fields":
                        header = val.split("\t")
                    elif key == "#path":
                        log = val.strip() or log
                    elif key == "#unset_field":
                        unset = val.strip()
                    elif key == "#empty_field":
                        empty = val.strip()
                seg = block.lines.slice(a + 1, b - a - 1)
                nums = block.lineno.slice(a + 1, b - a - 1)
                if len(seg) == 0:
                    continue
                if header is None:
                    warn_bad(ctx, artefact, self.NAME, "records before any #fields header",
                             nums, self.stats)
                    continue
                yield from self._tsv(seg, nums, header, log, unset, empty, artefact, ctx)

    def _tsv(self, lines: pl.Series, nums: pl.Series, header: list[str], log: str,
             unset: str, empty: str, artefact: Artefact, ctx: RunContext
             ) -> Iterator[TableBatch]:
        parts = lines.str.split("\t")
        ok = parts.list.len() == len(header)
        warn_bad(ctx, artefact, self.NAME,
                 f"line with another field count than its #fields header ({len(header)})",
                 nums.filter(~ok), self.stats)
        parts, nums = parts.filter(ok), nums.filter(ok)
        if len(parts) == 0:
            return
        names = list(dict.fromkeys(header))  # a field named twice: the first one is read
        if len(names) < len(header):
            ctx.warn(artefact.id, self.NAME, "#fields names a field twice; the first is read",
                     [f"line {nums[0]}"], path=artefact.display)
        df = pl.DataFrame({h: parts.list.get(header.index(h)) for h in names})
        df = df.with_columns([
            pl.when(pl.col(h) == unset).then(None).when(pl.col(h) == empty).then(pl.lit(""))
            .otherwise(pl.col(h)).alias(h) for h in names])
        yield self._batch(df, nums, log, artefact)

    def _json(self, lines: pl.Series, nums: pl.Series, log: str, artefact: Artefact,
              ctx: RunContext) -> Iterator[TableBatch]:
        rows: list[dict[str, Any]] = []
        good: list[int] = []
        bad: list[int] = []
        for text, n in zip(lines.to_list(), nums.to_list(), strict=True):
            try:
                r = orjson.loads(text)
            except orjson.JSONDecodeError:
                bad.append(n)
                continue
            if not isinstance(r, dict):
                bad.append(n)
                continue
            rows.append({k.replace("id_orig", "id.orig").replace("id_resp", "id.resp"): v
                         for k, v in r.items()})
            good.append(n)
        warn_bad(ctx, artefact, self.NAME, "line that is not a JSON object",
                 pl.Series(bad, dtype=pl.Int64), self.stats)
        by_log: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_log.setdefault(str(r.get("_path") or r.get("@stream") or log), []).append(i)
        for lg, idx in by_log.items():
            keys: dict[str, None] = {}
            for i in idx:
                keys.update(dict.fromkeys(rows[i]))
            df = pl.DataFrame({k: [_cell(rows[i].get(k)) for i in idx] for k in keys},
                              schema=dict.fromkeys(keys, pl.String))
            yield self._batch(df, pl.Series([good[i] for i in idx], dtype=pl.Int64), lg,
                              artefact, sensor=[_cell(rows[i].get("@system")) for i in idx])

    def _batch(self, df: pl.DataFrame, nums: pl.Series, log: str, artefact: Artefact,
               sensor: list[Any] | None = None) -> TableBatch:
        table = TABLE_OF.get(log, "net_event")
        want = {**COMMON, **FIELDS[table]}
        n = df.height
        self.stats.records += n
        out: dict[str, list[Any]] = {}
        for zf, col in want.items():
            s = df.get_column(zf) if zf in df.columns else pl.Series([None] * n, dtype=pl.String)
            out[col] = _convert(col, s)
        out["line"] = nums.to_arrow()
        out["source_file"] = [artefact.display] * n
        out["host"] = sensor or [None] * n
        if table == "net_event":
            out["log"] = [log] * n
            out["fields"] = [orjson.dumps({k: v for k, v in r.items() if v is not None}
                                          ).decode() for r in df.iter_rows(named=True)]
        return TableBatch.from_values(table, out, source=self.NAME, artefact=artefact.id,
                                      locators=[f"line {x}" for x in nums.to_list()])


def _cell(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "T" if v else "F"
    return str(v)


def _convert(col: str, s: pl.Series) -> Any:
    """A column in its declared type, as Arrow (no Python object per value)."""
    if col == "ts":
        # a time beyond the 64-bit microsecond range is unreadable: null, not an error
        us = (s.cast(pl.Float64, strict=False) * 1_000_000).round().cast(pl.Int64,
                                                                          strict=False)
        return us.cast(pl.Datetime("us", "UTC")).to_arrow()
    if col in INTS:
        return s.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False).to_arrow()
    if col in FLOATS:
        return s.cast(pl.Float64, strict=False).to_arrow()
    if col in BOOLS:
        return s.replace_strict({"T": True, "F": False, "true": True, "false": False},
                                default=None, return_dtype=pl.Boolean).to_arrow()
    if col in LOWER:
        return s.str.to_lowercase().to_arrow()
    return s.cast(pl.String).to_arrow()
