"""A POST to a server script, then the web server's process acting on the host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import (
    DECODED_STEM,
    SCRIPT_EXT,
    Analytic,
    Prepared,
    findings_from_rows,
    has_table,
    lit,
    meta,
    query,
)
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

WINDOW_MINUTES = 5
#: A script POSTed to by more clients than this is an application form, not a shell.
MAX_CLIENTS = 2
WEB_SERVER_RX = r"\\(w3wp|tomcat\d*|java|javaw|httpd|php-cgi|php|nginx|node)\.exe$"
CHILD_RX = (r"\\(cmd|powershell|pwsh|whoami|net1?|ipconfig|systeminfo|tasklist|netstat|nltest|"
            r"certutil|bitsadmin|rundll32|regsvr32|mshta|cscript|wscript|reg|sc|schtasks|"
            r"quser|query|wmic|rar|7z|procdump\d*)\.exe$")
SCRIPT_FILE_RX = r"\.(aspx|ashx|asmx|asp|jspx?|php\d?|phtml|war)$"
#: A web log's server, as its Windows host name is compared (first label, lower case).
SERVER_SQL = "lower(split_part(coalesce(host, ''), '.', 1))"
NEEDED = ("ParentImage", "Image", "CommandLine", "TargetFilename")


class WebShellHostChain(Analytic):
    """POSTs to a script followed within minutes by the web server spawning a shell or
    writing a script file on the same host: one chain across the two logs."""

    NAME: ClassVar[str] = "web_shell_host_chain"
    READS: ClassVar[frozenset[str]] = frozenset({"web_access", "windows"})
    #: --engine spark: the web server's actions come from a scan of the Windows events
    #: (they are few); the POSTs, by server name, are paired with them per bucket; the
    #: driver then gives each action to its latest POST, over those pairs only.
    REDUCE: ClassVar[bool] = True
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0020", "Web-shell chain: POST to a script, then the web server acts on "
        "the host", "critical", ["T1505.003", "T1190", "T1059.003"],
        ["persistence", "initial-access", "execution"],
        "A successful POST to a server-side script that at most two clients post to is "
        "followed within five minutes, on the same host, by the web server's worker process "
        "(w3wp, Tomcat, httpd, php-cgi) "
        "starting a shell or recon tool, or writing a script file into the site. The two "
        "logs together show the request that drove each command.",
        ["https://attack.mitre.org/techniques/T1505/003/",
         "https://www.cisa.gov/news-events/cybersecurity-advisories/aa24-190a"], __name__)

    def prepared(self, con: Any) -> list[Prepared]:
        """The web server's actions (a scan of the Windows events), then each successful
        POST to a rarely posted script paired with the actions after it (by server)."""
        cols = {r[0].lower() for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'windows'").fetchall()}
        if not all(c.lower() in cols for c in NEEDED):
            return []
        act = Prepared("wshc_act", f"""
            SELECT ts, host, _artefact, _locator, source_file, record_id, event_id,
                   Image, CommandLine, TargetFilename,
                   lower(split_part(coalesce(host, ''), '.', 1)) AS hs
            FROM windows
            WHERE (event_id = 1 AND regexp_matches(lower(ParentImage), {lit(WEB_SERVER_RX)})
                   AND regexp_matches(lower(Image), {lit(CHILD_RX)}))
               OR (event_id = 11 AND regexp_matches(lower(Image), {lit(WEB_SERVER_RX)})
                   AND regexp_matches(lower(TargetFilename), {lit(SCRIPT_FILE_RX)}))""",
                       "windows")
        cand = Prepared("wshc_cand", f"""
            WITH post AS (
                SELECT *, {SERVER_SQL} AS hs, {DECODED_STEM} AS s
                FROM web_access
                WHERE method = 'POST' AND status BETWEEN 200 AND 299
                  AND regexp_matches({DECODED_STEM}, '{SCRIPT_EXT}')),
            rare AS (SELECT hs, s FROM post GROUP BY hs, s
                     HAVING count(DISTINCT client_ip) <= {MAX_CLIENTS}),
            req AS (SELECT post.* FROM post JOIN rare USING (hs, s))
            SELECT r.host AS web_host, r.uri_stem, r.client_ip, a.host AS win_host,
                   r.ts AS rts, a.ts AS ats, a.event_id,
                   coalesce(a.CommandLine, 'wrote ' || a.TargetFilename) AS what,
                   r._artefact AS ra, r._locator AS rl, r.source_file AS rf,
                   r.line AS rline, a._artefact AS aa, a._locator AS al,
                   a.source_file AS af, a.record_id AS arec
            FROM req r JOIN wshc_act a
              ON a.ts >= r.ts AND a.ts <= r.ts + INTERVAL {WINDOW_MINUTES} MINUTE
             AND (r.hs = '' OR r.hs = a.hs)""", {"web_access": SERVER_SQL},
                        {"web_access": "method = 'POST' AND status BETWEEN 200 AND 299"})
        return [act, cand]

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (web host, script URI, client)."""
        if not has_table(con, "wshc_cand"):
            return
        rows = query(con, """
            WITH cand AS (SELECT * FROM wshc_cand),
            -- each action belongs to the latest POST before it, not to every POST nearby
            pair AS (SELECT * FROM cand QUALIFY row_number() OVER (
                         PARTITION BY aa, al ORDER BY rts DESC, rl) = 1)
            SELECT min(win_host) AS host, client_ip AS src, uri_stem AS dst,
                   count(DISTINCT rl) || ' POST(s) to ' || uri_stem || ' from ' ||
                   coalesce(client_ip, '?') || ' followed on ' || min(win_host) || ' by ' ||
                   count(DISTINCT al) || ' action(s) of the web server: ' ||
                   left(string_agg(DISTINCT what, ' | ' ORDER BY what), 300) AS summary,
                   {'uri': uri_stem, 'client_ip': client_ip, 'host': min(win_host),
                     'posts': count(DISTINCT rl), 'actions': count(DISTINCT al),
                     'first_post': min(rts), 'first_action': min(ats)} AS matched,
                   list(DISTINCT {'table': 'web_access', 'artefact': ra, 'locator': rl,
                                  'source_file': rf, 'line': rline, 'ts': rts})
                   || list(DISTINCT {'table': 'windows', 'artefact': aa, 'locator': al,
                                     'source_file': af, 'line': arec, 'ts': ats}) AS ev
            FROM pair GROUP BY web_host, uri_stem, client_ip ORDER BY min(rts)""")
        yield from findings_from_rows(self.META, rows)
