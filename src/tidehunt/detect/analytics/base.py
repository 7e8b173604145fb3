"""Analytic base class and the SQL helpers the web analytics share.

An analytic is one module: a class with its rule metadata (``META``), the tables it reads
and one ``run`` that asks DuckDB for whole findings at once (one SQL row per finding, with
its evidence rows as a list), so no Python loop touches the events themselves.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.model.finding import Evidence, Finding
from tidehunt.model.rule import AttackRef, RuleLocation, RuleMeta, Severity

#: Server-side script extensions (web shells are written in these).
SCRIPT_EXT = r"\.(php\d?|phtml|phar|jspx?|jspf|jsv|asp|aspx|ashx|asmx|asa|cer|cfm|cgi|pl)$"
#: Extensions a server executes rather than serves as a download (no .cgi/.pl/.py/.sh).
EXECUTED_EXT = r"\.(php\d?|phtml|phar|jspx?|jspf|jsv|asp|aspx|ashx|asmx|asa|cer|cfm)$"
#: The query string URL-decoded (``+`` as space) and lower-cased; an escape that does not
#: decode to UTF-8 (``%80``, common in attack traffic) leaves the value as logged.
DECODED_QUERY = ("lower(replace(coalesce(try(url_decode(uri_query)), uri_query, ''), '+', "
                 "' '))")
DECODED_STEM = "lower(coalesce(try(url_decode(uri_stem)), uri_stem, ''))"
NSA_WEBSHELLS = ("https://media.defense.gov/2020/Jun/09/2002313081/-1/-1/0/"
                 "CSI-DETECT-AND-PREVENT-WEB-SHELL-MALWARE-20200422.PDF")
ATTACK_T1505_003 = "https://attack.mitre.org/techniques/T1505/003/"
APT40_ADVISORY = "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"
#: Evidence rows as DuckDB builds them: a list of structs, in time order, at most 1,000.
EVIDENCE_SQL = ("list({'artefact': _artefact, 'locator': _locator, 'source_file': "
                "source_file, 'line': line, 'ts': ts} ORDER BY ts, line)[1:1000]")
#: The server a request was made to: its host, vhost or site name as logged, else the
#: folder its log was in (logs of one server are kept together), as "logs in <folder>".
#: Evidence of ``file`` rows (the locator is the path relative to the web root).
FILE_EVIDENCE_SQL = ("list({'table': 'file', 'artefact': _artefact, 'locator': _locator, "
                     "'source_file': root || '/' || path, 'line': NULL::BIGINT, 'ts': ts} "
                     "ORDER BY path)[1:1000]")
#: Hosts of file-sharing, cloud-storage, paste and transfer services (a link's host, in
#: lower case). The network issue's catalogue extends this; here it marks lure links.
CLOUD_STORAGE_RX = (
    r"^[a-z]+://([^/]*\.)?(dropbox\.com|dropboxusercontent\.com|db\.tt|drive\.google\.com|"
    r"docs\.google\.com|storage\.googleapis\.com|onedrive\.live\.com|1drv\.ms|"
    r"sharepoint\.com|box\.com|mega\.nz|mega\.io|pcloud\.com|mediafire\.com|"
    r"wetransfer\.com|we\.tl|sendspace\.com|transfer\.sh|file\.io|gofile\.io|"
    r"github\.com|raw\.githubusercontent\.com|gist\.github\.com|pastebin\.com|"
    r"paste\.ee|hastebin\.com|yadi\.sk|disk\.yandex\.[a-z]+|4shared\.com|zippyshare\.com|"
    r"anonfiles\.com|bit\.ly|tinyurl\.com|t\.co|rebrand\.ly|cutt\.ly)([:/?#]|$)")
#: Folders that should hold only images, uploads or static content.
STATIC_DIR_RX = (r"(^|/)(uploads?|upload_files?|images?|imgs?|pics?|static|css|js|"
                 r"fonts?|media|files|attachments?|avatars?|thumbs?|icons?|downloads?)/")
HOST_SQL = ("coalesce(host, vhost, site, 'logs in ' || "
            "regexp_replace(source_file, '[/\\\\][^/\\\\]*$', ''))")

#: ``--engine spark``: mails by the evidence file they came from, with their attachments
#: (an attachment row has its mail's artefact), for analytics of one message at a time.
MAIL_PARTITION = {"mail": "_artefact", "mail_attachment": "_artefact"}
#: ``--engine spark``: Windows events by host (in lower case), for analytics whose
#: findings are each of one host.
WINDOWS_PARTITION = {"windows": "lower(host)"}
#: ``--engine spark``: the files of each web-root scan (its artefact) together, for the
#: web-root analytics (each finding is of one file, or of files of one scan).
WEBROOT_PARTITION = {"file": "_artefact"}
WEBROOT_KEEP = {"file": "coalesce(origin, 'webroot') = 'webroot'"}


def meta(id: str, title: str, level: str, techniques: Iterable[str],
         tactics: Iterable[str], description: str, references: Iterable[str] = (),
         module: str = "") -> RuleMeta:
    """Rule metadata of an analytic."""
    tac = tuple(tactics)
    return RuleMeta(
        id=id, title=title, engine="analytics", severity=Severity.parse(level),
        attack=tuple(AttackRef(t, tac) for t in techniques), tactics=tac,
        references=tuple(references), description=description,
        location=RuleLocation(module) if module else None,
    )


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A table an analytic computes from the case before it runs (``Analytic.prepared``).

    ``over`` is a table name, or keys per table as in ``Analytic.PARTITION``. With a
    table name, ``sql`` (DuckDB) reads that table only (and the driver's small prepared
    tables), and under ``--engine spark`` it runs over each Arrow batch of the table's
    rows, without a shuffle. With keys, it runs over each bucket of keys, as a
    partitioned analytic does (with ``keep`` as ``PARTITION_KEEP``). Either way the
    analytic must read the table so that its answer is the same whether the table is
    ``sql`` over all the rows or the union of ``sql`` over any such split of them: a
    filter or projection of rows, or partial aggregates it aggregates again (a minimum
    of minimums, a sum of counts over disjoint keys). ``sql`` may read the tables of
    the analytic's earlier ``Prepared`` computed over a table name.
    """

    name: str
    sql: str
    over: str | Mapping[str, str]
    keep: Mapping[str, str] | None = None


def lit(value: str) -> str:
    """A DuckDB string literal (for SQL that is shipped whole, without parameters)."""
    return "'" + value.replace("'", "''") + "'"


def in_bucket(expr: str) -> str:
    """True for the rows whose ``expr`` is one of this run's keys: on a Spark bucket of a
    ``PARTITION`` whose key is a list (one row going to several buckets), the groups
    keyed by ``expr`` that belong to that bucket; locally, every row."""
    return f"in_bucket({expr})"


#: The local engine's ``in_bucket`` (every key is this run's).
IN_BUCKET_LOCAL = "CREATE OR REPLACE TEMP MACRO in_bucket(x) AS true"


class Analytic(abc.ABC):
    """One detection over whole tables (SQL or Arrow), with its own rule metadata."""

    NAME: ClassVar[str]
    META: ClassVar[RuleMeta]
    READS: ClassVar[frozenset[str]]
    #: Tables of which the analytic needs at least one (e.g. net_conn or proxy).
    READS_ANY: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """Findings over the tables of a DuckDB connection (views named by table)."""

    #: True when ``run_spark`` scans the case's tables as Spark jobs (``--engine spark``).
    SPARK: ClassVar[bool] = False
    #: ``--engine spark``: the key of each table it reads (a DuckDB expression over that
    #: table) such that its findings over all rows are the union of its findings over the
    #: rows of each key: it then runs on the Spark executors, on one bucket of keys at a
    #: time (``tidehunt.detect.spark_tables.run_partitioned``). None: on the driver.
    #: A key that is a list sends the row to the bucket of each of its values; the
    #: analytic then keeps only the groups whose key is the bucket's (:func:`in_bucket`).
    PARTITION: ClassVar[Mapping[str, str] | None] = None
    #: With ``PARTITION``: per table, a condition (DuckDB, over that table) that every
    #: row it reads meets, so that Spark shuffles only those.
    PARTITION_KEEP: ClassVar[Mapping[str, str] | None] = None
    #: Without ``SPARK`` or ``PARTITION``: why the analytic's findings cannot be split by
    #: any key (it runs on the driver's DuckDB under ``--engine spark``, and says so).
    DRIVER: ClassVar[str] = ""

    #: True when ``run`` reads only its :meth:`prepared` tables and the driver's small
    #: prepared ones (``SHARED_TABLES``): under ``--engine spark`` the executors compute
    #: the prepared tables and ``run`` reduces them on the driver, on a connection that
    #: has nothing else.
    REDUCE: ClassVar[bool] = False

    def prepared(self, con: Any) -> list[Prepared]:
        """Tables the analytic computes from the case before ``run`` reads them (``con``:
        the driver's connection over the whole case, to see which columns it has).
        Locally each is a temporary table over all the rows; under ``--engine spark``
        each is computed on the executors and collected (see :class:`Prepared`)."""
        return []

    def run_spark(self, con: Any, ctx: RunContext, job: Any) -> Iterator[Finding]:
        """The same findings with the table scans on Spark (``job``: a
        :class:`tidehunt.detect.spark_tables.SparkCase`); by default, ``run``."""
        return self.run(con, ctx)


def findings_from_rows(rule: RuleMeta, rows: Iterable[dict[str, Any]],
                       table: str = "web_access") -> Iterator[Finding]:
    """SQL rows -> findings. Each row has ``summary``, ``ev`` (evidence structs) and any
    of ``host``, ``user``, ``src``, ``dst``, ``matched`` (a struct) and ``level``."""
    for row in rows:
        ev = [Evidence(e.get("table") or table, e["source_file"] or "", e["artefact"],
                       e["locator"], e.get("line"), _ts(e.get("ts"))) for e in row["ev"]]
        r = rule
        if row.get("level"):
            r = dataclasses.replace(rule, severity=Severity.parse(row["level"]))
        matched = {k: str(v) for k, v in (row.get("matched") or {}).items()
                   if v not in (None, "")}
        yield Finding.of(r, ev, row["summary"], matched=matched, host=row.get("host"),
                         user=row.get("user"), src=row.get("src"), dst=row.get("dst"))


def _ts(v: Any) -> datetime | None:
    return v if isinstance(v, datetime) else None


def has_table(con: Any, name: str) -> bool:
    """True if the case has rows for ``name`` (a view exists)."""
    rows = con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?",
                       [name]).fetchall()
    return bool(rows)


def table_names(con: Any) -> frozenset[str]:
    """Every table and view the connection sees now, in one query: ``has_table`` of each
    name, for a check of many names at once (a query of ``information_schema`` costs
    about a millisecond, and the analytics' applicability asked 130 of them)."""
    return frozenset(r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall())


def query(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a query as dicts."""
    rel = con.execute(sql, params or [])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
