"""Proxy, firewall and flow sources on generated exports: Squid native (CONNECT, bad and
cut gzip), ProxySG ELFF with a #Fields change, Zscaler NSS, nfdump, Palo Alto, a generic
firewall CSV, a mapped JSON-lines export with a timezone, mapping checks, hostile heads,
and the CLI's --net-mapping / --auth-mapping landing rows in the case."""

from __future__ import annotations

import functools
import gzip
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidehunt.case.store import CaseStore
from tidehunt.cli.main import main
from tidehunt.context import RunContext
from tidehunt.errors import ConfigError
from tidehunt.ingest import ingest
from tidehunt.model.tables import SCHEMA_VERSION, TABLES
from tidehunt.sources import _lines, net_export
from tidehunt.sources._netmap import load_net_mappings, parse_mappings
from tidehunt.sources.auth_csv import AuthCsvSource, load_auth_mapping
from tidehunt.sources.base import Artefact
from tidehunt.sources.iis_w3c import IisW3cSource
from tidehunt.sources.net_export import NetExportSource
from tidehunt.sources.sniff import sniff
from tidehunt.sources.squid import SquidSource


def _utc(*a):
    return datetime(*a, tzinfo=UTC)


def _read(src, path, ctx, options=None):
    src.options = dict(options or {})
    batches = list(src.read(Artefact("a", path, str(path)), ctx))
    tables = {b.table for b in batches}
    assert len(tables) <= 1
    return [r for b in batches for r in b.data.to_pylist()]


def _warnings(ctx):
    return {w.message: (w.count, w.locators) for w in ctx.warnings}


def _accounted(stats):
    return stats.records + stats.directives + stats.blank + stats.bad == stats.lines


# ---- Squid ----------------------------------------------------------------------------
SQUID = (
    "1700000000.123    180 10.1.2.3 TCP_MISS/200 4512 GET http://www.Example.com/index.html "
    "alice HIER_DIRECT/93.184.216.34 text/html\n"
    "1700000001.456  60123 10.1.2.4 TCP_TUNNEL/200 887766 CONNECT login.example.net:443 bob "
    "HIER_DIRECT/198.51.100.20 -\n"
    "\n"
    "1700000002.000      3 10.1.2.5 TCP_DENIED/403 3900 GET http://bad.example.org/x.exe - "
    "HIER_NONE/- text/html\n"
    "this is not a squid line\n"
    "1700000003.000     12 10.1.2.3 TCP_MISS/200 120 POST http://[2001:db8::1]:8080/api - "
    "FIRSTUP_PARENT/parent.proxy.local application/json\n"
    "1700000004.000     12 999.1.2.3 TCP_MISS/200 120 GET https://x.example/ - "
    "HIER_DIRECT/192.0.2.7 text/html\n"
)


def test_squid_native_connect_bad_lines_and_accounting(tmp_path, ctx):
    p = tmp_path / "access.log"
    p.write_text(SQUID)
    assert sniff(Artefact("a", p, str(p))) is SquidSource
    src = SquidSource()
    rows = _read(src, p, ctx)
    assert [r["line"] for r in rows] == [1, 2, 4, 6]
    get, tunnel, denied, v6 = rows
    assert get["ts"] == _utc(2023, 11, 14, 22, 13, 20, 123000)
    assert (get["src_ip"], get["user"], get["method"], get["status_code"]) == (
        "10.1.2.3", "alice", "GET", 200)
    assert (get["url"], get["url_host"], get["dst_ip"], get["dst_port"]) == (
        "http://www.Example.com/index.html", "www.example.com", "93.184.216.34", 80)
    # the native size is what the client received; the request size is not logged
    assert (get["bytes_in"], get["bytes_out"]) == (4512, None)
    assert (get["action"], get["content_type"], get["duration"]) == ("TCP_MISS", "text/html",
                                                                       0.18)
    assert (tunnel["method"], tunnel["url"], tunnel["url_host"], tunnel["dst_port"]) == (
        "CONNECT", "login.example.net:443", "login.example.net", 443)
    assert (tunnel["action"], tunnel["bytes_in"], tunnel["duration"]) == (
        "TCP_TUNNEL", 887766, 60.123)
    assert tunnel["content_type"] is None and tunnel["_locator"] == "line 2"
    assert (denied["user"], denied["dst_ip"], denied["status_code"]) == (None, None, 403)
    # a parent proxy's host name is no server address
    assert (v6["url_host"], v6["dst_port"], v6["dst_ip"]) == ("2001:db8::1", 8080, None)
    assert _warnings(ctx) == {
        "not a Squid native access.log line": (1, ("line 5",)),
        "unreadable or missing client address; row not stored": (1, ("line 7",))}
    assert (src.stats.lines, src.stats.records, src.stats.blank, src.stats.bad) == (7, 4, 1, 2)
    assert _accounted(src.stats)


def test_squid_gzip_cut_short_is_accounted(tmp_path):
    body = "".join(
        f"{1700000000 + i}.{i % 1000:03d} {i % 500:6d} 10.0.{i % 250}.{i % 200 + 1} "
        f"TCP_MISS/200 {1000 + i} GET http://h{i % 97}.example/p{i} - "
        f"HIER_DIRECT/203.0.113.{i % 250} text/html\n" for i in range(30_000)).encode()
    gz = gzip.compress(body)
    p = tmp_path / "access.log.1"
    p.write_bytes(gz[: len(gz) * 2 // 3])
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(p)], store, RunContext(), workers=1)
    (rec,) = store.artefacts.values()
    assert rec["reader"] == "squid" and rec["status"] == "ingested"
    lines = rec["lines"]
    assert 5_000 < lines["records"] < 30_000
    assert lines["records"] + lines["blank"] + lines["bad"] + lines["directives"] == \
        lines["lines"]
    assert lines["bad"] <= 1  # at most the line the cut went through
    assert any("truncated" in w["message"] for w in rec["warnings"])
    n, = store.sql("SELECT count(*) FROM proxy WHERE bytes_in = 1000 + line - 1 "
                   "AND bytes_out IS NULL").to_pylist()[0].values()
    assert n == lines["records"] == rec["records"]["proxy"]


def test_squid_custom_logformat_fields_by_mapping(tmp_path, ctx):
    p = tmp_path / "access.log"
    p.write_text(
        "1700000000.000 10 10.1.2.3 TCP_MISS/200 500 POST http://up.example/x - "
        'HIER_DIRECT/192.0.2.1 text/plain 7340032 "Mozilla/5.0 (X11; Linux)"\n'
        "1700000001.000 10 10.1.2.3 TCP_MISS/200 500 GET http://up.example/y - "
        "HIER_DIRECT/192.0.2.1 text/plain\n")
    rows = _read(SquidSource(), p, ctx)
    assert [r["bytes_out"] for r in rows] == [None, None]
    (w,) = ctx.warnings
    assert "custom logformat" in w.message and w.locators == ("line 1",)
    ctx = RunContext()
    mapping = {"table": "proxy", "format": "squid",
               "extra_fields": ["bytes_out", "user_agent"]}
    rows = _read(SquidSource(), p, ctx, {"net_mapping": mapping})
    assert [(r["bytes_out"], r["bytes_in"], r["user_agent"]) for r in rows] == [
        (7340032, 500, "Mozilla/5.0 (X11; Linux)"), (None, 500, None)]
    assert ctx.warnings == []


# ---- ProxySG ELFF ---------------------------------------------------------------------
ELFF = (
    "#Software: SGOS 6.7.5.3\n#Version: 1.0\n#Start-Date: 2024-01-15 10:00:00\n"
    "#Date: 2024-01-15 10:00:00\n"
    "#Fields: date time time-taken c-ip cs-username cs-auth-group x-exception-id "
    "sc-filter-result cs-categories cs(Referer) sc-status s-action cs-method "
    "rs(Content-Type) cs-uri-scheme cs-host cs-uri-port cs-uri-path cs-uri-query "
    "cs-uri-extension cs(User-Agent) s-ip sc-bytes cs-bytes x-virus-id\n"
    '#Remark: 4111111111 "proxysg01" "10.0.0.2" "main"\n'
    '2024-01-15 10:00:01 250 10.1.2.3 alice - - OBSERVED "Technology/Internet" - 200 '
    'TCP_NC_MISS GET text/html http www.Example.com 80 /index.html ?q=1 html '
    '"Mozilla/5.0 (Windows NT 10.0; Win64; x64)" 10.0.0.2 5120 640 -\n'
    '2024-01-15 10:00:02 60000 10.1.2.4 bob - - OBSERVED "Business" - 200 TCP_TUNNELED '
    'CONNECT - tcp login.example.net 443 / - - "curl/8.0" 10.0.0.2 88000 4200 -\n'
    '2024-01-15 10:00:03 5 10.1.2.4 bob - policy_denied DENIED "Malicious Sources" - 403 '
    'TCP_DENIED GET text/html https bad.example.org 443 /x.exe - exe "curl/8.0" 10.0.0.2 '
    "900 300 -\n"
    "#Fields: date time c-ip cs-method cs-uri sc-status sc-bytes cs-bytes s-action r-ip\n"
    "2024-01-15 11:00:00 10.1.2.5 POST https://upload.example.org/put 201 300 2000000 "
    "TCP_MISS 203.0.113.9\n"
    "2024-01-15 11:00:01 10.1.2.5 GET\n"
)


def test_elff_proxysg_fields_change_and_byte_directions(tmp_path, ctx):
    p = tmp_path / "SG_main__0115.log"
    p.write_text(ELFF)
    art = Artefact("a", p, str(p))
    assert IisW3cSource.sniff(art, p.read_bytes())  # both claim it; the preset wins
    assert sniff(art) is NetExportSource
    src = NetExportSource()
    rows = _read(src, p, ctx)
    assert [r["line"] for r in rows] == [7, 8, 9, 11]
    get, tunnel, denied, upload = rows
    assert get["ts"] == _utc(2024, 1, 15, 10, 0, 1) and get["duration"] == 0.25
    assert (get["url"], get["url_host"], get["dst_port"]) == (
        "http://www.Example.com/index.html?q=1", "www.example.com", 80)
    # cs-bytes: client to proxy; sc-bytes: proxy to client
    assert (get["bytes_out"], get["bytes_in"]) == (640, 5120)
    assert (get["user"], get["category"], get["content_type"], get["host"]) == (
        "alice", "Technology/Internet", "text/html", "10.0.0.2")
    assert get["user_agent"] == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    assert (tunnel["url"], tunnel["method"], tunnel["action"], tunnel["bytes_out"],
            tunnel["bytes_in"]) == ("login.example.net:443", "CONNECT", "TCP_TUNNELED",
                                    4200, 88000)
    assert (denied["url"], denied["action"], denied["status_code"]) == (
        "https://bad.example.org/x.exe", "TCP_DENIED", 403)
    assert (upload["url"], upload["bytes_out"], upload["bytes_in"], upload["dst_ip"],
            upload["dst_port"], upload["user"]) == (
        "https://upload.example.org/put", 2000000, 300, "203.0.113.9", 443, None)
    assert _warnings(ctx) == {"field count differs from the #Fields header": (1, ("line 12",))}
    assert (src.stats.directives, src.stats.records, src.stats.bad) == (7, 4, 1)
    assert _accounted(src.stats)


def test_iis_log_stays_with_iis(tmp_path):
    p = tmp_path / "u_ex240115.log"
    p.write_text("#Software: Microsoft Internet Information Services 10.0\n#Fields: date time "
                 "s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
                 "cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken\n"
                 "2024-01-15 10:00:00 10.0.0.5 GET /a - 443 - 10.1.2.3 UA 200 0 0 5\n")
    assert sniff(Artefact("a", p, str(p))) is IisW3cSource


# ---- nfdump, Palo Alto, Zscaler, generic firewall -------------------------------------
_NF_HEAD = ("ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,"
            "dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,"
            "mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr\n")
_NF_TAIL = (",3,7,0,0,24,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,"
            "00:00:00:00:00:00,00:00:00:00:00:00" + ",0-0-0" * 10 +
            ",0.000,0.000,0.000,192.0.2.1,0/0,1,2024-01-15 10:05:01.000\n")
NFDUMP = (
    _NF_HEAD
    + "2024-01-15 10:00:00.125,2024-01-15 10:05:00.500,300.375,10.1.2.3,203.0.113.50,51234,"
      "443,TCP,.AP.SF,0,0,1200,98000000,0,0" + _NF_TAIL
    + "2024-01-15 10:00:01,2024-01-15 10:00:01,0.000,10.1.2.3,10.0.0.53,53000,53,17,......,"
      "0,0,1,70,1,130" + _NF_TAIL
    + "2024-01-15 10:00:02,2024-01-15 10:00:02,0.000,10.1.2.3,10.0.0.53,53000,53,17,......,"
      "0,0,1,70\n"
    + "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n2,98000200,1202,2613338,32,81533\n"
)


def test_nfdump_csv_directions_trailer_and_local_time(tmp_path, ctx):
    p = tmp_path / "flows.csv"
    p.write_text(NFDUMP)
    assert sniff(Artefact("a", p, str(p))) is NetExportSource
    src = NetExportSource()
    rows = _read(src, p, ctx)
    assert len(rows) == 2
    big, dns = rows
    assert big["ts"] == _utc(2024, 1, 15, 10, 0, 0, 125000)
    assert (big["src_ip"], big["src_port"], big["dst_ip"], big["dst_port"], big["proto"]) == (
        "10.1.2.3", 51234, "203.0.113.50", 443, "tcp")
    # ibyt is the flow's bytes from sa to da; obyt the reverse (0 when unidirectional)
    assert (big["bytes_out"], big["bytes_in"], big["orig_pkts"], big["resp_pkts"]) == (
        98000000, 0, 1200, 0)
    assert (big["duration"], big["device"], big["host"], big["action"]) == (
        300.375, "192.0.2.1", "192.0.2.1", None)
    assert (dns["proto"], dns["bytes_out"], dns["bytes_in"]) == ("udp", 70, 130)
    w = _warnings(ctx)
    assert w["field count differs from the header (48 fields)"] == (1, ("line 4",))
    (zone,) = [k for k in w if k.startswith("times without a zone read as UTC")]
    assert "timezone" in zone and w[zone] == (2, ("line 2", "line 3"))
    assert (src.stats.directives, src.stats.records, src.stats.bad) == (4, 2, 1)
    assert _accounted(src.stats)


def test_nfdump_preset_with_a_timezone(tmp_path, ctx):
    p = tmp_path / "flows.csv"
    p.write_text(NFDUMP)
    mapping = {"preset": "nfdump", "timezone": "Australia/Perth"}
    rows = _read(NetExportSource(), p, ctx, {"net_mapping": [mapping]})
    assert rows[0]["ts"] == _utc(2024, 1, 15, 2, 0, 0, 125000)  # Perth is UTC+8
    assert any("Australia/Perth" in w.message for w in ctx.warnings)


PALO = (
    "Domain,Receive Time,Serial #,Type,Threat/Content Type,Config Version,Generate Time,"
    "Source address,Destination address,NAT Source IP,NAT Destination IP,Rule,Source User,"
    "Destination User,Application,Virtual System,Source Zone,Destination Zone,Inbound "
    "Interface,Outbound Interface,Log Action,Time Logged,Session ID,Repeat Count,Source "
    "Port,Destination Port,NAT Source Port,NAT Destination Port,Flags,IP Protocol,Action,"
    "Bytes,Bytes Sent,Bytes Received,Packets,Start Time,Elapsed Time (sec),Category,"
    "Padding,Sequence Number,Action Flags,Source Country,Destination Country,Padding,"
    "Packets Sent,Packets Received,Session End Reason,Device Name\n"
    "1,2024/01/15 10:05:03,013201000001,TRAFFIC,end,2561,2024/01/15 10:05:02,10.1.2.3,"
    "203.0.113.50,198.51.100.1,,allow-web,corp\\alice,,ssl,vsys1,trust,untrust,"
    "ethernet1/2,ethernet1/1,fwd,2024/01/15 10:05:03,33445,1,51234,443,40001,443,0x400019,"
    "tcp,allow,98005000,98000000,5000,1300,2024/01/15 10:00:00,300,"
    "computer-and-internet-info,0,7000001,0x0,10.0.0.0-10.255.255.255,United States,0,"
    "1200,100,tcp-fin,PA-FW01\n"
    "1,2024/01/15 10:06:00,013201000001,TRAFFIC,drop,2561,2024/01/15 10:06:00,10.1.2.9,"
    "198.51.100.77,,,deny-all,,,not-applicable,vsys1,trust,untrust,ethernet1/2,,fwd,"
    "2024/01/15 10:06:00,0,1,50000,3389,0,0,0x0,tcp,deny,74,74,0,1,2024/01/15 10:05:59,0,"
    "any,0,7000002,0x0,10.0.0.0-10.255.255.255,United States,0,1,0,policy-deny,PA-FW01\n"
)


def test_paloalto_traffic_csv(tmp_path, ctx):
    p = tmp_path / "traffic.csv"
    p.write_text(PALO)
    assert sniff(Artefact("a", p, str(p))) is NetExportSource
    src = NetExportSource()
    allow, deny = _read(src, p, ctx)
    assert allow["ts"] == _utc(2024, 1, 15, 10, 0, 0)  # Start Time, not Receive Time
    # Bytes Sent is from the session's client; Bytes Received back to it
    assert (allow["bytes_out"], allow["bytes_in"], allow["orig_pkts"], allow["resp_pkts"]) == (
        98000000, 5000, 1200, 100)
    assert (allow["action"], allow["service"], allow["proto"], allow["duration"]) == (
        "allow", "ssl", "tcp", 300.0)
    assert (allow["device"], allow["host"], allow["src_port"], allow["dst_port"]) == (
        "PA-FW01", "PA-FW01", 51234, 443)
    assert (deny["action"], deny["dst_ip"], deny["dst_port"], deny["bytes_in"]) == (
        "deny", "198.51.100.77", 3389, 0)
    assert len(ctx.warnings) == 1 and ctx.warnings[0].message.startswith(
        "times without a zone read as UTC")
    assert (src.stats.lines, src.stats.records) == (3, 2) and _accounted(src.stats)


ZSCALER = (
    '"datetime","login","proto","eurl","action","appname","appclass","reqsize","respsize",'
    '"urlclass","urlsupercat","urlcat","malwarecat","threatname","riskscore","dlpeng",'
    '"dlpdict","location","dept","cip","sip","reqmethod","respcode","ua","ereferer",'
    '"ruletype","rulelabel","contenttype","unscannabletype","deviceowner","devicehostname"\n'
    '"Mon Jan 15 10:00:01 2024","alice@corp.example","HTTPS","www.dropbox.com/upload",'
    '"Allowed","Dropbox","File Share","52428800","1024","Business Use",'
    '"Information Technology","File Host","None","None","0","None","None","HQ","Finance",'
    '"10.1.2.3","162.125.1.18","POST","200","Mozilla/5.0 (Windows NT 10.0)","None","None",'
    '"None","application/json","None","alice","WS01"\n'
    '"Fri Jan  5 09:00:00 2024","bob@corp.example","HTTP","bad.example.org/x.exe",'
    '"Blocked","General Browsing","General Browsing","400","300","Security","Security",'
    '"Malicious Content","Malware","Trojan","90","None","None","HQ","IT","10.1.2.4","",'
    '"GET","403","curl/8.0","None","None","Block Malware","text/html","None","bob","WS02"\n'
)


def test_zscaler_nss_csv(tmp_path, ctx):
    p = tmp_path / "nss-web.csv"
    p.write_text(ZSCALER)
    assert sniff(Artefact("a", p, str(p))) is NetExportSource
    up, blocked = _read(NetExportSource(), p, ctx)
    assert up["ts"] == _utc(2024, 1, 15, 10, 0, 1)
    # reqsize is the upload; respsize what came back
    assert (up["bytes_out"], up["bytes_in"], up["method"], up["status_code"]) == (
        52428800, 1024, "POST", 200)
    assert (up["url"], up["url_host"], up["dst_port"], up["dst_ip"]) == (
        "www.dropbox.com/upload", "www.dropbox.com", 443, "162.125.1.18")
    assert (up["user"], up["action"], up["category"], up["content_type"]) == (
        "alice@corp.example", "Allowed", "File Host", "application/json")
    assert blocked["ts"] == _utc(2024, 1, 5, 9, 0, 0)  # a space-padded day
    assert (blocked["action"], blocked["dst_ip"], blocked["dst_port"]) == ("Blocked", None, 80)


FIREWALL = (
    "timestamp,src,dst,sport,dport,proto,action,bytes_sent,bytes_received,devname\n"
    "2024-01-15T10:00:00Z,10.1.2.3,203.0.113.50,51234,443,tcp,accept,1000,20000,fw-edge-1\n"
    "2024-01-15T10:00:01+09:30,10.1.2.3,203.0.113.51,51235,22,6,deny,60,0,fw-edge-1\n"
    "not a time,10.1.2.3,203.0.113.51,51235,22,6,deny,60,0,fw-edge-1\n"
    "2024-01-15T10:00:03Z,10.1.2.300,203.0.113.51,51235,22,6,deny,60,0,fw-edge-1\n"
    "2024-01-15T10:00:03Z,10.1.2.3,,51235,22,6,deny,60,0,fw-edge-1\n"
    "2024-01-15T10:00:04Z,10.1.2.3,203.0.113.51,51235\n"
    '1705312805,10.1.2.3,"2001:DB8::5",51236,80,udp,drop,5,,\n'
)


def test_generic_firewall_csv_bad_rows_are_named(tmp_path, ctx):
    p = tmp_path / "fw.csv"
    p.write_text(FIREWALL)
    assert sniff(Artefact("a", p, str(p))) is NetExportSource
    src = NetExportSource()
    rows = _read(src, p, ctx)
    assert [r["line"] for r in rows] == [2, 3, 8]
    a, b, c = rows
    assert (a["ts"], a["bytes_out"], a["bytes_in"], a["action"], a["device"]) == (
        _utc(2024, 1, 15, 10, 0, 0), 1000, 20000, "accept", "fw-edge-1")
    assert b["ts"] == _utc(2024, 1, 15, 0, 30, 1) and b["proto"] == "tcp"  # +09:30, 6
    assert (c["ts"], c["dst_ip"], c["proto"], c["bytes_in"], c["host"]) == (
        _utc(2024, 1, 15, 10, 0, 5), "2001:DB8::5", "udp", None, None)
    assert _warnings(ctx) == {
        "field count differs from the header (10 fields)": (1, ("line 7",)),
        "unreadable or missing time; row not stored": (1, ("line 4",)),
        "unreadable or missing source address; row not stored": (1, ("line 5",)),
        "unreadable or missing destination address; row not stored": (1, ("line 6",))}
    assert (src.stats.records, src.stats.bad) == (3, 4) and _accounted(src.stats)


def test_firewall_total_bytes_are_not_given_a_direction(tmp_path, ctx):
    p = tmp_path / "fw.csv"
    p.write_text("time,source_ip,destination_ip,destination_port,protocol,action,bytes\n"
                 "2024-01-15 10:00:00,10.1.2.3,203.0.113.50,443,tcp,allow,123456\n")
    (row,) = _read(NetExportSource(), p, ctx)
    assert (row["bytes_out"], row["bytes_in"], row["dst_port"]) == (None, None, 443)
    assert any("'bytes' counts both directions" in w.message for w in ctx.warnings)


def test_gzip_export_cut_short_is_accounted(tmp_path, ctx):
    body = "timestamp,src,dst,dport,action\n" + "".join(
        f"{1705312800 + i},10.0.{i % 250}.{i % 200},198.51.100.{i % 200},443,allow\n"
        for i in range(40_000))
    gz = gzip.compress(body.encode())
    p = tmp_path / "fw.csv.gz"
    p.write_bytes(gz[: len(gz) // 2])
    assert sniff(Artefact("a", p, str(p))) is NetExportSource
    src = NetExportSource()
    rows = _read(src, p, ctx)
    assert 5_000 < len(rows) == src.stats.records < 40_000
    assert all(r["ts"] == datetime.fromtimestamp(1705312800 + r["line"] - 2, UTC)
               for r in rows)
    assert src.stats.bad <= 1 and _accounted(src.stats)
    assert any("truncated" in w.message for w in ctx.warnings)


def test_block_boundaries_keep_line_numbers(tmp_path, ctx, monkeypatch):
    monkeypatch.setattr(net_export, "iter_line_blocks",
                        functools.partial(_lines.iter_line_blocks, block_bytes=4096))
    head = "timestamp,src,dst,dport,action\n"
    lines = [head]
    for i in range(2, 1002):
        if i % 250 == 0:
            lines.append("broken,row\n")
        elif i == 600:
            lines.append(head)  # concatenated exports repeat the header
        else:
            lines.append(f"{1705312800 + i},10.0.0.{i % 250},198.51.100.{i % 200},443,allow\n")
    p = tmp_path / "fw.csv"
    p.write_text("".join(lines))
    src = NetExportSource()
    rows = _read(src, p, ctx)
    assert len(rows) == 1000 - 4 - 1
    assert [r["ts"] for r in rows] == [
        datetime.fromtimestamp(1705312800 + r["line"], UTC) for r in rows]
    assert [r["line"] for r in rows] == [i for i in range(2, 1002)
                                         if i % 250 and i != 600]
    assert _warnings(ctx) == {"field count differs from the header (5 fields)": (
        4, ("line 250", "line 500", "line 750", "line 1000"))}
    assert (src.stats.directives, src.stats.bad) == (2, 4) and _accounted(src.stats)


# ---- a mapped JSON-lines export -------------------------------------------------------
JSONL = (
    '{"event":{"time":"2024-07-01 09:30:00","action":"allowed"},"client":{"ip":"10.1.2.3",'
    '"user":"CORP\\\\alice"},"request":{"url":"https://files.example.net:8443/up?id=1",'
    '"method":"POST","bytes":1048576},"response":{"status":201,"bytes":512},'
    '"ua":"python-requests/2.31"}\n'
    '{"event":{"time":"2024-07-01T10:00:00+10:00","action":"blocked"},"client":{"ip":'
    '"10.1.2.4"},"request":{"url":"http://evil.example/","method":"GET","bytes":"300"},'
    '"response":{"status":403,"bytes":0}}\n'
    "not json\n"
    '{"event":{"time":"2024-04-07 02:30:00"},"client":{"ip":"10.1.2.5"},"request":{"url":'
    '"http://a.example/"}}\n'
)
MAPPING = """\
mappings:
  - name: corp-gateway
    table: proxy
    format: jsonl
    columns:
      ts: event.time
      src_ip: client.ip
      user: client.user
      url: request.url
      method: request.method
      bytes_out: request.bytes
      bytes_in: response.bytes
      status_code: response.status
      action: event.action
      user_agent: [ua, request.ua]
    time_format: iso
    timezone: Australia/Sydney
    match: ['"client":', '"request":']
"""


def _jsonl_rows(store):
    return store.sql("SELECT line, ts, src_ip, \"user\", url, url_host, dst_port, bytes_out, "
                     "bytes_in, status_code, action, user_agent FROM proxy ORDER BY line"
                     ).to_pylist()


@pytest.mark.parametrize("broken", [False, True])
def test_jsonl_mapping_with_timezone(tmp_path, broken):
    p = tmp_path / "gateway.jsonl"
    extra = ('{"event":{"time":"2024-07-01 09:30:00"},"client":"10.9.9.9"}\n'
             '{"event": broken}\n') if broken else ""
    p.write_text(JSONL + extra)  # broken: a block the whole-block reader refuses
    m = tmp_path / "map.yaml"
    m.write_text(MAPPING)
    options = {"net_mapping": list(load_net_mappings(m))}
    art = Artefact("a", p, str(p))
    assert sniff(art) is None and sniff(art, None, options) is NetExportSource
    store = CaseStore(tmp_path / "case", create=True)
    ingest([str(p)], store, RunContext(), workers=1, options=options)
    rows = _jsonl_rows(store)
    assert rows == [
        {"line": 1, "ts": _utc(2024, 6, 30, 23, 30), "src_ip": "10.1.2.3",
         "user": "CORP\\alice", "url": "https://files.example.net:8443/up?id=1",
         "url_host": "files.example.net", "dst_port": 8443, "bytes_out": 1048576,
         "bytes_in": 512, "status_code": 201, "action": "allowed",
         "user_agent": "python-requests/2.31"},
        {"line": 2, "ts": _utc(2024, 7, 1, 0, 0), "src_ip": "10.1.2.4", "user": None,
         "url": "http://evil.example/", "url_host": "evil.example", "dst_port": 80,
         "bytes_out": 300, "bytes_in": 0, "status_code": 403, "action": "blocked",
         "user_agent": None},
        # 02:30 on the day Sydney leaves daylight time is ambiguous: the earlier one
        {"line": 4, "ts": _utc(2024, 4, 6, 15, 30), "src_ip": "10.1.2.5", "user": None,
         "url": "http://a.example/", "url_host": "a.example", "dst_port": 80,
         "bytes_out": None, "bytes_in": None, "status_code": None, "action": None,
         "user_agent": None}]
    (rec,) = store.artefacts.values()
    w = {x["message"]: (x["count"], x["locators"]) for x in rec["warnings"]}
    assert w["times without a zone read as Australia/Sydney (timezone of mapping "
             "corp-gateway)"] == (2, ["line 1", "line 4"])
    assert w["line that is not a JSON object"] == ((2, ["line 3", "line 6"]) if broken
                                                   else (1, ["line 3"]))
    if broken:
        assert w["unreadable or missing client address; row not stored"] == (1, ["line 5"])
    lines = rec["lines"]
    assert lines["records"] == 3 and lines["bad"] == (3 if broken else 1)
    assert lines["records"] + lines["bad"] + lines["blank"] == lines["lines"]


def test_csv_mapping_with_delimiter_and_layout(tmp_path, ctx):
    p = tmp_path / "export.txt"
    p.write_text("Zeit;Quelle;Ziel;Zielport;Aktion;Gesendet;Empfangen\n"
                 "15.01.2024 11:00:00;10.1.2.3;203.0.113.5;443;permit;10;20\n")
    doc = {"table": "net_conn", "format": "csv", "delimiter": ";",
           "columns": {"ts": "Zeit", "src_ip": "Quelle", "dst_ip": "Ziel", "dst_port": "Zielport",
                       "action": "Aktion", "bytes_out": "Gesendet", "bytes_in": "Empfangen"},
           "time_format": "%d.%m.%Y %H:%M:%S", "timezone": "Europe/Berlin"}
    options = {"net_mapping": [doc]}
    art = Artefact("a", p, str(p))
    assert sniff(art) is None and NetExportSource.claims(art, p.read_bytes(), options)
    (row,) = _read(NetExportSource(), p, ctx, options)
    assert (row["ts"], row["action"], row["bytes_out"], row["bytes_in"]) == (
        _utc(2024, 1, 15, 10, 0, 0), "permit", 10, 20)


# ---- mapping checks -------------------------------------------------------------------
@pytest.mark.parametrize(("doc", "message"), [
    ({"table": "flows", "format": "csv", "columns": {"ts": "t"}}, "table must be proxy"),
    ({"table": "proxy", "format": "xml", "columns": {"ts": "t"}}, "format must be one of"),
    ({"table": "proxy", "format": "csv"}, "columns is missing"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": "c", "colour": "x"}},
     "'colour' is not a column of proxy"),
    ({"table": "net_conn", "format": "csv", "columns": {"ts": "t", "src_ip": "s"}},
     "src_ip, dst_ip"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": 5}},
     "wants a field name"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": "c"},
      "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": "c"},
      "time_format": "dd/mm/yyyy"}, "neither a keyword"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": "c"},
      "time_format": "%d/%m/%Y %Z"}, "zone names"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": "c"},
      "delimiter": ";;"}, "delimiter must be one character"),
    ({"table": "proxy", "format": "jsonl", "columns": {"ts": "t", "src_ip": "c",
                                                       "url": "c.url"}}, "both as a field"),
    ({"table": "proxy", "format": "squid", "extra_fields": ["bytes_out", "ts"]},
     "not a proxy column"),
    ({"table": "proxy", "format": "csv", "columns": {"ts": "t", "src_ip": "c"}, "tz": "UTC"},
     "unknown keys tz"),
    ({"preset": "bluecoat"}, "unknown preset"),
    ({"preset": "nfdump", "table": "proxy"}, "cannot change"),
])
def test_bad_mappings_are_config_errors(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_mappings(doc, "map.yaml")


def test_bad_mapping_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: [proxy\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_net_mappings(bad)
    with pytest.raises(ConfigError, match="not readable"):
        load_net_mappings(tmp_path / "missing.yaml")
    bad.write_text("user: Login\ncolour: blue\n")
    with pytest.raises(ConfigError, match="'colour' is not a column"):
        load_auth_mapping(bad)


# ---- hostile heads --------------------------------------------------------------------
def test_sniffers_and_claims_never_raise_on_hostile_heads():
    rng = random.Random(11)
    heads = [b"", b"\x00" * 64, b"\x1f\x8b" + bytes(rng.randrange(256) for _ in range(3000)),
             b"#Fields: c-ip s-action\n" + bytes(rng.randrange(256) for _ in range(3000)),
             b'#Fields: "\n1 2 3\n', b"\xef\xbb\xbf" + b'"' * 5000 + b"\n",
             b"ts,te,td,sa,da,sp,dp,pr,ibyt\n\x00\x01,", b"{" * 3000 + b"\n",
             b'{"client": {"ip": ' * 500 + b"\n", b"1700000000.1 " * 5000 + b"\n",
             ("\u202e,é,\n" * 40).encode(), bytes(rng.randrange(256) for _ in range(65536))]
    options = {"net_mapping": [
        {"table": "proxy", "format": "jsonl", "columns": {"ts": "t", "src_ip": "client.ip"}},
        {"table": "net_conn", "format": "csv", "columns": {"ts": "t", "src_ip": "s",
                                                           "dst_ip": "d"}},
        {"table": "proxy", "format": "elff", "columns": {"ts": "x", "src_ip": "c-ip"},
         "match": ["c-ip"]}],
        "auth_mapping": {"user": "Login"}}
    art = Artefact("x", Path("/nonexistent"), "x")
    for h in heads:
        for cls in (SquidSource, NetExportSource, AuthCsvSource):
            assert cls.sniff(art, h) in (True, False)
            assert cls.claims(art, h, options) in (True, False)
    assert not NetExportSource.sniff(art, b"time,user,src_ip,result\n2024,a,1.2.3.4,ok\n")
    assert not SquidSource.sniff(art, b"10.0.0.1 - - [11/Jul/2018:08:41:01 +0300] \"GET /\"\n")


# ---- the case and the command line ----------------------------------------------------
def test_cli_ingest_with_mappings_lands_rows_in_the_case(tmp_path):
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "gateway.jsonl").write_text(JSONL)
    (ev / "traffic.csv").write_text(PALO)
    (ev / "access.log").write_text(SQUID)
    (ev / "vpn.csv").write_text("Event Time,Login Name,Client Address,Outcome\n"
                                "2024-01-15T09:00:00Z,Alice,198.51.100.9,Accepted\n")
    net_map = tmp_path / "net.yaml"
    net_map.write_text(MAPPING)
    auth_map = tmp_path / "auth.yaml"
    auth_map.write_text("ts: Event Time\nuser: Login Name\nsrc_ip: Client Address\n"
                        "result: Outcome\n")
    case = tmp_path / "case"
    assert main(["-q", "ingest", str(ev), "-o", str(case), "--net-mapping", str(net_map),
                 "--auth-mapping", str(auth_map)]) == 0
    store = CaseStore(case)
    readers = sorted(r["reader"] for r in store.artefacts.values())
    assert readers == ["auth_csv", "net_export", "net_export", "squid"]
    by = store.sql("SELECT _source, count(*) AS n, sum(bytes_out) AS up FROM proxy "
                   "GROUP BY _source ORDER BY _source").to_pylist()
    assert by == [{"_source": "net_export", "n": 3, "up": 1048876},
                  {"_source": "squid", "n": 4, "up": None}]
    conns = store.sql("SELECT src_ip, dst_port, action, device, bytes_out FROM net_conn "
                      "ORDER BY dst_port").to_pylist()
    assert conns == [
        {"src_ip": "10.1.2.3", "dst_port": 443, "action": "allow", "device": "PA-FW01",
         "bytes_out": 98000000},
        {"src_ip": "10.1.2.9", "dst_port": 3389, "action": "deny", "device": "PA-FW01",
         "bytes_out": 74}]
    (auth,) = store.sql('SELECT "user", src_ip, result FROM auth').to_pylist()
    assert auth == {"user": "alice", "src_ip": "198.51.100.9", "result": "success"}
    # without the mappings the JSON export and the VPN CSV are not recognised
    case2 = tmp_path / "case2"
    assert main(["-q", "ingest", str(ev), "-o", str(case2)]) == 0
    assert sorted(r["status"] for r in CaseStore(case2).artefacts.values()) == [
        "ingested", "ingested", "unsupported", "unsupported"]


def test_cli_bad_mapping_is_a_usage_error(tmp_path, capsys):
    ev = tmp_path / "access.log"
    ev.write_text(SQUID)
    bad = tmp_path / "net.yaml"
    bad.write_text("table: proxy\nformat: csv\ncolumns: {ts: t}\n")
    assert main(["-q", "ingest", str(ev), "-o", str(tmp_path / "c"), "--net-mapping",
                 str(bad)]) == 2
    assert "src_ip" in capsys.readouterr().err
    bad.write_text("ts: [unclosed\n")
    assert main(["-q", "ingest", str(ev), "-o", str(tmp_path / "c"), "--auth-mapping",
                 str(bad)]) == 2
    assert "not valid YAML" in " ".join(capsys.readouterr().err.split())  # (may wrap)


def test_older_parts_read_with_the_new_columns_null(tmp_path):
    """A case written before schema 4: net_conn parts without action and device."""
    assert SCHEMA_VERSION >= 4 and "proxy" in TABLES
    store = CaseStore(tmp_path / "case", create=True)
    old = pa.table({"ts": pa.array([_utc(2024, 1, 1)], pa.timestamp("us", tz="UTC")),
                    "_source": ["zeek"], "_artefact": ["x"], "_locator": ["line 1"],
                    "src_ip": ["10.0.0.1"], "dst_ip": ["10.0.0.2"]})
    tmp = store.tmp_part("net_conn")
    pq.write_table(old, tmp)
    store.commit({}, [{"tmp": str(tmp), "table": "net_conn", "rows": 1,
                       "columns": old.column_names, "artefacts": ["x"]}])
    rows = CaseStore(tmp_path / "case").sql(
        "SELECT src_ip, action, device FROM net_conn").to_pylist()
    assert rows == [{"src_ip": "10.0.0.1", "action": None, "device": None}]
    assert json.loads((tmp_path / "case" / "manifest.json").read_text())[
        "schema_version"] == SCHEMA_VERSION
