"""Text access logs other than W3C: Apache/Nginx/Tomcat, Atlassian and AWS load balancers.

A family of line layouts is chosen from the file's first lines (content, not name); each
block of lines is then matched against the family's layouts in bulk (Polars regex, no loop
over lines), a line that fits none being a warning. Layouts:

- ``apache``: NCSA common and combined (Apache httpd, Nginx's default, Tomcat's
  AccessLogValve ``common``/``combined``), with an optional ``%v:%p`` vhost prefix.
- ``atlassian``: Confluence and Jira (``[time] user thread ip METHOD uri proto status
  Nms bytes referer agent``), with the X-Forwarded-For column of Confluence 7.11+.
- ``bitbucket``: Bitbucket's ``|``-separated access log (times have no zone: read as UTC).
- ``elb``: AWS Application Load Balancer, Classic ELB and Network Load Balancer (TLS).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from tidehunt.context import RunContext
from tidehunt.errors import SourceError
from tidehunt.model.batch import TableBatch
from tidehunt.sources._lines import LineStats, head_lines, iter_line_blocks, warn_bad
from tidehunt.sources._weblog import DECLARED, split_request, split_uri, to_batch
from tidehunt.sources.base import Artefact, Source

_Q = r'(?:[^"\\]|\\.)*'  # body of a double-quoted field with backslash escapes


@dataclass(frozen=True)
class Layout:
    """One line shape: a regex with named groups, and how its time is written."""

    name: str
    regex: str
    ts_format: str
    utc_assumed: bool = False


APACHE = Layout(
    "apache",
    r"^(?:(?P<vhost>[A-Za-z0-9_.-]+):(?P<server_port>\d+) )?(?P<client_ip>\S+) (?P<ident>\S+) "
    rf'(?P<user>.*?) \[(?P<ts>[^\]]+)\] "(?P<request>.*?)" (?P<status>\d{{3}}|-) '
    rf'(?P<bytes_sent>\d+|-)(?: "(?P<referer>{_Q})" "(?P<user_agent>{_Q})")?(?P<extra>.*)$',
    "%d/%b/%Y:%H:%M:%S %z",
)
ATLASSIAN = Layout(
    "atlassian",
    r"^\[(?P<ts>[^\]]+)\] (?:(?P<xff>\S+) )?(?P<user>\S+) (?P<thread>\S+) (?P<client_ip>\S+) "
    r"(?P<method>[A-Z_]+) (?P<uri>\S+) (?P<protocol>[A-Z]+/[0-9.]+) (?P<status>\d{3}|-) "
    r"(?P<time_taken_ms>\d+|-)(?:ms)? (?P<bytes_sent>\d+|-) (?P<referer>\S+) ?(?P<user_agent>.*)$",
    "%d/%b/%Y:%H:%M:%S %z",
)
BITBUCKET = Layout(
    "bitbucket",
    r"^(?P<client_ip>[^\s,|]+)(?:,\s*(?P<xff>[^|]*?))? \| (?P<scheme>\S+) \| "
    r"(?P<request_id>\S+) \| (?:(?P<session_id>@\S+) \| )?(?P<user>\S+) \| "
    r'(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)?) \| "(?P<request>[^"]*)" \| '
    r'(?:"(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)"|-) \| (?P<status>\S+) \| '
    r"(?P<bytes_received>\S+) \| (?P<bytes_sent>\S+) \| (?P<labels>.*?) \| "
    r"(?P<time_taken_ms>\S+) \| (?P<session>.*?) \|\s*$",
    "%Y-%m-%d %H:%M:%S,%3f",
    utc_assumed=True,
)
_ELB_TAIL = (r"(?P<request_time>\S+) (?P<target_time>\S+) (?P<response_time>\S+) "
             r"(?P<status>\S+) (?P<target_status>\S+) (?P<bytes_received>-?\d+) "
             rf'(?P<bytes_sent>-?\d+) "(?P<request>[^"]*)" "(?P<user_agent>{_Q})" ?(?P<extra>.*)$')
ALB = Layout(
    "alb",
    r"^(?P<type>https?|h2|grpcs?|wss?) (?P<ts>\d{4}-\d\d-\d\dT\S+) (?P<site>\S+) "
    r"(?P<client_ip>\S+):(?P<client_port>\d+) (?P<target>\S+) " + _ELB_TAIL,
    "%Y-%m-%dT%H:%M:%S%.fZ",
)
CLASSIC_ELB = Layout(
    "elb_classic",
    r"^(?P<ts>\d{4}-\d\d-\d\dT\S+) (?P<site>\S+) (?P<client_ip>\S+):(?P<client_port>\d+) "
    r"(?P<target>\S+) " + _ELB_TAIL,
    "%Y-%m-%dT%H:%M:%S%.fZ",
)
NLB = Layout(
    "nlb",
    r"^tls (?P<log_version>\S+) (?P<ts>\d{4}-\d\d-\d\dT\S+) (?P<site>\S+) (?P<listener>\S+) "
    r"(?P<client_ip>\S+):(?P<client_port>\d+) (?P<target>\S+) (?P<connection_time>\S+) "
    r"(?P<handshake_time>\S+) (?P<bytes_received>\d+) (?P<bytes_sent>\d+) (?P<extra>.*)$",
    "%Y-%m-%dT%H:%M:%S",
)

FAMILIES: dict[str, tuple[Layout, ...]] = {
    "apache": (APACHE,),
    "atlassian": (ATLASSIAN,),
    "bitbucket": (BITBUCKET,),
    "elb": (ALB, CLASSIC_ELB, NLB),
}
_COMPILED = {name: [re.compile(lay.regex) for lay in lays] for name, lays in FAMILIES.items()}
#: Groups that are parts of the line, not columns.
_DROP = {"ident", "thread", "extra", "type", "target", "request", "uri"}


def family_of(lines: list[str]) -> str | None:
    """The family most of ``lines`` fit (at least half, and at least one line)."""
    if not lines:
        return None
    best, hits = None, 0
    for name, rxs in _COMPILED.items():
        n = sum(1 for ln in lines if any(rx.match(ln) for rx in rxs))
        if n > hits:
            best, hits = name, n
    return best if hits * 2 >= len(lines) else None


class AccessLogSource(Source):
    """Apache/Nginx/Tomcat, Atlassian and AWS ELB access logs -> ``web_access``."""

    NAME: ClassVar[str] = "access_log"
    FORMAT: ClassVar[str] = "HTTP access log (Apache/Nginx/Tomcat, Atlassian, AWS ELB)"
    WRITES: ClassVar[tuple[str, ...]] = ("web_access",)

    def __init__(self) -> None:
        super().__init__()
        self.stats = LineStats()

    @classmethod
    def sniff(cls, artefact: Artefact, head: bytes) -> bool:
        """Most of the first lines fit one family of layouts."""
        lines = head_lines(head)
        if lines and lines[0].startswith(("#", "{", "[{", "<")):
            return False
        return family_of(lines) is not None

    def read(self, artefact: Artefact, ctx: RunContext) -> Iterator[TableBatch]:
        """Each block against the family's layouts in turn; the rest is one warning."""
        layouts: tuple[Layout, ...] | None = None
        for block in iter_line_blocks(artefact, ctx, self.NAME, self.stats):
            if layouts is None:
                fam = family_of(block.lines.head(20).to_list())
                if fam is None:
                    raise SourceError(f"{artefact.display}: not an access log after all")
                layouts = FAMILIES[fam]
            lines, lineno = block.lines, block.lineno
            for lay in layouts:
                if len(lines) == 0:
                    break
                groups = lines.str.extract_groups(lay.regex)
                ok = groups.struct.field("ts").is_not_null()
                if ok.any():
                    self.stats.records += int(ok.sum())
                    yield self._batch(lay, groups.filter(ok), lineno.filter(ok), artefact,
                                      ctx)
                lines, lineno = lines.filter(~ok), lineno.filter(~ok)
            names = "/".join(lay.name for lay in layouts)
            warn_bad(ctx, artefact, self.NAME, f"line does not fit the {names} layout",
                     lineno, self.stats)

    def _batch(self, lay: Layout, groups: pl.Series, lineno: pl.Series, artefact: Artefact,
               ctx: RunContext) -> TableBatch:
        df = groups.struct.unnest()
        raw: dict[str, pl.Series] = {}
        if "request" in df.columns:
            raw.update(split_request(df["request"]))
        if "uri" in df.columns:
            raw.update(split_uri(df["uri"]))
        if "target" in df.columns:
            tgt = df["target"].str.extract_groups(r"^(?P<server_ip>.+):(?P<server_port>\d+)$")
            raw["server_ip"] = tgt.struct.field("server_ip")
            raw["server_port"] = tgt.struct.field("server_port")
        for name in df.columns:
            if name in _DROP or name == "ts":
                continue
            s = df[name]
            if name in raw:  # e.g. vhost from the %v prefix and from an absolute URL
                raw[name] = s.fill_null(raw[name])
            else:
                raw[name if name in DECLARED else f"log_{name}"] = s
        if lay.name in ("alb", "elb_classic"):
            parts = [df[c].cast(pl.Float64, strict=False)
                     for c in ("request_time", "target_time", "response_time")]
            total = parts[0] + parts[1] + parts[2]
            raw["time_taken_ms"] = (total * 1000).round(0).cast(pl.Int64).to_frame().select(
                pl.when(pl.first() >= 0).then(pl.first())).to_series()
            for c in ("request_time", "target_time", "response_time"):
                raw.pop(f"log_{c}", None)
        raw = {k: v.replace(["-", ""], None) if v.dtype == pl.String else v
               for k, v in raw.items()}
        for k in ("bytes_sent", "bytes_received"):
            if k in raw:
                v = raw[k].cast(pl.Int64, strict=False)
                raw[k] = v.to_frame().select(pl.when(pl.first() >= 0).then(pl.first())
                                             ).to_series()
        ts_text = df["ts"]
        stamp = ts_text.str.strptime(pl.Datetime("us", "UTC"), lay.ts_format, strict=False)
        bad = stamp.is_null()
        if bad.any():
            ctx.warn(artefact.id, self.NAME, "unreadable time; row kept without a time",
                     [f"line {x}" for x in lineno.filter(bad).head(20).to_list()],
                     count=int(bad.sum()), path=artefact.display)
        if lay.utc_assumed:
            ctx.warn(artefact.id, self.NAME, f"{lay.name} times carry no time zone; read as "
                     "UTC (shift them if the server logged local time)",
                     [f"line {lineno[0]}"], count=1, path=artefact.display)
        raw["ts"] = stamp
        return to_batch(raw, lineno, artefact, self.NAME, lay.name)
