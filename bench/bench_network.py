"""Benchmark: Zeek conn/dns/ssl ingest and the network analytics, on generated logs.

Usage:
    .venv/bin/python bench/bench_network.py [--records 10000000] [--out DIR] [--keep]
                                            [--skip-generate] [--workers 2] [--json FILE]

Writes a seeded, synthetic Zeek TSV capture (no Python loop per line: numpy draws the
columns, Polars writes the text): ``--records`` conn.log records over four weeks from
2,000 internal hosts to ~50,000 external destinations, rotated into files of about
1,000,000 lines (ingest runs one worker per large file), with a dns.log record for one
conn in five and an ssl.log record for one in three (same uid, so the analytics can
join), some of it to cloud storage by SNI (dropbox.com, graph.microsoft.com,
drive.google.com) and four planted anomalies: a 5-minute beacon, a ~2.4 GiB upload to
Dropbox at 02:00, a ~1.2 GiB upload to Google Drive named only by DNS, and an internal
port scan. Logs already in ``--out`` for the same records, seed and file size are reused;
with ``--out`` the logs are kept (the cases only with ``--keep``), without it everything is
written to a temporary folder and removed at the end unless ``--keep``.

Then, each in a fresh process with the bundled rules (a private rule cache and data
directory, so fetched packs and feeds do not count):

* hunt:   ``tidehunt -q --workers W hunt DIR -o CASE``
* ingest: ``tidehunt -q --workers W ingest DIR -o CASE2``
* detect: ``tidehunt -q detect CASE2``

measuring wall time, records/s and the peak resident memory of the process tree (the
main process plus its workers, summed at each sample, every 0.2 s), and copying the
per-phase timings the case records (report.json ``stats.seconds``, the per-analytic
seconds, ingest and parse seconds). Prints a Markdown table; ``--json FILE`` writes it
all. Timing only; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
GEN_VERSION = 1  # bump when the generator's output changes (invalidates reused data)
LINES_PER_FILE = 1_000_000
START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday
DAYS = 28
N_HOSTS = 2_000
N_DEST = 50_000
MEM_BUDGET = 2 << 30
SAMPLE_S = 0.2


def _words(text: str) -> list[str]:
    return text.split()


# Zeek's own header lines (as in the corpus' otrf-lsass-campaign-01-tsv logs)
CONN_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes "
    "resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts "
    "orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents")
CONN_TYPES = _words(
    "time string addr port addr port enum string interval count count string bool bool "
    "count string count count count count set[string]")
DNS_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass "
    "qclass_name qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected")
DNS_TYPES = _words(
    "time string addr port addr port enum count interval string count string count string "
    "count string bool bool bool bool count vector[string] vector[interval] bool")
SSL_FIELDS = _words(
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve server_name "
    "resumed last_alert next_protocol established ssl_history cert_chain_fps "
    "client_cert_chain_fps sni_matches_cert")
SSL_TYPES = _words(
    "time string addr port addr port string string string string bool string string bool "
    "string vector[string] vector[string] bool")

# relative activity per hour of day (UTC), weekends at a quarter
DIURNAL = np.array([2, 1.5, 1.2, 1, 1, 1.2, 2, 4, 8, 10, 10, 9, 8, 9, 10, 10, 9, 7, 5, 4,
                    3.5, 3, 2.5, 2.2])
UID_ALPHABET = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)

# cloud storage reached by SNI: (name, addresses)
CLOUD = [("www.dropbox.com", ["162.125.1.18", "162.125.2.18"]),
         ("content.dropboxapi.com", ["162.125.1.14", "162.125.3.14", "162.125.4.14"]),
         ("dropbox.com", ["162.125.248.18"]),
         ("graph.microsoft.com", ["20.190.151.6", "20.190.151.9", "40.126.32.74"]),
         ("drive.google.com", ["142.250.74.46", "142.250.185.14", "172.217.16.206"])]
INTERNAL_SERVERS = [f"10.0.5.{i}" for i in range(10, 30)]
RESOLVER = "10.0.5.53"
NTP = ["129.6.15.28", "132.163.97.1", "162.159.200.1", "216.239.35.0"]
# planted anomalies (hosts are internal host indexes; see host_ips)
BEACON_HOST, BEACON_IP, BEACON_NAME = 1826, "185.244.25.17", "status.cdn-sync.net"
UPLOAD_HOST, UPLOAD_IP = 763, "162.125.3.14"  # content.dropboxapi.com
DNS_UPLOAD_HOST, DNS_UPLOAD_IP = 1258, "142.250.185.14"  # drive.google.com, no SNI
SCAN_HOST = 504


def host_ips() -> list[str]:
    """The internal hosts: 10.1.0.1 .. 10.1.7.250."""
    return [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(N_HOSTS)]


def destinations(rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """~50,000 external (address, name, certificate fingerprint), most popular first."""
    first = np.array([13, 18, 23, 31, 34, 35, 37, 45, 46, 52, 54, 62, 64, 66, 69, 72, 74,
                      77, 78, 81, 85, 89, 91, 93, 95, 104, 107, 130, 138, 141, 146, 151,
                      157, 159, 172, 176, 178, 185, 188, 193, 195, 198, 199, 203, 208, 212])
    raw = (first[rng.integers(0, len(first), N_DEST * 2)].astype(np.uint32) << 24
           | rng.integers(1, 1 << 24, N_DEST * 2).astype(np.uint32))
    raw = raw[~((raw >> 20) == (172 << 4 | 1))]  # not 172.16/12
    _, idx = np.unique(raw, return_index=True)
    raw = raw[np.sort(idx)][:N_DEST]
    ips = [f"{v >> 24}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}" for v in raw.tolist()]
    syl = ["ka", "lo", "mi", "ne", "ra", "tu", "vo", "zen", "qua", "bri", "sto", "dex", "fin",
           "gal", "hub", "ion", "jet", "kin", "lux", "max", "nov", "orb", "pix", "rex"]
    subs = ["www", "cdn", "api", "static", "img", "edge", "login", "assets", "app", "s3"]
    tlds = ["com", "com", "com", "net", "org", "io", "de", "co.uk", "cloud", "info"]
    a, b, c = (rng.integers(0, len(syl), N_DEST) for _ in range(3))
    s, t = rng.integers(0, len(subs), N_DEST), rng.integers(0, len(tlds), N_DEST)
    names = [f"{subs[s[i]]}.{syl[a[i]]}{syl[b[i]]}{syl[c[i]]}{i}.{tlds[t[i]]}"
             for i in range(len(ips))]
    fps = [hashlib.sha256(n.encode()).hexdigest() for n in names]
    return ips, names, fps


def sample_ts(rng: np.random.Generator, n: int, t0: float, t1: float) -> np.ndarray:
    """Times in [t0, t1): business hours busier, weekends quieter."""
    hours = np.arange(int(t0 // 3600), int(-(-t1 // 3600)))
    lo = np.maximum(hours * 3600.0, t0)
    hi = np.minimum((hours + 1) * 3600.0, t1)
    dow = ((hours * 3600 - START) // 86400).astype(int) % 7
    w = DIURNAL[hours % 24] * np.where(dow >= 5, 0.25, 1.0) * (hi - lo)
    k = rng.choice(len(hours), n, p=w / w.sum())
    return lo[k] + rng.random(n) * (hi - lo)[k]


def lognorm(rng: np.random.Generator, n: int, mu: float, sigma: float, cap: float
            ) -> np.ndarray:
    return np.minimum(rng.lognormal(mu, sigma, n), cap).astype(np.int64)


def pick(rng: np.random.Generator, choices: list[str], n: int,
         p: list[float] | None = None) -> pl.Series:
    """n values drawn from a small vocabulary, as a string column."""
    w = None if p is None else np.asarray(p) / np.sum(p)
    return pl.Series(choices, dtype=pl.String).gather(rng.choice(len(choices), n, p=w))


def uids(rng: np.random.Generator, n: int) -> pl.Series:
    """Zeek-like connection uids: C and 17 base-62 characters."""
    a = np.empty((n, 18), np.uint8)
    a[:, 0] = ord("C")
    a[:, 1:] = UID_ALPHABET[rng.integers(0, 62, (n, 17))]
    return pl.Series(a.view("S18").ravel()).cast(pl.String)


class World:
    """The fixed network: hosts, destinations, popularity, cloud services."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        self.hosts = pl.Series(host_ips(), dtype=pl.String)
        self.host_w = rng.lognormal(0, 1, N_HOSTS)
        self.host_w /= self.host_w.sum()
        ips, names, fps = destinations(rng)
        cloud_ips = [ip for _, a in CLOUD for ip in a]
        cloud_names = [n for n, a in CLOUD for _ in a]
        self.n_ext = len(ips)
        self.dst_ip = pl.Series([*ips, *cloud_ips, BEACON_IP], dtype=pl.String)
        self.dst_name = pl.Series([*names, *cloud_names, BEACON_NAME], dtype=pl.String)
        self.dst_fp = pl.Series(fps + [hashlib.sha256(n.encode()).hexdigest()
                                       for n in [*cloud_names, BEACON_NAME]],
                                dtype=pl.String)
        self.cloud = np.arange(self.n_ext, self.n_ext + len(cloud_ips))
        self.beacon = self.n_ext + len(cloud_ips)
        self.index = {ip: i for i, ip in enumerate(self.dst_ip.to_list())}
        w = 1.0 / (np.arange(self.n_ext) + 20.0) ** 1.1  # Zipf-like popularity
        self.dst_w = w / w.sum()
        # a fifth of the hosts use cloud storage, some a lot
        cw = rng.lognormal(0, 1.5, N_HOSTS) * (rng.random(N_HOSTS) < 0.2)
        self.cloud_host_w = cw / cw.sum()

    def ext(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.n_ext, n, p=self.dst_w)

    def host(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(N_HOSTS, n, p=self.host_w)


def conns(world: World, rng: np.random.Generator, ts: np.ndarray, host: np.ndarray,
          dst: pl.Series, dport: np.ndarray | int, proto: str,
          service: str | pl.Series | None, duration: np.ndarray | None,
          ob: np.ndarray, rb: np.ndarray, state: pl.Series | str, history: pl.Series | str,
          local_resp: bool, kind: str, dest: np.ndarray | None = None) -> pl.DataFrame:
    """A block of connections with every conn.log column (plus the join keys)."""
    n = len(ts)
    tcp = proto == "tcp"
    hdr = 52 if tcp else 28
    opk = 1 + ob // 1200 + (2 if tcp else 0)
    rpk = np.where(rb > 0, 1 + rb // 1400 + (1 if tcp else 0), 0)
    cols: dict[str, Any] = {
        "ts": ts, "host": host.astype(np.int32),
        "id.orig_h": world.hosts.gather(host), "id.orig_p": rng.integers(49152, 65536, n),
        "id.resp_h": dst,
        "id.resp_p": np.full(n, dport) if isinstance(dport, int) else dport,
        "proto": pl.repeat(proto, n, eager=True),
        "service": service if isinstance(service, pl.Series)
        else pl.repeat(service, n, eager=True, dtype=pl.String),
        "duration": pl.Series(duration, dtype=pl.Float64) if duration is not None
        else pl.repeat(None, n, eager=True, dtype=pl.Float64),
        "orig_bytes": ob, "resp_bytes": rb,
        "conn_state": state if isinstance(state, pl.Series)
        else pl.repeat(state, n, eager=True),
        "local_orig": pl.repeat("T", n, eager=True),
        "local_resp": pl.repeat("T" if local_resp else "F", n, eager=True),
        "missed_bytes": np.zeros(n, np.int64),
        "history": history if isinstance(history, pl.Series)
        else pl.repeat(history, n, eager=True),
        "orig_pkts": opk, "orig_ip_bytes": ob + hdr * opk,
        "resp_pkts": rpk, "resp_ip_bytes": rb + hdr * rpk,
        "tunnel_parents": pl.repeat("-", n, eager=True),
        "kind": pl.repeat(kind, n, eager=True),
        "dest": dest.astype(np.int32) if dest is not None else np.full(n, -1, np.int32),
    }
    return pl.DataFrame(cols)


def tcp_state(rng: np.random.Generator, n: int) -> tuple[pl.Series, pl.Series]:
    k = rng.choice(4, n, p=[0.92, 0.04, 0.02, 0.02])
    states = pl.Series(["SF", "RSTO", "RSTR", "S1"]).gather(k)
    hist = pl.Series(["ShADadFf", "ShADadR", "ShADadr", "ShADa"]).gather(k)
    return states, hist


def normal_traffic(world: World, rng: np.random.Generator, n: int, t0: float, t1: float
                   ) -> list[pl.DataFrame]:
    """n ordinary connections in [t0, t1): DNS (1 in 5), TLS (1 in 3), the rest mixed."""
    n_dns, n_ssl = n // 5, n // 3
    rest = n - n_dns - n_ssl
    n_http, n_int, n_ntp, n_fail = (int(rest * f) for f in (0.30, 0.35, 0.05, 0.15))
    n_quic = rest - n_http - n_int - n_ntp - n_fail
    out = []
    # TLS: 5% of it to cloud storage, by the cloud-using hosts
    n_cloud = n_ssl // 20
    host = np.concatenate([world.host(rng, n_ssl - n_cloud),
                           rng.choice(N_HOSTS, n_cloud, p=world.cloud_host_w)])
    dest = np.concatenate([world.ext(rng, n_ssl - n_cloud),
                           rng.choice(world.cloud, n_cloud)])
    st, hi = tcp_state(rng, n_ssl)
    out.append(conns(world, rng, sample_ts(rng, n_ssl, t0, t1), host, world.dst_ip.gather(dest),
                     443, "tcp", "ssl", np.minimum(rng.lognormal(0, 1.6, n_ssl), 3600),
                     lognorm(rng, n_ssl, 7.5, 1.3, 30 << 20),
                     lognorm(rng, n_ssl, 9.5, 2.0, 200 << 20), st, hi, False, "ssl", dest))
    dest = world.ext(rng, n_http)
    st, hi = tcp_state(rng, n_http)
    out.append(conns(world, rng, sample_ts(rng, n_http, t0, t1), world.host(rng, n_http),
                     world.dst_ip.gather(dest), 80, "tcp",
                     pick(rng, ["http", "-"], n_http, [0.9, 0.1]).replace("-", None),
                     np.minimum(rng.lognormal(-0.5, 1.4, n_http), 600),
                     lognorm(rng, n_http, 6.5, 0.8, 1 << 20),
                     lognorm(rng, n_http, 8.5, 2.0, 100 << 20), st, hi, False, "http", dest))
    port_k = rng.choice(5, n_int, p=[0.3, 0.25, 0.25, 0.1, 0.1])
    st, hi = tcp_state(rng, n_int)
    out.append(conns(world, rng, sample_ts(rng, n_int, t0, t1), world.host(rng, n_int),
                     pick(rng, INTERNAL_SERVERS, n_int),
                     np.array([445, 389, 88, 135, 3389])[port_k], "tcp",
                     pl.Series(["smb,gssapi", "ldap_tcp", "krb_tcp", "dce_rpc", "rdp"]
                               ).gather(port_k),
                     np.minimum(rng.lognormal(-1, 2, n_int), 28800),
                     lognorm(rng, n_int, 7, 1.5, 50 << 20), lognorm(rng, n_int, 7.5, 1.8,
                                                                    200 << 20),
                     st, hi, True, "internal"))
    out.append(conns(world, rng, sample_ts(rng, n_ntp, t0, t1), world.host(rng, n_ntp),
                     pick(rng, NTP, n_ntp), 123, "udp", "ntp", rng.random(n_ntp) * 0.05,
                     np.full(n_ntp, 48), np.full(n_ntp, 48), "SF", "Dd", False, "ntp"))
    k = rng.random(n_fail) < 0.7
    dest = world.ext(rng, n_fail)
    out.append(conns(world, rng, sample_ts(rng, n_fail, t0, t1), world.host(rng, n_fail),
                     world.dst_ip.gather(dest),
                     pl.Series([443, 80, 8080, 22]).gather(rng.integers(0, 4, n_fail)
                                                           ).to_numpy(),
                     "tcp", None, None, np.zeros(n_fail, np.int64), np.zeros(n_fail, np.int64),
                     pl.Series(np.where(k, "S0", "REJ")), pl.Series(np.where(k, "S", "Sr")),
                     False, "fail", dest).with_columns(
        duration=pl.when(pl.col("conn_state") == "REJ").then(pl.lit(0.000412)),
        resp_pkts=pl.when(pl.col("conn_state") == "REJ").then(1).otherwise(0),
        resp_ip_bytes=pl.when(pl.col("conn_state") == "REJ").then(40).otherwise(0)))
    dest = world.ext(rng, n_quic)
    out.append(conns(world, rng, sample_ts(rng, n_quic, t0, t1), world.host(rng, n_quic),
                     world.dst_ip.gather(dest), 443, "udp", "quic",
                     np.minimum(rng.lognormal(1, 1.5, n_quic), 3600),
                     lognorm(rng, n_quic, 8, 1.2, 20 << 20), lognorm(rng, n_quic, 11, 2, 500 << 20),
                     "SF", "Dd", False, "quic", dest))
    # DNS: most lookups just before a TLS or HTTP connection of the same host
    app = pl.concat([out[0], out[1]]).select("ts", "host", "dest")
    n_look = int(n_dns * 0.85)
    n_intl = int(n_dns * 0.12)
    n_nx = n_dns - n_look - n_intl
    look = app.gather(rng.choice(app.height, n_look, replace=False))
    host = look["host"].to_numpy()
    lts = look["ts"].to_numpy() - rng.uniform(0.003, 1.5, n_look)
    lts = np.maximum(lts, t0)
    dns_q = pl.concat([world.dst_name.gather(look["dest"]),
                       pick(rng, [f"dc0{i}.corp.example" for i in range(1, 5)] +
                            [f"fs0{i}.corp.example" for i in range(1, 5)], n_intl),
                       pl.Series([f"wpad{i % 97}.corp.example" for i in range(n_nx)])])
    dns_a = pl.concat([world.dst_ip.gather(look["dest"]), pick(rng, INTERNAL_SERVERS[:8], n_intl),
                       pl.repeat(None, n_nx, eager=True, dtype=pl.String)])
    ts = np.concatenate([lts, sample_ts(rng, n_dns - n_look, t0, t1)])
    host = np.concatenate([host, world.host(rng, n_dns - n_look)])
    out.append(dns_conns(world, rng, ts, host, dns_q, dns_a))
    return out


def dns_conns(world: World, rng: np.random.Generator, ts: np.ndarray, host: np.ndarray,
              query: pl.Series, answer: pl.Series) -> pl.DataFrame:
    n = len(ts)
    rtt = rng.uniform(0.0003, 0.04, n)
    ob = rng.integers(30, 70, n)
    rb = np.where(answer.is_null().to_numpy(), ob + 60, ob + 16 + rng.integers(16, 120, n))
    df = conns(world, rng, ts, host, pl.repeat(RESOLVER, n, eager=True), 53, "udp", "dns",
               rtt, ob, rb, "SF", "Dd", True, "dns")
    return df.with_columns(query=query, answers=answer, rtt=rtt)


def planted(world: World, seed: int) -> pl.DataFrame:
    """The anomalies, over the whole four weeks (each file takes its own slice)."""
    rng = np.random.default_rng([seed, 1])
    out = []
    # 1. beacon: every 300 s +-10% for four weeks, small and steady, with an hourly lookup
    n = DAYS * 86400 // 300
    ts = START + 60 + np.arange(n) * 300.0 + rng.uniform(-30, 30, n)
    host = np.full(n, BEACON_HOST)
    out.append(conns(world, rng, ts, host, pl.repeat(BEACON_IP, n, eager=True), 443, "tcp",
                     "ssl", rng.uniform(0.25, 0.6, n), rng.normal(420, 12, n).astype(np.int64),
                     rng.normal(180, 8, n).astype(np.int64), "SF", "ShADadFf", False, "ssl",
                     np.full(n, world.beacon)))
    hourly = ts[::12] - 0.4
    out.append(dns_conns(world, rng, hourly, np.full(len(hourly), BEACON_HOST),
                         pl.repeat(BEACON_NAME, len(hourly), eager=True),
                         pl.repeat(BEACON_IP, len(hourly), eager=True)))
    # 2. 25 uploads of ~100 MiB to content.dropboxapi.com, 02:00-02:50 on day 17 (by SNI)
    t = START + 17 * 86400 + 2 * 3600 + np.sort(rng.uniform(0, 3000, 25))
    out.append(conns(world, rng, t, np.full(25, UPLOAD_HOST),
                     pl.repeat(UPLOAD_IP, 25, eager=True), 443, "tcp", "ssl",
                     rng.uniform(80, 120, 25), rng.integers(100 << 20, 110 << 20, 25),
                     rng.integers(20_000, 60_000, 25), "SF", "ShADadFf", False, "ssl",
                     np.full(25, world.index[UPLOAD_IP])))
    # 3. 12 uploads of ~100 MiB to a Google Drive address, no SNI: named by the DNS answer
    t = START + 23 * 86400 + 13 * 3600 + np.sort(rng.uniform(120, 3300, 12))
    out.append(dns_conns(world, rng, np.array([t[0] - 90.0]), np.array([DNS_UPLOAD_HOST]),
                         pl.Series(["drive.google.com"]), pl.Series([DNS_UPLOAD_IP])))
    out.append(conns(world, rng, t, np.full(12, DNS_UPLOAD_HOST),
                     pl.repeat(DNS_UPLOAD_IP, 12, eager=True), 443, "tcp", "ssl",
                     rng.uniform(60, 100, 12), rng.integers(100 << 20, 110 << 20, 12),
                     rng.integers(20_000, 60_000, 12), "SF", "ShADadFf", False, "ssl-nosni",
                     np.full(12, world.index[DNS_UPLOAD_IP])))
    # 4. internal port scan: 5,000 SYNs in ten minutes, day 9 at 22:00
    t = START + 9 * 86400 + 22 * 3600 + np.sort(rng.uniform(0, 600, 5000))
    k = rng.random(5000) < 0.6
    out.append(conns(world, rng, t, np.full(5000, SCAN_HOST), pick(rng, INTERNAL_SERVERS, 5000),
                     rng.integers(1, 1024, 5000), "tcp", None, None, np.zeros(5000, np.int64),
                     np.zeros(5000, np.int64), pl.Series(np.where(k, "S0", "REJ")),
                     pl.Series(np.where(k, "S", "Sr")), True, "scan"))
    return pl.concat(out, how="diagonal_relaxed")


def header(path: str, fields: list[str], types: list[str], t0: float) -> bytes:
    opened = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d-%H-%M-%S")
    return ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\t{path}\n#open\t{opened}\n#fields\t" + "\t".join(fields) + "\n#types\t"
            + "\t".join(types) + "\n").encode()


def write_log(path: Path, log: str, fields: list[str], types: list[str], df: pl.DataFrame,
              t0: float, t1: float) -> None:
    with open(path, "wb") as fh:
        fh.write(header(log, fields, types, t0))
        df.select(fields).write_csv(fh, separator="\t", include_header=False,
                                    quote_style="never", null_value="-", float_precision=6)
        fh.write(f"#close\t{datetime.fromtimestamp(t1, UTC):%Y-%m-%d-%H-%M-%S}\n".encode())


def generate(out: Path, records: int, seed: int, per_file: int = LINES_PER_FILE
             ) -> dict[str, Any]:
    """Write the logs into ``out``; returns the record counts."""
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    world = World(seed)
    plant = planted(world, seed)
    n_files = max(1, -(-records // per_file))
    span = DAYS * 86400 / n_files
    counts = {"conn": 0, "dns": 0, "ssl": 0, "files": 0, "bytes": 0}
    for f in range(n_files):
        rng = np.random.default_rng([seed, 2, f])
        t0, t1 = START + f * span, START + (f + 1) * span
        n = records // n_files + (1 if f < records % n_files else 0)
        mine = plant.filter((pl.col("ts") >= t0) & (pl.col("ts") < t1))
        mine = mine.head(n)
        df = pl.concat([*normal_traffic(world, rng, n - mine.height, t0, t1), mine],
                       how="diagonal_relaxed").sort("ts")
        df = df.with_columns(uid=uids(rng, df.height))
        stamp = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d_%H%M%S")
        write_log(out / f"conn.{stamp}.log", "conn", CONN_FIELDS, CONN_TYPES, df, t0, t1)
        dns = df.filter(pl.col("kind") == "dns")
        m = dns.height
        nx = dns["answers"].is_null()
        dns = dns.with_columns(
            trans_id=rng.integers(1, 65536, m), qclass=pl.lit(1), qclass_name=pl.lit("C_INTERNET"),
            qtype=pl.lit(1), qtype_name=pl.lit("A"),
            rcode=pl.when(nx).then(3).otherwise(0),
            rcode_name=pl.when(nx).then(pl.lit("NXDOMAIN")).otherwise(pl.lit("NOERROR")),
            AA=pl.lit("F"), TC=pl.lit("F"), RD=pl.lit("T"), RA=pl.lit("T"), Z=pl.lit(0),
            TTLs=pl.when(nx).then(None).otherwise(
                pl.Series(["60.000000", "300.000000", "3600.000000"]).gather(
                    rng.integers(0, 3, m))),
            rejected=pl.lit("F"))
        write_log(out / f"dns.{stamp}.log", "dns", DNS_FIELDS, DNS_TYPES, dns, t0, t1)
        ssl = df.filter(pl.col("kind").is_in(["ssl", "ssl-nosni"]))
        m = ssl.height
        v13 = pl.Series(rng.random(m) < 0.6)
        nosni = (pl.col("kind") == "ssl-nosni") | pl.Series(rng.random(m) < 0.03)
        ssl = ssl.with_columns(
            ts=pl.col("ts") + rng.uniform(0.005, 0.2, m),
            version=pl.when(v13).then(pl.lit("TLSv13")).otherwise(pl.lit("TLSv12")),
            cipher=pl.when(v13).then(pl.lit("TLS_AES_128_GCM_SHA256"))
            .otherwise(pl.lit("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")),
            curve=pl.lit("x25519"),
            server_name=pl.when(nosni).then(None).otherwise(world.dst_name.gather(ssl["dest"])),
            resumed=pick(rng, ["F", "T"], m, [0.8, 0.2]), last_alert=pl.lit(None, pl.String),
            next_protocol=pl.lit(None, pl.String), established=pl.lit("T"),
            ssl_history=pl.when(v13).then(pl.lit("CsiI")).otherwise(pl.lit("CsxknGIi")),
            cert_chain_fps=pl.when(v13).then(None).otherwise(world.dst_fp.gather(ssl["dest"])),
            client_cert_chain_fps=pl.lit("(empty)"),
            sni_matches_cert=pl.when(v13 | nosni).then(None).otherwise(pl.lit("T")))
        write_log(out / f"ssl.{stamp}.log", "ssl", SSL_FIELDS, SSL_TYPES, ssl, t0, t1)
        counts["conn"] += df.height
        counts["dns"] += dns.height
        counts["ssl"] += ssl.height
        counts["files"] += 3
        print(f"  generated {out.name}/*.{stamp}.log: {df.height:,} conn, {dns.height:,} dns, "
              f"{ssl.height:,} ssl ({time.perf_counter() - t_start:.0f} s)", flush=True)
    counts["bytes"] = sum(p.stat().st_size for p in out.glob("*.log"))
    counts["seconds"] = round(time.perf_counter() - t_start, 1)
    return counts


# ---- measuring ----------------------------------------------------------------------------
def _proc_tree_rss(pid: int) -> tuple[int, int, int]:
    """(main RSS, children RSS, children) from /proc, when psutil is missing."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))

    def rss(p: int) -> int:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0
    todo, found = list(kids.get(pid, [])), []
    while todo:
        p = todo.pop()
        found.append(p)
        todo += kids.get(p, [])
    return rss(pid), sum(rss(p) for p in found), len(found)


def tree_rss(pid: int) -> tuple[int, int, int]:
    """(main RSS, RSS of all descendants summed, number of descendants)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        main = psutil.Process(pid)
        kids = main.children(recursive=True)
        m = main.memory_info().rss
    except psutil.Error:
        return 0, 0, 0
    total = 0
    for k in kids:
        try:
            total += k.memory_info().rss
        except psutil.Error:
            pass
    return m, total, len(kids)


def run_measured(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; wall time and the peak of the tree's summed RSS (every SAMPLE_S)."""
    samples: list[tuple[float, int, int, int]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout
                                                        else b""))
    reader.start()
    while proc.poll() is None:
        m, k, nk = tree_rss(proc.pid)
        samples.append((time.perf_counter() - t0, m, k, nk))
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - t0
    reader.join()
    text = b"".join(out).decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} failed ({proc.returncode}):\n{text[-3000:]}")
    peak = max(samples, key=lambda s: s[1] + s[2], default=(0.0, 0, 0, 0))
    return {"wall_s": round(wall, 2),
            "peak_tree_mib": round((peak[1] + peak[2]) / 2**20),
            "peak_at_s": round(peak[0], 1),
            "peak_main_mib": round(max((s[1] for s in samples), default=0) / 2**20),
            "peak_workers_mib": round(max((s[2] for s in samples), default=0) / 2**20),
            "max_workers": max((s[3] for s in samples), default=0),
            "samples": len(samples), "output": text[-2000:],
            # RSS over time (s, main MiB, workers MiB), to place a peak in a phase
            "rss_series": [(round(t, 1), m >> 20, k >> 20) for t, m, k, _ in samples]}


def phases(case: Path) -> dict[str, Any]:
    """What the case recorded about its last run: stage seconds, ingest, analytics."""
    out: dict[str, Any] = {}
    man = json.loads((case / "manifest.json").read_text())
    run = (man.get("runs") or [{}])[-1]
    ing = run.get("ingest") or {}
    if ing:
        out["ingest"] = {k: ing.get(k) for k in ("records", "ingested", "failed", "warnings",
                                                 "seconds", "parse_seconds")}
    out["parts"] = len(man.get("parts", {}))
    rep = case / "report.json"
    if rep.exists() and run.get("command") in ("hunt", "detect"):
        r = json.loads(rep.read_text())
        st = r.get("stats", {})
        out["seconds"] = st.get("seconds")
        out["tables"] = st.get("tables")
        a = st.get("analytics", {})
        out["analytics"] = {"ran": a.get("ran"), "failed": a.get("failed"),
                            "findings": a.get("findings"), "seconds": a.get("seconds")}
        out["sigma_seconds"] = st.get("sigma", {}).get("seconds")
        out["findings"] = r.get("findings_count")
        out["top_rules"] = st.get("top_rules", [])[:10]
        out["planted_found"] = planted_found(case)
    return out


def planted_found(case: Path) -> dict[str, int]:
    """Findings naming each planted host (a check that the analytics had work)."""
    import pyarrow.parquet as pq

    path = case / "findings.parquet"
    if not path.exists():
        return {}
    f = pq.read_table(path, columns=["rule_title", "host", "src", "dst"]).to_pylist()
    hosts = host_ips()
    named = {"beacon": hosts[BEACON_HOST], "upload_sni": hosts[UPLOAD_HOST],
             "upload_dns": hosts[DNS_UPLOAD_HOST], "scan": hosts[SCAN_HOST]}
    return {k: sum(1 for r in f if ip in (r["host"], r["src"])) for k, ip in named.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000, help="conn.log records")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, help="logs and cases here (default: a temporary "
                    "folder); logs already there for the same --records, --seed and "
                    "--lines-per-file are reused")
    ap.add_argument("--keep", action="store_true", help="keep the logs and cases")
    ap.add_argument("--skip-generate", action="store_true",
                    help="use the logs already in --out as they are")
    ap.add_argument("--lines-per-file", type=int, default=LINES_PER_FILE,
                    help="conn.log lines per rotated file")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", nargs="+", default=["hunt", "ingest", "detect"],
                    choices=["hunt", "ingest", "detect"])
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="tidehunt-bench-net-"))
    work.mkdir(parents=True, exist_ok=True)
    logs, marker = work / "zeek", work / "zeek.json"  # the marker outside the evidence
    want = {"records": args.records, "seed": args.seed, "per_file": args.lines_per_file,
            "version": GEN_VERSION}
    have = json.loads(marker.read_text()) if marker.exists() else {}
    tidehunt = str(ROOT / ".venv" / "bin" / "tidehunt")
    env = dict(os.environ, TIDEHUNT_CACHE_DIR=str(work / "cache"),
               TIDEHUNT_DATA_DIR=str(work / "data"))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "cores": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "workers": args.workers, "runs": {}}
    try:
        if args.skip_generate:
            if not have:
                raise SystemExit(f"--skip-generate: no generated logs in {logs}")
            print(f"using the logs in {logs} as they are: {have['counts']}")
        elif {k: have.get(k) for k in want} == want:
            print(f"reusing {logs} ({have['counts']})")
        else:
            shutil.rmtree(logs, ignore_errors=True)
            print(f"generating {args.records:,} conn records into {logs}")
            counts = generate(logs, args.records, args.seed, args.lines_per_file)
            have = {**want, "counts": counts}
            marker.write_text(json.dumps(have))
        results["data"] = have
        conn_n = have["counts"]["conn"]
        total_n = conn_n + have["counts"]["dns"] + have["counts"]["ssl"]
        base = [tidehunt, "-q", "--workers", str(args.workers)]
        cmds = {"hunt": [*base, "hunt", str(logs), "-o", str(work / "case-hunt")],
                "ingest": [*base, "ingest", str(logs), "-o", str(work / "case-ingest")],
                "detect": [*base, "detect", str(work / "case-ingest")]}
        cases = {"hunt": work / "case-hunt", "ingest": work / "case-ingest",
                 "detect": work / "case-ingest"}
        for name in args.runs:
            if name != "detect":
                shutil.rmtree(cases[name], ignore_errors=True)
            elif not (cases[name] / "manifest.json").exists():
                raise SystemExit("detect needs the ingest run first (--runs ingest detect)")
            print(f"running {name}: {' '.join(cmds[name])}", flush=True)
            r = run_measured(cmds[name], env)
            r["cmd"] = " ".join(cmds[name][1:])
            if name != "detect":
                r["conn_per_s"] = round(conn_n / r["wall_s"])
                r["records_per_s"] = round(total_n / r["wall_s"])
            r["phases"] = phases(cases[name])
            r["under_2gib"] = r["peak_tree_mib"] * 2**20 < MEM_BUDGET
            results["runs"][name] = r
            print(json.dumps({k: v for k, v in r.items() if k not in ("output", "rss_series")}),
                  flush=True)
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.keep:
            for c in ("case-hunt", "case-ingest"):
                shutil.rmtree(work / c, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    c = results["data"]["counts"]
    print(f"\n{c['conn']:,} conn + {c['dns']:,} dns + {c['ssl']:,} ssl records, "
          f"{c['files']} files, {c['bytes'] / 2**20:,.0f} MiB, {results['cores']} cores")
    print("| run | wall s | conn/s | records/s | peak tree MiB | main / workers MiB | stages s |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in results["runs"].items():
        p = r["phases"]
        st = dict(p.get("seconds") or {})
        if "ingest" in p and name == "ingest":
            st = {"ingest": p["ingest"]["seconds"], "parse (workers)": p["ingest"]["parse_seconds"]}
        ana = (p.get("analytics") or {}).get("seconds") or {}
        stages = ", ".join(f"{k} {v}" for k, v in st.items())
        if ana:
            stages += "; analytics: " + ", ".join(f"{k} {v}" for k, v in ana.items())
        rate = [f"{r[k]:,}" if k in r else "" for k in ("conn_per_s", "records_per_s")]
        print(f"| {name} | {r['wall_s']} | {rate[0]} | {rate[1]} | {r['peak_tree_mib']:,} | "
              f"{r['peak_main_mib']:,} / {r['peak_workers_mib']:,} | {stages} |")
    print(f"(peak memory budget {MEM_BUDGET >> 30} GiB: "
          + ", ".join(f"{n} {'under' if r['under_2gib'] else 'OVER'}"
                      for n, r in results["runs"].items()) + ")")


if __name__ == "__main__":
    sys.exit(main())
