"""Threat intel: a generated case where an APT40-pack domain, a MISP address and a STIX
hash each appear once gives exactly those three matches with their ages; the same values on
a warninglist, or expired outside retro-hunt mode, give none."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tidehunt.context import RunContext
from tidehunt.engine import HuntOptions, hunt
from tidehunt.intel.ageing import AgeingPolicy
from tidehunt.intel.model import normalise, refang
from tidehunt.intel.readers import read

PACK_DOMAIN = "www.vitaminmain.info"  # PP-17, 2017: long expired
MISP_IP = "198.51.100.99"
STIX_SHA = "ab" * 32
NOW = datetime.now(UTC)


def _ev(rid: int, eid: int, data: dict) -> bytes:
    ts = (NOW - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}}, "EventID": eid,
        "TimeCreated": {"#attributes": {"SystemTime": ts}}, "EventRecordID": rid,
        "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "WS9.corp.example"},
        "EventData": data}}) + b"\n"


def _case(tmp_path, *, retro=True, warn=None, extra_ioc=()):
    ev = tmp_path / "ev"
    ev.mkdir(exist_ok=True)
    (ev / "sysmon.json").write_bytes(b"".join([
        _ev(1, 22, {"QueryName": PACK_DOMAIN, "Image": r"C:\x\a.exe"}),
        _ev(2, 3, {"DestinationIp": MISP_IP, "SourceIp": "10.1.1.9", "Image": r"C:\x\a.exe"}),
        _ev(3, 1, {"Image": r"C:\x\b.exe", "CommandLine": "b.exe",
                   "Hashes": f"MD5={'0' * 32},SHA256={STIX_SHA.upper()}"}),
        _ev(4, 22, {"QueryName": "www.google.com", "Image": r"C:\x\a.exe"}),
    ]))
    intel = tmp_path / "intel"
    intel.mkdir(exist_ok=True)
    seen = (NOW - timedelta(days=10)).isoformat()
    (intel / "event.json").write_text(json.dumps({"Event": {
        "info": "test event", "date": seen[:10], "Attribute": [
            {"type": "ip-dst", "value": MISP_IP.replace(".", "[.]"), "to_ids": True,
             "first_seen": seen, "category": "Network activity"},
            {"type": "domain", "value": "google.com", "to_ids": True}]}}))
    import stix2

    b = stix2.Bundle(objects=[stix2.Indicator(
        name="tool", pattern=f"[file:hashes.'SHA-256' = '{STIX_SHA}']", pattern_type="stix",
        valid_from=NOW - timedelta(days=30), confidence=90), *extra_ioc])
    (intel / "bundle.json").write_text(b.serialize())
    opts = HuntOptions(workers=1, intel=[str(intel)], retro=retro,
                       warninglists=[str(warn)] if warn else [])
    case = tmp_path / "case"
    report = hunt([str(ev)], case, RunContext(), opts)
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    return report, [f for f in found if f["rule_id"] == "th-analytic-0034"]


def test_three_sources_three_matches_with_their_ages(tmp_path):
    report, hits = _case(tmp_path)
    by = {f["dst"]: f for f in hits}
    assert len(hits) == 3 and set(by) == {PACK_DOMAIN, MISP_IP, STIX_SHA}
    pack = by[PACK_DOMAIN]
    assert "expired" in pack["summary"] and "retro-hunt" in pack["summary"]
    assert pack["level"] == "low" and "apt40-pack/PP-17" in pack["summary"]
    assert "10 days old" in by[MISP_IP]["summary"] and by[MISP_IP]["level"] == "high"
    assert "30 days old" in by[STIX_SHA]["summary"]
    assert all(f["host"] == "WS9.corp.example" for f in hits)
    # google.com is in the feed, and queried, but warninglisted
    assert report.stats["intel"]["warninglisted"] >= 1
    assert not any("google" in f["dst"] for f in hits)


def test_a_domain_indicator_matches_its_subdomains_and_only_them(tmp_path):
    ev = tmp_path / "ev"
    ev.mkdir()
    names = ["badcdn.example", "a.b.badcdn.example", "notbadcdn.example",
             "badcdn.example.org", "x.badcdn.example.", "example"]
    (ev / "dns.json").write_bytes(b"".join(
        _ev(i, 22, {"QueryName": n, "Image": r"C:\x\a.exe"}) for i, n in enumerate(names, 1)))
    intel = tmp_path / "intel"
    intel.mkdir()
    (intel / "event.json").write_text(json.dumps({"Event": {
        "info": "test event", "date": NOW.date().isoformat(), "Attribute": [
            {"type": "domain", "value": "badcdn.example", "to_ids": True}]}}))
    case = tmp_path / "case"
    hunt([str(ev)], case, RunContext(), HuntOptions(workers=1, intel=[str(intel)]))
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    hits = [f for f in found if f["rule_id"] == "th-analytic-0034"]
    assert [f["dst"] for f in hits] == ["badcdn.example"]
    assert "seen 2 time(s)" in hits[0]["summary"]  # itself and a.b.badcdn.example
    records = sorted(e["locator"] for e in hits[0]["evidence"] if e["table"] == "windows")
    assert len(records) == 2 and all(r for r in records)


def test_warninglist_and_no_retro_give_none(tmp_path):
    wl = tmp_path / "wl.yml"
    wl.write_text(f"networks: [{MISP_IP}/32]\nhashes: [{STIX_SHA}]\ndomains: [vitaminmain.info]\n")
    (tmp_path / "a").mkdir()
    _, hits = _case(tmp_path / "a", warn=wl)
    assert hits == []
    (tmp_path / "b").mkdir()
    report, hits = _case(tmp_path / "b", retro=False)
    assert {f["dst"] for f in hits} == {MISP_IP, STIX_SHA}  # the 2017 domain has expired
    assert report.stats["intel"]["expired_dropped"] >= 1


def test_ageing_policy():
    pol = AgeingPolicy()
    assert pol.lifetime("ip") == 60 and pol.lifetime("url") == 180
    assert pol.lifetime("domain") == 365
    assert pol.score("ip", 0, 80) == 80
    assert 0 < pol.score("ip", 50, 80) < pol.score("ip", 10, 80) <= 80
    assert pol.score("ip", 61, 80) == 0
    assert AgeingPolicy.parse(["ip=30", "other=90"]).lifetime("sha256") == 90


@pytest.mark.parametrize(("kind", "raw", "want"), [
    ("ip-dst", "203.0.113[.]5", ("ip", "203.0.113.5")),
    ("domain", "EVIL[.]Example[.]com.", ("domain", "evil.example.com")),
    ("url", "hxxps://evil[.]example/x", ("url", "https://evil.example/x")),
    ("filename|sha256", "a.exe|" + "AB" * 32, ("sha256", "ab" * 32)),
    ("text", "d41d8cd98f00b204e9800998ecf8427e", ("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("email-src", "Bad(at)mail[.]example", ("email", "bad@mail.example")),
    ("ip-dst", "not an ip", None),
])
def test_normalise(kind, raw, want):
    assert normalise(kind, raw) == want
    assert refang("hxxp://a[.]b") == "http://a.b"


def test_plain_and_signature_base_lists(tmp_path):
    p = tmp_path / "c2.txt"
    p.write_text("# Reference: report\nevil.example\n203.0.113.9;C2\n\\\\evil\\.dll;80\n"
                 "not a value at all\n", encoding="utf-8")
    r = read(p)
    assert [(i.type, i.value) for i in r.indicators] == [("domain", "evil.example"),
                                                         ("ip", "203.0.113.9")]
    assert r.skipped == 2 and r.patterns == 1
    assert r.indicators[0].context == "report" and r.indicators[1].context == "C2"


def test_parse_time_reads_every_layout_the_sources_meet():
    from tidehunt.model.times import parse_time

    want = datetime(2026, 10, 8, 3, 20, tzinfo=UTC)
    for v in ("2026-10-08T03:20:00Z", "2026-10-08T03:20:00", "2026-10-08T13:20:00+10:00",
              "1791429600", 1791429600, "1791429600000", "10/08/2026 3:20:00 AM",
              datetime(2026, 10, 8, 3, 20)):  # noqa: DTZ001 - a naive one is read as UTC
        assert parse_time(v) == want, v
    assert all(parse_time(v) is None for v in (None, "", "0", "yesterday", "99999999999999"))


# -- network indicators (CIDR) --------------------------------------------------------

def _net_hunt(tmp_path, ips, files, *, warn=(), retro=True):
    """Sysmon connections to ``ips`` from WS9; ``files`` (name: text) as --intel."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "sysmon.json").write_bytes(b"".join(
        _ev(i + 1, 3, {"DestinationIp": ip, "SourceIp": "10.1.1.9", "Image": r"C:\x\a.exe"})
        for i, ip in enumerate(ips)))
    intel = tmp_path / "intel"
    intel.mkdir()
    for name, text in files.items():
        (intel / name).write_text(text)
    case = tmp_path / "case"
    report = hunt([str(ev)], case, RunContext(), HuntOptions(
        workers=1, intel=[str(intel)], bundled_intel=False, feeds=False, retro=retro,
        warninglists=[str(w) for w in warn]))
    found = [orjson.loads(x) for x in (case / "findings.jsonl").read_bytes().splitlines()]
    assert report.stats["analytics"]["failed"] == []
    return report, [f for f in found if f["rule_id"] == "th-analytic-0034"]


def _stix(*patterns, days=5):
    import stix2

    return stix2.Bundle(objects=[stix2.Indicator(
        name=f"net {i}", pattern=p, pattern_type="stix",
        valid_from=NOW - timedelta(days=days), confidence=80)
        for i, p in enumerate(patterns)]).serialize()


def test_address_inside_a_stix_network_matches_once(tmp_path):
    _, hits = _net_hunt(tmp_path, ["203.0.113.77", "203.0.114.5"], {
        "net.json": _stix("[ipv4-addr:value = '203.0.113.0/24']")})
    assert len(hits) == 1
    (f,) = hits
    assert f["summary"].startswith("cidr 203.0.113.0/24 (1 address(es) inside: 203.0.113.77)")
    assert f["dst"] == "203.0.113.77" and f["host"] == "WS9.corp.example"
    assert f["fields"]["value"] == "203.0.113.0/24" and f["fields"]["addresses"] == "203.0.113.77"
    assert f["level"] == "high" and "5 days old" in f["summary"]


def test_networks_from_every_format_ipv4_and_ipv6(tmp_path):
    misp = json.dumps({"Event": {"info": "ranges", "date": NOW.date().isoformat(),
                                 "Attribute": [
        {"type": "ip-dst", "value": "198.51.100.0/24", "to_ids": True},
        {"type": "ip-src", "value": "2001:db8:abcd::/48", "to_ids": True}]}})
    ips = ["198.51.100.200", "198.51.101.1",             # MISP /24: in, out
           "2001:DB8:ABCD:0:0:0:0:10", "2001:db8:abce::1",  # MISP v6 /48 (upper case, long)
           "192.0.2.5", "192.0.2.17",                     # CSV /28: in, out
           "203.0.113.130", "203.0.113.5",                # list /25: in, out
           "100.200.1.1",                                 # STIX ISSUBSET /16: in (twice)
           "::ffff:100.200.9.9"]                          # the same, IPv4-mapped
    _, hits = _net_hunt(tmp_path, ips, {
        "event.json": misp, "rows.csv": "type,value,source\ncidr,192.0.2.0/28,csvfeed\n",
        "c2.txt": "# Reference: ranges\n203.0.113.128/25\n",
        "net.json": _stix("[ipv4-addr:value ISSUBSET '100.200.0.0/16']")})
    got = {f["fields"]["value"]: f["fields"]["addresses"] for f in hits}
    assert got == {"198.51.100.0/24": "198.51.100.200",
                   "2001:db8:abcd::/48": "2001:DB8:ABCD:0:0:0:0:10",
                   "192.0.2.0/28": "192.0.2.5", "203.0.113.128/25": "203.0.113.130",
                   "100.200.0.0/16": "100.200.1.1, ::ffff:100.200.9.9"}
    assert all(f["summary"].startswith("cidr ") for f in hits)


def test_warninglist_and_breadth_apply_to_networks(tmp_path):
    wl = tmp_path / "scanners.json"   # a MISP cidr warninglist
    wl.write_text(json.dumps({"name": "scanners", "type": "cidr", "version": 1,
                              "description": "x", "list": ["198.18.0.0/15"],
                              "matching_attributes": ["ip-src", "ip-dst"]}))
    csv_rows = ("type,value\ncidr,10.20.0.0/16\ncidr,198.18.4.0/24\ncidr,8.8.8.0/24\n"
                "cidr,0.0.0.0/0\ncidr,2000::/3\n")
    report, hits = _net_hunt(tmp_path, ["10.20.1.1", "198.18.4.4", "8.8.8.8", "8.8.8.9"],
                             {"rows.csv": csv_rows}, warn=[wl])
    # 10.20.0.0/16 is inside RFC1918 (bundled list), 198.18.4.0/24 inside the MISP list:
    # dropped; 8.8.8.0/24 stays, but 8.8.8.8 (a listed resolver) does not match it
    assert [(f["fields"]["value"], f["dst"]) for f in hits] == [("8.8.8.0/24", "8.8.8.9")]
    st = report.stats["analytics"]["intel"]
    assert st["warninglisted"] == 2 and st["too_broad"] == 2


def test_network_indicators_age_like_addresses(tmp_path):
    pol = AgeingPolicy()
    assert pol.lifetime("cidr") == pol.lifetime("ip") == 60
    assert AgeingPolicy.parse(["ip=30"]).lifetime("cidr") == 30
    assert AgeingPolicy.parse(["ip=30", "cidr=90"]).lifetime("cidr") == 90
    _, hits = _net_hunt(tmp_path, ["203.0.113.77"], {
        "net.json": _stix("[ipv4-addr:value = '203.0.113.0/24']", days=100)})
    (f,) = hits
    assert f["level"] == "low" and "expired after 60 days: retro-hunt match" in f["summary"]


@pytest.mark.parametrize(("kind", "raw", "want"), [
    ("ip-dst", "203.0.113.0/24", ("cidr", "203.0.113.0/24")),
    ("ip-src", "203.0.113.9/24", ("cidr", "203.0.113.0/24")),    # host bits cleared
    ("ip-dst", "203.0.113.9/32", ("ip", "203.0.113.9")),         # one address
    ("ipv6-addr", "2001:DB8::/32", ("cidr", "2001:db8::/32")),
    ("text", "198.51.100.0/25", ("cidr", "198.51.100.0/25")),
    ("ip-dst", "203.0.113.0/33", None),
])
def test_normalise_networks(kind, raw, want):
    assert normalise(kind, raw) == want


# -- MISP warninglists ----------------------------------------------------------------

def _misp_list(folder, name, kind, entries, attrs=None):
    d = folder / name
    d.mkdir(parents=True)
    doc = {"name": name, "version": 1, "description": f"test {kind}", "type": kind,
           "list": entries}
    if attrs is not None:
        doc["matching_attributes"] = attrs
    (d / "list.json").write_text(json.dumps(doc))
    return d / "list.json"


def test_misp_warninglist_types(tmp_path):
    from tidehunt.intel.warninglist import Warninglist

    lists = tmp_path / "misp-warninglists" / "lists"
    _misp_list(lists, "cdn", "hostname", [".cdn-example.net", "*.static.example"],
               ["hostname", "domain", "url", "email-src"])
    _misp_list(lists, "exact", "string", ["bad.example", "D41D8CD98F00B204E9800998ECF8427E",
                                          "203.0.113.9", "198.51.100.0/24"],
               ["domain", "md5", "ip-dst"])
    _misp_list(lists, "sinkholes", "substring", ["sinkhole"], ["domain", "hostname"])
    _misp_list(lists, "scanners", "cidr", ["198.18.0.0/15", "2001:db8:ff::/48", "nonsense"],
               ["ip-src", "ip-dst"])
    _misp_list(lists, "pattern", "regex", [r"/^test-[0-9]+\.example$/i", "(unclosed"],
               ["domain"])
    _misp_list(lists, "for-hashes-only", "cidr", ["192.0.2.0/24"], ["sha256"])
    (lists.parent / "schema.json").write_text('{"$schema": "x"}')   # not a list: ignored
    (lists / "cdn" / "lists.json").write_text('{"list": ["evil.example"], "type": "string"}')
    wl = Warninglist.load([str(lists.parent)])
    assert len(wl.lists) == 1 + 6 and wl.skipped == 2  # the bad network and regex
    listed = wl.listed
    # hostname: the domain and its subdomains; a URL that is only its host; not an
    # address or a URL with a path on it
    assert listed("domain", "cdn-example.net") and listed("domain", "a.b.cdn-example.net")
    assert listed("domain", "x.static.example") and not listed("domain", "notcdn-example.net")
    assert listed("url", "https://a.cdn-example.net/")
    assert not listed("url", "https://a.cdn-example.net/payload.zip")
    assert not listed("email", "actor@cdn-example.net")
    # string: exact, per matching attribute (hashes case-insensitively)
    assert listed("domain", "bad.example") and not listed("domain", "www.bad.example")
    assert listed("md5", "d41d8cd98f00b204e9800998ecf8427e")
    assert listed("ip", "203.0.113.9") and not listed("ip", "203.0.113.10")
    assert listed("cidr", "198.51.100.0/24") and not listed("cidr", "198.51.100.0/25")
    assert not listed("domain", "evil.example")    # lists.json beside list.json: not read
    # substring (ignoring case); only for the types its attributes name
    assert listed("domain", "ns1.SINKHOLE-ops.example")
    assert not listed("url", "http://sinkhole.example/x")
    # cidr: addresses and networks inside, IPv4 and IPv6; not a wider network
    assert listed("ip", "198.19.255.1") and listed("cidr", "198.18.4.0/24")
    assert listed("ip", "2001:db8:ff::1") and not listed("cidr", "198.16.0.0/12")
    assert not listed("ip", "192.0.2.1")          # that list names only sha256
    # regex, with /.../i delimiters
    assert listed("domain", "test-42.example") and not listed("domain", "test-x.example")


def test_misp_warninglist_errors(tmp_path):
    from tidehunt.errors import ConfigError
    from tidehunt.intel.warninglist import Warninglist

    bad = tmp_path / "bad.json"
    bad.write_text('{"list": ["a"], "type": "fuzzy"}')
    with pytest.raises(ConfigError, match="type 'fuzzy'"):
        Warninglist.load([str(bad)])
    bad.write_text('{"name": "x", "values": []}')
    with pytest.raises(ConfigError, match="neither a MISP warninglist"):
        Warninglist.load([str(bad)])
    bad.write_text('{"list": [')
    with pytest.raises(ConfigError, match="not readable"):
        Warninglist.load([str(bad)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no warninglist"):
        Warninglist.load([str(tmp_path / "empty")])


def test_misp_warninglist_folder_drops_matches(tmp_path):
    lists = tmp_path / "wl"
    _misp_list(lists, "resolvers", "string", [MISP_IP], ["ip-src", "ip-dst"])
    _misp_list(lists, "hashes", "string", [STIX_SHA.upper()], ["sha256"])
    _misp_list(lists, "pack", "hostname", ["vitaminmain.info"], ["domain", "hostname"])
    (tmp_path / "run").mkdir()
    report, hits = _case(tmp_path / "run", warn=lists)
    assert hits == []
    assert report.stats["analytics"]["intel"]["warninglists"] == 4


def test_sql_address_numbering_agrees_with_ipaddress():
    import ipaddress
    import random

    import duckdb

    from tidehunt.detect.analytics.intel_match import IP_NUM_MACROS
    from tidehunt.intel.model import net_range

    rnd = random.Random(5)
    values = ["::", "::1", "1::", "::ffff:203.0.113.7", "[2001:db8::5]", "fe80::1%eth0",
              "2001:DB8:0:0:0:0:0:1", "1:2:3:4:5:6:7::", "255.255.255.255", "0.0.0.0"]
    for _ in range(500):
        values.append(str(ipaddress.IPv4Address(rnd.getrandbits(32))))
        a6 = ipaddress.IPv6Address(rnd.getrandbits(128) >> rnd.choice((0, 16, 64, 96)))
        values += [str(a6), a6.exploded.upper()]
    bad = ["256.1.1.1", "1.2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::1", "evil.example",
           "1:2:3:4:5:6:7:", "a.b.c.d"]
    con = duckdb.connect()
    for m in IP_NUM_MACROS:
        con.execute(m)
    got = dict(con.execute("SELECT v, CAST(th_ip_num(v) AS VARCHAR) FROM unnest(?) t(v)",
                           [values + bad]).fetchall())

    def want(v):
        a = ipaddress.ip_address(v.strip("[]").split("%")[0])
        if a.version == 6 and a.ipv4_mapped:
            a = a.ipv4_mapped
        return str(net_range(str(a))[0])

    assert {v: got[v] for v in values} == {v: want(v) for v in values}
    assert all(got[v] is None for v in bad)
