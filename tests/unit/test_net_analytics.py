"""Network analytics on generated traffic (tests/fixtures/nettraffic.py): each analytic
finds its positive case with the numbers behind its score, and its benign twin gives
nothing. Also the profile's calendar and zone policy, and the address classification."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import orjson
import pytest

from tests.fixtures.nettraffic import build
from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt
from tidehunt.errors import ConfigError
from tidehunt.network import PrefixMap, addr_table
from tidehunt.org import OrgProfile


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> dict[str, list[dict]]:
    root = tmp_path_factory.mktemp("net")
    p = build(root)
    case = root / "case"
    report = hunt([str(p["evidence"])], case, RunContext(), HuntOptions(
        workers=1, bundled_intel=False, feeds=False, org=str(p["org"]),
        risky_networks=str(p["risky"])))
    assert report.stats["analytics"]["failed"] == []
    by: dict[str, list[dict]] = {}
    for line in (case / "findings.jsonl").read_bytes().splitlines():
        f = orjson.loads(line)
        by.setdefault(f["rule_id"], []).append(f)
    return by


def _pairs(found, rule):
    return {(f["src"], f["dst"]) for f in found.get(rule, [])}


def test_cloud_upload_baselines(found):
    hits = found["th-analytic-0046"]
    by_src = {}
    for f in hits:
        by_src.setdefault(f["src"], []).append(f)
    # 2 GB at Saturday 02:00 from a host with a normal profile
    (night,) = by_src["10.30.0.21"]
    assert night["level"] == "critical" and "outside business hours" in night["summary"]
    assert "Sat 02:00" in night["summary"] and "2.0 GiB" in night["summary"]
    # steady business-hours uploads, new for this host: flagged by its own weeks
    steady = by_src["10.30.0.22"]
    assert len(steady) == 4  # one finding per day, Tuesday to Friday of the last week
    assert all("all inside business hours" in f["summary"] for f in steady)
    assert all("over 3 other week(s)" in f["summary"] for f in steady)
    assert all(int(f["fields"]["weeks"]) == 3 for f in steady)
    # the benign twin uploads as much every week: its baseline says so
    assert "10.30.0.23" not in by_src
    # staged archive upload (ws-stage): in by its baseline too
    assert "10.30.0.40" in by_src
    assert set(by_src) == {"10.30.0.21", "10.30.0.22", "10.30.0.40"}


def test_asymmetric_upload(found):
    assert _pairs(found, "th-analytic-0047") == {("10.30.0.25", "203.0.113.99")}
    (f,) = found["th-analytic-0047"]
    assert "out/in" in f["summary"] and "mostly outside business hours" in f["summary"]


def test_first_contact_from_server(found):
    assert _pairs(found, "th-analytic-0048") == {("10.20.0.30", "dropbox")}
    (f,) = found["th-analytic-0048"]
    assert f["level"] == "high" and "hours after the case first saw it" in f["summary"]


def test_staging_then_upload(found):
    (f,) = found["th-analytic-0049"]
    assert f["host"] == "ws-stage" and f["dst"] == "dropbox" and f["level"] == "critical"
    assert "c:\\windows\\debug\\d.rar" in f["summary"] and "39 min later" in f["summary"]
    tables = {e["table"] for e in f["evidence"]}
    assert tables == {"windows", "net_conn"}


def test_storage_api_user_agents(found):
    got = {f["src"]: f["level"] for f in found["th-analytic-0050"]}
    assert got == {"10.30.0.25": "critical", "10.30.0.23": "high"}  # browser twin absent


def test_beacon(found):
    assert _pairs(found, "th-analytic-0051") == {("10.30.0.27", "cdn.seaport-news.example")}
    (f,) = found["th-analytic-0051"]
    fields = f["fields"]
    assert 55 <= float(fields["median_gap_s"]) <= 65
    assert float(fields["score"]) >= 0.8
    for part in ("interval skew", "interval dispersion", "coverage", "size skew",
                 "size dispersion"):
        assert part in f["summary"]


def test_long_connection(found):
    assert _pairs(found, "th-analytic-0052") == {("10.30.0.21", "203.0.113.60")}
    assert "port 4444" in found["th-analytic-0052"][0]["summary"]


def test_dns_tunnel(found):
    assert _pairs(found, "th-analytic-0053") == {("10.30.0.29", "exfil-cdn.example")}
    f = found["th-analytic-0053"][0]
    assert float(f["fields"]["entropy"]) > 4 and float(f["fields"]["txt_share"]) == 1.0


def test_smb_to_public(found):
    assert _pairs(found, "th-analytic-0054") == {("10.30.0.26", "198.51.100.77")}


def test_risky_network(found):
    assert _pairs(found, "th-analytic-0055") == {("10.30.0.22", "185.220.101.5")}
    assert found["th-analytic-0055"][0]["level"] == "high"


def test_zone_violations(found):
    assert _pairs(found, "th-analytic-0056") == {("10.10.0.5", "10.20.0.10"),
                                                ("10.30.0.25", "10.30.0.29")}
    assert {f["level"] for f in found["th-analytic-0056"]} == {"critical"}
    (logon,) = found["th-analytic-0057"]
    assert logon["src"] == "10.10.0.5" and logon["host"] == "dc01"
    assert "RDP logon" in logon["summary"] and logon["level"] == "critical"


def test_http_downloads_and_webdav(found):
    assert _pairs(found, "th-analytic-0058") == {("10.30.0.21", "203.0.113.70")}
    assert _pairs(found, "th-analytic-0059") == {("10.30.0.23", "203.0.113.80")}
    assert _pairs(found, "th-analytic-0060") == {("10.30.0.24", "203.0.113.90")}


def test_calendar_in_the_profiles_time_zone(tmp_path):
    org = tmp_path / "org.yaml"
    org.write_text("timezone: Australia/Sydney\nbusiness_hours: '08:30-17:00'\n"
                   "workdays: [mon, tue, wed, thu, fri]\nholidays: [2026-01-26]\n")
    prof = OrgProfile.load(org)
    assert prof.calendar.timezone == "Australia/Sydney"
    assert (prof.calendar.start_minute, prof.calendar.end_minute) == (510, 1020)
    import duckdb

    from tidehunt.detect.analytics.detector import calendar_macros

    con = duckdb.connect()
    for m in calendar_macros(prof):
        con.execute(m)
    # 23:00 UTC Monday is 10:00 Tuesday in Sydney (AEDT, UTC+11 in January)
    assert con.execute("SELECT in_business(TIMESTAMPTZ '2026-01-26 23:00:00+00'), "
                       "how_slot(TIMESTAMPTZ '2026-01-26 23:00:00+00')").fetchone() == (True, 34)
    # Australia Day (a holiday) at 10:00 local is not business time
    assert con.execute("SELECT in_business(TIMESTAMPTZ '2026-01-25 23:00:00+00')"
                       ).fetchone() == (False,)


@pytest.mark.parametrize(("text", "message"), [
    ("timezone: Mars/Olympus\n", "IANA"),
    ("business_hours: '18:00-08:00'\n", "before they end"),
    ("workdays: [funday]\n", "workdays"),
    ("zones: {dmz: [10.0.0.0/33]}\n", "not an address or network"),
    ("zones: {dmz: [10.0.0.0/24]}\nallow: [{from: dmz, to: nowhere}]\n", "not a zone"),
    ("zones: {dmz: [10.0.0.0/24]}\nallow: [{from: dmz, to: any, ports: [99999]}]\n", "port"),
    ("zones: {internet: [10.0.0.0/24]}\n", "reserved"),
    ("allow: [{from: any, to: any}]\n", "need zones"),
])
def test_profile_errors_name_the_problem(tmp_path, text, message):
    org = tmp_path / "org.yaml"
    org.write_text(text)
    with pytest.raises(ConfigError, match=message):
        OrgProfile.load(org)


def test_addresses_classified_by_longest_prefix(tmp_path: Path):
    org = tmp_path / "org.yaml"
    org.write_text("zones:\n  servers: {networks: [10.20.0.0/24], role: server}\n"
                   "  dc: [10.20.0.10/32]\n  v6: [2001:db8:1::/48]\n")
    prof = OrgProfile.load(org)
    t = addr_table(["10.20.0.10", "10.20.0.11", "8.8.8.8", "192.168.1.1", "2001:db8:1::5",
                    "not-an-ip", "185.220.101.5"], prof,
                   [("tor", ipaddress.ip_network("185.220.101.0/24"), "t.yaml")]).to_pylist()
    by = {r["ip"]: r for r in t}
    assert "not-an-ip" not in by
    assert by["10.20.0.10"]["zone"] == "dc" and by["10.20.0.11"]["zone"] == "servers"
    assert by["10.20.0.11"]["role"] == "server" and not by["10.20.0.11"]["public"]
    assert by["8.8.8.8"]["public"] and by["8.8.8.8"]["zone"] is None
    assert not by["192.168.1.1"]["public"]
    assert by["2001:db8:1::5"]["zone"] == "v6"
    assert by["185.220.101.5"]["risky"] == "tor"
    pm = PrefixMap([("0.0.0.0/0", "any"), ("10.0.0.0/8", "ten")])
    assert pm.get(ipaddress.ip_address("10.1.2.3")) == "ten"
    assert pm.get(ipaddress.ip_address("11.1.2.3")) == "any"
    assert pm.get(ipaddress.ip_address("::1")) is None


def test_proxy_requests_feed_the_network_analytics(tmp_path):
    """A mapped proxy export (user, URL, bytes, user agent) reaches the cloud-upload and
    storage-API analytics and the intel join, with the proxy user on the finding."""
    import json
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 10, 3, 2, 0, tzinfo=UTC)
    rows = [{"time": (t0 + timedelta(minutes=i)).isoformat(), "client": "10.30.0.77",
             "user": "CORP\\j.smith", "url": "https://content.dropboxapi.com/2/files/upload",
             "method": "POST", "sent": 60 << 20, "received": 900, "status": 200,
             "agent": "rclone/v1.68.1"} for i in range(5)]
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "proxy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "table: proxy\nformat: jsonl\ntime_format: iso\nmatch: ['\"agent\":']\n"
        "columns: {ts: time, src_ip: client, user: user, url: url, method: method, "
        "bytes_out: sent, bytes_in: received, status_code: status, user_agent: agent}\n")
    intel = tmp_path / "iocs.csv"
    intel.write_text("type,value,source,first_seen\ndomain,content.dropboxapi.com,test,"
                     "2026-09-30\n")
    case = tmp_path / "case"
    from tidehunt.sources._netmap import load_net_mappings

    report = hunt([str(ev)], case, RunContext(), HuntOptions(
        workers=1, bundled_intel=False, feeds=False, intel=[str(intel)],
        source_options={"net_mapping": list(load_net_mappings(str(mapping)))}))
    assert report.stats["analytics"]["failed"] == []
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    by = {f["rule_id"]: f for f in found}
    up = by["th-analytic-0046"]
    assert up["user"] == "CORP\\j.smith" and "300.0 MiB" in up["summary"]
    assert {e["table"] for e in up["evidence"]} == {"proxy"}
    assert by["th-analytic-0050"]["level"] == "high"
    assert "rclone" in by["th-analytic-0050"]["summary"]
    ioc = by["th-analytic-0034"]
    assert "content.dropboxapi.com" in ioc["summary"]
    assert {e["table"] for e in ioc["evidence"]} == {"proxy", "indicator"}
