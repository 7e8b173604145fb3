"""Each web analytic on generated access logs: fires on its pattern, not on look-alikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from tidehunt.case.store import CaseStore
from tidehunt.context import RunContext
from tidehunt.detect.analytics.detector import AnalyticsDetector, AnalyticsOptions
from tidehunt.ingest import ingest

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def line(ip: str, method: str, uri: str, status: int = 200, size: int = 1000,
         user: str = "-", at: int = 0) -> str:
    ts = (T0 + timedelta(seconds=at)).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - {user} [{ts}] "{method} {uri} HTTP/1.1" {status} {size} "-" "UA"\n'


def background(n: int = 200) -> list[str]:
    """Ordinary traffic from many clients so that rarity means something."""
    return [line(f"198.51.100.{i % 60}", "GET", f"/page/{i % 40}.html", at=i)
            for i in range(n)]


def hunt(tmp_path, lines, **opts):
    log = tmp_path / "evidence" / "access.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("".join(lines))
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(log)], store, RunContext(), workers=1)
    det = AnalyticsDetector(AnalyticsOptions(**opts))
    t = pa.Table.from_batches(list(det.run(store, RunContext())))
    assert det.stats.failed == []
    return t.select(["rule_id", "level", "summary", "src", "dst"]).to_pylist()


def ids(rows):
    return sorted({r["rule_id"] for r in rows})


def test_command_in_parameter(tmp_path):
    rows = hunt(tmp_path, [*background(),
                           line("203.0.113.5", "GET", "/up/x.php?c=whoami", at=300),
                           line("203.0.113.5", "GET", "/up/x.php?c=net%20user%20/domain",
                                at=301),
                           line("203.0.113.6", "GET", "/search?q=network+users+guide")])
    hit = [r for r in rows if r["rule_id"] == "th-analytic-0001"]
    assert [(r["src"], r["dst"]) for r in hit] == [("203.0.113.5", "/up/x.php")]
    assert "2 requests" in hit[0]["summary"]


def test_regeorg_tunnel_grammar(tmp_path):
    rows = hunt(tmp_path, [*background(),
                           line("203.0.113.5", "POST", "/t.jsp?cmd=connect&target=10.0.0.5"
                                "&port=3389", at=300),
                           line("203.0.113.5", "POST", "/t.jsp?cmd=read", at=301),
                           line("203.0.113.7", "GET", "/help?topic=connect")])
    hit = [r for r in rows if r["rule_id"] == "th-analytic-0002"]
    assert [(r["src"], r["dst"]) for r in hit] == [("203.0.113.5", "/t.jsp")]
    assert "connect" in hit[0]["summary"] and "read" in hit[0]["summary"]


def test_brute_force_then_login_is_high(tmp_path):
    fails = [line("203.0.113.9", "GET", "/manager/html", 401, 2500, at=300 + i)
             for i in range(12)]
    ok = line("203.0.113.9", "GET", "/manager/html", 200, 9000, user="tomcat", at=400)
    rows = hunt(tmp_path, [*background(), *fails, ok])
    hit = [r for r in rows if r["rule_id"] == "th-analytic-0003"]
    assert len(hit) == 1 and hit[0]["level"] == "high" and "tomcat" in hit[0]["summary"]


def test_brute_force_without_login_stays_medium_and_few_failures_are_quiet(tmp_path):
    fails = [line("203.0.113.9", "GET", "/manager/html", 401, at=300 + i) for i in range(12)]
    few = [line("203.0.113.10", "GET", "/admin/", 401, at=500 + i) for i in range(3)]
    rows = hunt(tmp_path, [*background(), *fails, *few])
    hit = [r for r in rows if r["rule_id"] == "th-analytic-0003"]
    assert [(r["src"], r["level"]) for r in hit] == [("203.0.113.9", "medium")]


def test_war_deploy_then_new_shell_then_command_output(tmp_path):
    shell = [line("203.0.113.5", "POST", "/app/cmd.jsp", 200, size, at=700 + i)
             for i, size in enumerate((40, 800, 52000, 130, 9000, 75, 3100))]
    rows = hunt(tmp_path, [*background(), line("203.0.113.5", "GET", "/app/index.jsp", at=1),
                           line("203.0.113.5", "POST", "/manager/html/upload", 200,
                                user="admin", at=600),
                           *shell])
    got = {r["rule_id"]: r for r in rows}
    assert {"th-analytic-0004", "th-analytic-0005", "th-analytic-0006",
            "th-analytic-0007"} <= set(got)
    assert got["th-analytic-0005"]["dst"] == "/app/cmd.jsp"
    assert got["th-analytic-0005"]["level"] == "critical"
    # a page served before the deploy is not "new"
    assert all("/app/index.jsp" not in r["summary"] for r in rows)


def test_steady_form_posts_are_not_command_output(tmp_path):
    form = [line("203.0.113.5", "POST", "/contact.php", 200, 1420 + i % 3, at=700 + i)
            for i in range(10)]
    assert "th-analytic-0007" not in ids(hunt(tmp_path, [*background(), *form]))


def test_script_in_upload_folder_but_not_a_download(tmp_path):
    rows = hunt(tmp_path, [*background(),
                           line("203.0.113.5", "GET", "/wp-content/uploads/2024/05/a.php"),
                           line("203.0.113.6", "GET", "/files/tool.py"),
                           line("203.0.113.6", "GET", "/images/b.php", 404)])
    hit = [r["dst"] for r in rows if r["rule_id"] == "th-analytic-0008"]
    assert hit == ["/wp-content/uploads/2024/05/a.php"]


def test_long_encoded_parameter(tmp_path):
    blob = "QUJD" * 100
    rows = hunt(tmp_path, [*background(),
                           line("203.0.113.5", "POST", f"/x.aspx?z0={blob}"),
                           line("203.0.113.6", "GET", "/y.aspx?token=abc123")])
    assert [r["src"] for r in rows if r["rule_id"] == "th-analytic-0009"] == ["203.0.113.5"]


def test_sql_injection_levels(tmp_path):
    rows = hunt(tmp_path, [*background(),
                           line("203.0.113.5", "GET", "/item.asp?id=1%20union%20select%201,2",
                                500),
                           line("203.0.113.6", "GET", "/item.asp?id=1'%20or%20'1'='1", 200),
                           line("203.0.113.7", "GET", "/item.asp?id=42", 200)])
    got = {r["src"]: r["level"] for r in rows if r["rule_id"] == "th-analytic-0010"}
    assert got == {"203.0.113.5": "high", "203.0.113.6": "medium"}


def test_scanbox_beacon(tmp_path):
    rows = hunt(tmp_path, [*background(),
                           line("192.0.2.50", "GET", "/i/?3d2f9a=Windows%2010", at=5),
                           line("192.0.2.50", "GET", "/i/k.php?data=a1b2", at=6),
                           line("192.0.2.51", "GET", "/i/logo.png")])
    hit = [r["dst"] for r in rows if r["rule_id"] == "th-analytic-0011"]
    assert sorted(hit) == ["/i/", "/i/k.php"]


def test_scan_needs_many_refused_paths(tmp_path):
    probe = [line("203.0.113.66", "GET", f"/probe/{i}.cgi", 404, at=i) for i in range(250)]
    busy = [line("203.0.113.67", "GET", f"/article/{i}", 200, at=i) for i in range(250)]
    rows = hunt(tmp_path, [*background(), *probe, *busy])
    assert [r["src"] for r in rows if r["rule_id"] == "th-analytic-0012"] == ["203.0.113.66"]


@pytest.mark.parametrize(("opts", "expect"), [
    ({}, True),
    ({"exclude": ["th-analytic-0001"]}, False),
    ({"since": T0 + timedelta(hours=1)}, False),
])
def test_filters_apply_to_analytics(tmp_path, opts, expect):
    rows = hunt(tmp_path, [*background(), line("203.0.113.5", "GET", "/x.php?c=whoami")],
                **opts)
    assert ("th-analytic-0001" in ids(rows)) is expect
