"""New external shares and anonymous links of cloud files."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from tidehunt.context import RunContext
from tidehunt.detect.analytics._cloud import CLOUD_EVIDENCE
from tidehunt.detect.analytics.base import Analytic, findings_from_rows, meta, query
from tidehunt.model.finding import Finding
from tidehunt.model.rule import RuleMeta

ANON = ("anonymouslinkcreated", "anonymouslinkused", "companylinkcreated",
        "securelinkcreated", "addedtosecurelink")
SHARE = ("sharinginvitationcreated", "sharingset", "addedtogroup", "change_user_access",
         "change_acl_editors", "change_document_visibility", "shared_drive_membership_change")


class CloudExternalSharing(Analytic):
    """Anonymous links, and shares to addresses outside the organisation's domains."""

    NAME: ClassVar[str] = "cloud_external_sharing"
    READS: ClassVar[frozenset[str]] = frozenset({"cloud_audit"})
    #: Every finding is of one user (grouped by it first): partitioned by it on Spark.
    PARTITION: ClassVar[Mapping[str, str] | None] = {"cloud_audit": '"user"'}
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0043", "Cloud file shared externally or by an anonymous link", "medium",
        ["T1567.002", "T1537", "T1530"], ["exfiltration", "collection"],
        "A file or folder got an anonymous (anyone-with-the-link) link, a public visibility, "
        "or a share to an address outside the organisation's own domains (the profile's, "
        "else those the case's mail goes to): a way out that needs no upload. High for "
        "anonymous and public links.",
        ["https://attack.mitre.org/techniques/T1567/002/"], __name__)

    def run(self, con: Any, ctx: RunContext) -> Iterator[Finding]:
        """One finding per (account, object)."""
        anon = ", ".join(f"'{x}'" for x in ANON)
        share = ", ".join(f"'{x}'" for x in SHARE)
        own = ("SELECT d FROM mail_own_domain UNION SELECT domain FROM org_domain "
               "WHERE role = 'own'")
        try:
            con.execute("SELECT 1 FROM mail_own_domain LIMIT 1")
        except Exception:  # noqa: BLE001 - no mail in the case: the profile alone
            own = "SELECT domain AS d FROM org_domain WHERE role = 'own'"
        rows = query(con, f"""
            WITH own AS ({own}),
            s AS (SELECT *, lower(regexp_extract(coalesce(target, ''), '@([^@\\s>]+)$', 1))
                              AS tdom,
                         lower(operation) IN ({anon}) OR lower(coalesce(visibility, ''))
                         IN ('people_with_link', 'public_on_the_web', 'anyone',
                             'anonymous', 'anyonewiththelink') AS anonymous
                  FROM cloud_audit
                  WHERE lower(operation) IN ({anon}) OR lower(operation) IN ({share}))
            SELECT NULL AS host, "user", min(src_ip) AS src,
                   coalesce(min(object), '?') AS dst,
                   CASE WHEN bool_or(anonymous) THEN 'high' END AS level,
                   "user" || CASE WHEN bool_or(anonymous)
                        THEN ' made an anonymous or public link to '
                        ELSE ' shared ' END || coalesce(min(object), 'an item') ||
                   CASE WHEN bool_or(tdom <> '') THEN ' with ' ||
                        string_agg(DISTINCT target, ', ' ORDER BY target) ELSE '' END ||
                   ' (' || string_agg(DISTINCT operation, ', ' ORDER BY operation) ||
                   ') at ' || strftime(min(ts), '%Y-%m-%d %H:%M') || ' UTC' AS summary,
                   {{'user': "user", 'object': min(object),
                     'targets': string_agg(DISTINCT target, ', ' ORDER BY target)}}
                       AS matched,
                   {CLOUD_EVIDENCE} AS ev
            FROM s
            WHERE anonymous OR (tdom <> '' AND tdom NOT IN (SELECT d FROM own))
            GROUP BY "user", object ORDER BY min(ts), "user", object""")
        yield from findings_from_rows(self.META, rows, "cloud_audit")
