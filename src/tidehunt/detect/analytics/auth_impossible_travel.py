"""Impossible travel: two successful sign-ins of one account too far apart for the time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

SPEED_KMH = 900
MIN_KM = 500


class AuthImpossibleTravel(Analytic):
    """Consecutive successful sign-ins more than 500 km apart at over 900 km/h, placed by
    the GeoIP database (--geoip) or, without one, by the provider's own location."""

    NAME: ClassVar[str] = "auth_impossible_travel"
    READS: ClassVar[frozenset[str]] = frozenset({"auth"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"auth": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0038", "Impossible travel between two sign-ins of one account", "high",
        ["T1078", "T1550"], ["initial-access", "defense-evasion", "lateral-movement"],
        f"Two consecutive successful sign-ins of one account are at least {MIN_KM} km apart "
        f"and would need more than {SPEED_KMH} km/h: the password (or a token) is used "
        "from somewhere its owner is not. Places come from the offline GeoIP database given "
        "with --geoip (MaxMind DB format), else from the identity provider's own location.",
        ["https://attack.mitre.org/techniques/T1078/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per pair of sign-ins."""
        rows = query(con, f"""
            WITH s AS (
                SELECT a.*, coalesce(g.lat, a.lat) AS la, coalesce(g.lon, a.lon) AS lo,
                       coalesce(g.country, a.country) AS cc, coalesce(g.city, a.city) AS ci
                FROM auth a LEFT JOIN auth_geo g ON g.ip = a.src_ip
                WHERE a.result = 'success'),
            q AS (SELECT *, lag(ts) OVER w AS pts, lag(la) OVER w AS pla, lag(lo) OVER w AS plo,
                         lag(src_ip) OVER w AS pip, lag(cc) OVER w AS pcc,
                         lag(ci) OVER w AS pci, lag(_locator) OVER w AS ploc,
                         lag(_artefact) OVER w AS part, lag(source_file) OVER w AS psrc
                  FROM s WHERE la IS NOT NULL
                  WINDOW w AS (PARTITION BY "user" ORDER BY ts, _locator)),
            d AS (SELECT *, 2 * 6371 * asin(sqrt(pow(sin(radians(la - pla) / 2), 2) +
                         cos(radians(pla)) * cos(radians(la)) *
                         pow(sin(radians(lo - plo) / 2), 2))) AS km,
                         greatest(date_diff('second', pts, ts), 1) / 3600.0 AS hours
                  FROM q WHERE pla IS NOT NULL AND src_ip IS DISTINCT FROM pip)
            SELECT NULL AS host, "user", pip AS src, src_ip AS dst,
                   "user" || ' signed in from ' || coalesce(pci || ', ', '') ||
                   coalesce(pcc, '?') || ' (' || pip || ') at ' ||
                   strftime(pts, '%Y-%m-%d %H:%M') || ' and from ' ||
                   coalesce(ci || ', ', '') || coalesce(cc, '?') || ' (' || src_ip ||
                   ') at ' || strftime(ts, '%H:%M') || ' UTC: ' || round(km) || ' km in ' ||
                   round(hours * 60) || ' min (' || round(km / hours) || ' km/h)' AS summary,
                   {{'user': "user", 'from': pip, 'to': src_ip, 'km': round(km),
                     'kmh': round(km / hours)}} AS matched,
                   [{{'table': 'auth', 'artefact': part, 'locator': ploc,
                      'source_file': psrc, 'line': NULL::BIGINT, 'ts': pts}},
                    {{'table': 'auth', 'artefact': _artefact, 'locator': _locator,
                      'source_file': source_file, 'line': NULL::BIGINT, 'ts': ts}}] AS ev
            FROM d WHERE km >= {MIN_KM} AND km / hours > {SPEED_KMH}
            ORDER BY ts, "user" """)
        yield from findings_from_rows(self.META, rows, "auth")
