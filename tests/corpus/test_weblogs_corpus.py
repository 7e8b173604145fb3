"""Every access log of ../shared/corpus/weblogs: lines accounted for, attacks found."""

from __future__ import annotations

import csv

import pyarrow as pa
import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector
from tidehunt.ingest import ingest
from tidehunt.model.rule import Severity
from tidehunt.sources.base import Artefact
from tidehunt.sources.sniff import sniff

#: The reader each corpus log must be recognised as (by content).
READERS = {
    "attack/plaso_apache_access_webshell.log": "access_log",
    "attack/plaso_iis7_sqli.log": "iis_w3c",
    "attack/tomcat_manager_bruteforce_war_webshell_access_log.txt": "access_log",
    "benign/elastic_apache_logs_combined.log": "access_log",
    "benign/iis6.log": "iis_w3c",
    "benign/iis10.log": "iis_w3c",
    "benign/iis10_cookies.log": "iis_w3c",
    "benign/iis10_edge_cases.log": "iis_w3c",
    "benign/iis7_owa_exchange.log": "iis_w3c",
    "benign/iis_without_date.log": "iis_w3c",
    "benign/confluence_access.log": "access_log",
    "benign/confluence_access_post7.11.log": "access_log",
    "benign/jira_access.log": "access_log",
    "benign/atlassian-bitbucket-access.log": "access_log",
    "benign/aws_elb_access.log": "access_log",
}


def _physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def test_manifest_lists_exactly_these_logs(corpus):
    with open(corpus("weblogs/manifest.csv"), newline="") as fh:
        files = {r["file"] for r in csv.DictReader(fh)}
    assert files == set(READERS)


@pytest.mark.parametrize("rel", sorted(READERS))
def test_every_line_accounted_for(corpus, rel):
    path = corpus("weblogs/" + rel)
    art = Artefact("a", path, str(path))
    cls = sniff(art)
    assert cls is not None and READERS[rel] == cls.NAME
    ctx = RunContext()
    src = cls()
    rows = sum(b.num_rows for b in src.read(art, ctx))
    st = src.stats
    warned = sum(w.count for w in ctx.warnings if w.message.startswith(("line does not",
                                                                        "field count")))
    assert st.lines == _physical_lines(path.read_bytes())
    assert st.records == rows
    assert st.records + st.directives + st.blank + st.bad == st.lines
    assert warned == st.bad
    assert rows > 0


@pytest.fixture(scope="module")
def weblog_case(tmp_path_factory):
    from tests.conftest import corpus_path

    root = corpus_path("weblogs")
    out = {}
    for label in ("attack", "benign"):
        store = CaseStore(tmp_path_factory.mktemp(label), create=True)
        ingest([str(root / label)], store, RunContext(), workers=1)
        det = AnalyticsDetector()
        out[label] = (store, pa.Table.from_batches(list(det.run(store, RunContext()))), det)
    return out


def _rows(table):
    return table.select(["rule_id", "level", "summary", "src", "evidence"]).to_pylist()


def test_tomcat_war_web_shell_story(weblog_case):
    _, findings, det = weblog_case["attack"]
    assert det.stats.failed == []
    got = {(r["rule_id"], r["src"]): r for r in _rows(findings)}
    deploy = got[("th-analytic-0004", "192.168.105.76")]
    assert "/manager/html/upload" in deploy["summary"] and "admin" in deploy["summary"]
    shell = got[("th-analytic-0005", "192.168.105.76")]
    assert shell["level"] == "critical" and "/error/cmd.jsp" in shell["summary"]
    sizes = got[("th-analytic-0007", "192.168.105.76")]
    assert "/error/cmd.jsp" in sizes["summary"]
    # evidence points at the exact log lines of the shell's POSTs
    lines = {e["record_id"] for e in sizes["evidence"]}
    assert {2642, 2645, 2660} <= lines
    scans = {r["src"] for r in _rows(findings) if r["rule_id"] == "th-analytic-0012"}
    assert scans == {"192.168.105.83", "192.168.105.64"}


def test_evil_php_and_iis_sqli(weblog_case):
    _, findings, _ = weblog_case["attack"]
    rows = _rows(findings)
    cmd = [r for r in rows if r["rule_id"] == "th-analytic-0001"]
    assert cmd and all("/wp-content/themes/darkmode/evil.php" in r["summary"] for r in cmd)
    assert {r["src"] for r in cmd} == {"192.168.0.2"}
    sqli = [r for r in rows if r["rule_id"] == "th-analytic-0010"]
    assert len(sqli) == 1 and sqli[0]["level"] == "high"
    assert sqli[0]["src"] == "222.222.222.222" and "/foo/bar/baz.asp" in sqli[0]["summary"]


def test_benign_logs_raise_nothing_high(weblog_case):
    store, findings, det = weblog_case["benign"]
    assert store.rows("web_access") > 10_000
    assert det.stats.failed == []
    loud = [r for r in _rows(findings) if Severity.parse(r["level"]) >= Severity.HIGH]
    assert loud == []
