"""The demo case's threat intel: what a partner CERT shared after the intrusion began.

A STIX 2.1 bundle (built with the stix2 library) names the actor's staging domain, its C2
address and the address that attacked the web server; a MISP event names the lure's
sender. Dated so the demo shows ageing: the C2 address was shared 78 days before the
report, past the 60-day lifetime of an address, so it matches as an expired, retro-hunt
indicator, while the domain (365 days) is live. All values are documentation ones.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

from tidehunt.demo.generate import ACTOR_WEB_IP, C2_HOST, C2_IP
from tidehunt.demo.mail import LOOKALIKE

NS: Final = uuid.UUID("a7f3c1e2-5b6d-4e8f-9a0b-1c2d3e4f5a6b")
SHARED: Final = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)
WEB_SHARED: Final = datetime(2026, 11, 20, 5, 30, tzinfo=UTC)
STAGING_DOMAIN: Final = C2_HOST.split(".", 1)[1]


def _id(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(NS, key)}"


def write_demo_intel(out_dir: Path) -> list[Path]:
    """The STIX bundle and the MISP event, in ``out_dir``."""
    import stix2

    out_dir.mkdir(parents=True, exist_ok=True)
    cert = stix2.Identity(id=_id("identity", "cert"), name="Partner CERT (demo)",
                          identity_class="organization", created=SHARED, modified=SHARED)

    def ind(key: str, name: str, pattern: str, when: datetime, conf: int) -> stix2.Indicator:
        return stix2.Indicator(
            id=_id("indicator", key), name=name, pattern=pattern, pattern_type="stix",
            valid_from=when, created=when, modified=when, created_by_ref=cert.id,
            confidence=conf, indicator_types=["malicious-activity"],
            kill_chain_phases=[{"kill_chain_name": "mitre-attack",
                                "phase_name": "command-and-control"}])

    bundle = stix2.Bundle(id=_id("bundle", "demo"), objects=[
        cert,
        ind("staging", f"APT40 staging domain {STAGING_DOMAIN}",
            f"[domain-name:value = '{STAGING_DOMAIN}']", SHARED, 85),
        ind("c2", f"APT40 C2 address {C2_IP}", f"[ipv4-addr:value = '{C2_IP}']", SHARED, 80),
        ind("web", f"Address exploiting web portals {ACTOR_WEB_IP}",
            f"[ipv4-addr:value = '{ACTOR_WEB_IP}']", WEB_SHARED, 75),
        ind("dns", "Public resolver (a feed listing it should not alert)",
            "[ipv4-addr:value = '8.8.8.8']", SHARED, 20),
    ])
    stix_path = out_dir / "partner-cert-2026-09.stix.json"
    stix_path.write_text(bundle.serialize(pretty=True), encoding="utf-8")
    misp = {"Event": {
        "uuid": str(uuid.uuid5(NS, "misp")), "info": "Maritime-themed spear-phishing (demo)",
        "date": "2026-10-20", "threat_level_id": "1", "analysis": "2", "distribution": "1",
        "Tag": [{"name": "tlp:amber"}, {"name": 'misp-galaxy:threat-actor="APT40"'}],
        "Attribute": [
            {"type": "email-src", "category": "Payload delivery", "to_ids": True,
             "value": f"editor@{LOOKALIKE}", "first_seen": "2026-10-06T00:40:00+00:00",
             "comment": "sender of research-paper lures", "uuid": str(uuid.uuid5(NS, "m1"))},
            {"type": "domain", "category": "Network activity", "to_ids": True,
             "value": LOOKALIKE.replace(".", "[.]"), "first_seen": "2026-10-06T00:40:00+00:00",
             "comment": "look-alike of a maritime publication (defanged in the feed)",
             "uuid": str(uuid.uuid5(NS, "m2"))},
        ]}}
    misp_path = out_dir / "misp-event-maritime-phish.json"
    misp_path.write_bytes(orjson.dumps(misp, option=orjson.OPT_INDENT_2))
    return [stix_path, misp_path]


INVENTORY: Final = """host,product,vendor,version,internet_facing,custom
WEB01.corp.example,Internet Information Services,Microsoft,10.0.17763,yes,no
WEB01.corp.example,CorpPortal,CORP,2.14,yes,yes
WIKI01.corp.example,Confluence Server,Atlassian,7.12.4,yes,no
MAIL01.corp.example,Exchange Server,Microsoft,15.1.2308.8,yes,no
APP01.corp.example,log4j-core,Apache,2.17.1,no,no
WS-ANALYST01.corp.example,WinRAR,RARLAB,6.22,no,no
WS-ANALYST01.corp.example,Microsoft Office,Microsoft,16.0.5422.1000,no,no
"""


def write_demo_inventory(out_dir: Path) -> Path:
    """The victim's asset list: an exposed Confluence, an old WinRAR, patched Exchange
    and Log4j (which must not be flagged)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "inventory.csv"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


def write_demo_wiki_log(evidence: Path) -> Path:
    """WIKI01's Confluence access log: a day of staff reading pages, and the actor's address
    trying the OGNL injection (CVE-2021-26084) on the exposed, unpatched Confluence an hour
    before it turns to the web portal."""
    from datetime import timedelta

    d = evidence / "wiki01"
    d.mkdir(parents=True, exist_ok=True)
    t0 = datetime(2026, 10, 6, 22, 0, tzinfo=UTC)
    lines = []
    pages = ("/display/ENG/Fleet+Maintenance", "/display/RES/Reading+List", "/index.action",
             "/display/ENG/Dry+Dock+Schedule", "/dashboard.action")
    for i in range(24):
        t = t0 + timedelta(minutes=37 * i)
        lines.append((t, f"[{t:%d/%b/%Y:%H:%M:%S} +0000] staff{i % 5} http-nio-8090-exec-{i % 9} "
                         f"10.10.30.{20 + i % 7} GET {pages[i % len(pages)]} HTTP/1.1 200 "
                         f"{40 + i}ms {7000 + 13 * i} - Mozilla/5.0 (Windows NT 10.0; Win64; "
                         "x64) AppleWebKit/537.36 Chrome/129.0 Safari/537.36"))
    probe = datetime(2026, 10, 7, 1, 9, 40, tzinfo=UTC)
    for i, uri in enumerate((
            "/pages/createpage-entervariables.action?SpaceKey=x",
            "/pages/createpage-entervariables.action?queryString=%5cu0027%2b%7b3*7%7d%2b%5cu0027",
            "/pages/doenterpagevariables.action?queryString=%5cu0027%2b%7bClass.forName"
            "%7d%2b%5cu0027")):
        t = probe + timedelta(seconds=11 * i)
        lines.append((t, f"[{t:%d/%b/%Y:%H:%M:%S} +0000] - http-nio-8090-exec-3 {ACTOR_WEB_IP} "
                         f"POST {uri} HTTP/1.1 {403 if i else 200} 12ms 512 - "
                         "python-requests/2.31.0"))
    path = d / "conf_access_log.2026-10-06.log"
    path.write_text("\n".join(x for _, x in sorted(lines)) + "\n", encoding="utf-8")
    return path
