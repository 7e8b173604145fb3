"""SQL pieces the network analytics share: evidence lists, host names of addresses, the
browser and tool user agents, and how a score's parts are written out."""

from __future__ import annotations

#: Evidence of ``net_flow``-shaped rows (connections and proxied requests), time order.
FLOW_EVIDENCE_SQL = ("list({'table': evidence_table, 'artefact': _artefact, 'locator': "
                     "_locator, 'source_file': source_file, 'line': line, 'ts': ts} "
                     "ORDER BY ts, _locator)[1:100]")
#: Evidence of rows of one network table (``{t}`` is the table name).
TABLE_EVIDENCE_SQL = ("list({{'table': '{t}', 'artefact': _artefact, 'locator': _locator, "
                      "'source_file': source_file, 'line': line, 'ts': ts}} "
                      "ORDER BY ts, _locator)[1:100]")


def host_of(ip: str) -> str:
    """SQL: the host name of an address (``host_ip``), else the address itself."""
    return f"coalesce((SELECT min(hi.host) FROM host_ip hi WHERE hi.ip = {ip}), {ip})"


#: A user agent a person's browser sends (every browser starts with Mozilla/).
#: ``--engine spark``: the network tables partitioned by client address. ``net_flow``
#: joins a connection to the TLS, HTTP and DNS records of its own client, so each bucket
#: of clients builds its own flows; an analytic whose findings are each of one client
#: (grouped by ``src_ip`` first, nothing compared across clients) declares it.
NET_PARTITION = {"net_conn": "src_ip", "proxy": "src_ip", "dns": "src_ip", "tls": "src_ip",
                 "http": "src_ip"}
BROWSER_UA_RX = r"^Mozilla/\d"
#: User agents of tools and libraries that upload to storage APIs.
TOOL_UA_RX = (r"(?i)(rclone|python-requests|python-urllib|aiohttp|curl/|wget/|"
              r"powershell|windowspowershell|go-http-client|okhttp|java/|libwww-perl|"
              r"winhttp|microsoft bits|megacmd|dropbox-sdk|dbxcli|gdrive|"
              r"^$|^-$)")
#: The user agent of APT40's Dropbox tool: a 2014 Chrome build string that the SigmaHQ
#: rule 5ba715b6-71b7-44fd-8245-f66893e81b3d (2019-11-12) gives for api.dropbox.com.
APT40_DROPBOX_UA = ("Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like "
                    "Gecko) Chrome/36.0.1985.143 Safari/537.36")


def parts_sql(*parts: tuple[str, str, str]) -> tuple[str, str]:
    """SQL of a score and its explanation from (condition, points, reason) parts: the
    score is the sum of the points whose condition holds, capped at 100, and the
    explanation lists each such part as "+points reason"."""
    score = " + ".join(f"(CASE WHEN {c} THEN {p} ELSE 0 END)" for c, p, _ in parts)
    why = ", ".join(f"CASE WHEN {c} THEN '+' || ({p})::INT || ' ' || {r} END"
                    for c, p, r in parts)
    return f"least(100, {score})::INT", f"concat_ws('; ', {why})"


def level_sql(score: str, critical: int = 70, high: int = 45) -> str:
    """SQL: the level of a score (critical, high, else medium)."""
    return (f"CASE WHEN {score} >= {critical} THEN 'critical' WHEN {score} >= {high} "
            "THEN 'high' ELSE 'medium' END")


def zone_of(addr_alias: str) -> str:
    """SQL: the policy zone of a ``net_addr`` row (``internet`` for public addresses
    outside every zone)."""
    return (f"coalesce({addr_alias}.zone, CASE WHEN {addr_alias}.public THEN 'internet' "
            "END)")


def violation_sql(sz: str, dz: str, proto: str, port: str, isolated: str) -> str:
    """SQL: true when traffic from zone ``sz`` to ``dz`` on ``proto``/``port`` is checked by
    the policy and no ``org_allow`` rule covers it. Pairs with ``internet`` are checked
    only when some rule names ``internet``."""
    return f"""({sz} IS NOT NULL AND {dz} IS NOT NULL
        AND ({sz} <> {dz} OR coalesce({isolated}, false))
        AND NOT ({sz} = 'internet' AND {dz} = 'internet')
        AND (({sz} <> 'internet' AND {dz} <> 'internet')
             OR EXISTS (SELECT 1 FROM org_allow ai WHERE 'internet' IN (ai.src, ai.dst)))
        AND NOT EXISTS (SELECT 1 FROM org_allow al
                        WHERE al.src IN ({sz}, 'any') AND al.dst IN ({dz}, 'any')
                          AND (al.proto IS NULL OR al.proto = {proto})
                          AND coalesce({port}, 0) BETWEEN al.port_lo AND al.port_hi))"""


#: Ports of remote administration and lateral movement.
LATERAL_PORTS = (22, 135, 139, 445, 3389, 5985, 5986, 5900)
