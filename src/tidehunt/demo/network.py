"""The demo's network evidence: a Zeek sensor's conn, dns and ssl logs (TSV, as Zeek
writes them) over four weeks of the victim's ordinary traffic, with the intrusion in it:
the msohelper.exe beacon to the actor's server, PsExec from WEB01 to DC01 against the
zone policy, and the staged RAR volumes leaving WS-ANALYST01 for Dropbox through rclone.

Business hours are 08:00-18:00 in Brisbane (UTC+10, the profile's ``timezone``), so the
exfiltration at 13:20 local time is inside them; the hour-of-week baseline of
WS-ANALYST01 (small Dropbox syncs every working hour) is what gives it away.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from tidehunt.demo.generate import C2_HOST, C2_IP, STAGES

#: The organisation profile's network part (appended to the mail profile).
NETWORK_PROFILE: Final = """
# network analytics (docs/network.md): business calendar and zone policy
timezone: Australia/Brisbane
business_hours: "08:00-18:00"
workdays: [mon, tue, wed, thu, fri]
holidays: [2026-10-05]                 # Labour Day (Queensland)
hosts: {dc01: 10.10.10.10, web01: 10.10.20.15, wiki01: 10.10.20.40}
zones:
  dc: {networks: [10.10.10.0/24], role: server}
  servers: {networks: [10.10.20.0/24], role: server}
  dmz: {networks: [10.10.20.15/32], role: server}     # WEB01, published to the internet
  workstations: {networks: [10.10.30.0/24], isolated: true}
  jump: {networks: [10.10.40.0/24]}
allow:
  - {from: workstations, to: dc, ports: [53, 88, 123, 135, 389, 445, 464, 636, 3268, 49152-65535]}
  - {from: servers, to: dc, ports: [53, 88, 123, 135, 389, 445, 464, 636, 3268, 49152-65535]}
  - {from: dmz, to: dc, ports: [53, 88, 123, 389, 464, 636]}   # authentication only
  - {from: workstations, to: servers, ports: [80, 443, 1433]}
  - {from: internet, to: dmz, ports: [80, 443]}
  - {from: jump, to: any, ports: [22, 445, 3389, 5985]}
  - {from: any, to: internet, ports: any}
"""

SENSOR: Final = "sensor01.corp.example"
WORKSTATIONS: Final = (("10.10.30.21", 11), ("10.10.30.22", 12), ("10.10.30.23", 13))
WS_ANALYST: Final = "10.10.30.21"
WEB01: Final = "10.10.20.15"
DC01: Final = "10.10.10.10"
WIKI01: Final = "10.10.20.40"
DROPBOX_CONTENT: Final = ("content.dropboxapi.com", "198.51.100.43")
DROPBOX_API: Final = ("api.dropboxapi.com", "198.51.100.42")
SITES: Final = (("www.bom.gov.example", "198.51.100.60"), ("news.example", "198.51.100.61"),
                ("outlook.office365.example", "198.51.100.62"),
                ("maritime-review.example", "198.51.100.63"))
#: Monday of the first week of history, in UTC.
START: Final = datetime(2026, 9, 13, 22, 0, tzinfo=UTC)  # Mon 14 Sep 08:00 Brisbane
END: Final = datetime(2026, 10, 8, 8, 0, tzinfo=UTC)
MiB: Final = 1 << 20

def _words(text: str) -> list[str]:
    return text.split()


CONN_FIELDS: Final = _words("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration "
                      "orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes "
                      "history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes "
                      "tunnel_parents")
CONN_TYPES: Final = _words("time string addr port addr port enum string interval count count "
                     "string bool bool count string count count count count "
                     "set[string]")
SSL_FIELDS: Final = _words("ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve "
                     "server_name resumed last_alert next_protocol established subject "
                     "issuer validation_status")
SSL_TYPES: Final = _words("time string addr port addr port string string string string bool "
                    "string string bool string string string")
DNS_FIELDS: Final = _words("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id query "
                     "qtype_name rcode_name answers TTLs")
DNS_TYPES: Final = _words("time string addr port addr port enum count string string string "
                    "vector[string] vector[interval]")


class _Zeek:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.conn: list[tuple[float, str]] = []
        self.ssl: list[tuple[float, str]] = []
        self.dns: list[tuple[float, str]] = []

    def _uid(self) -> str:
        self.n += 1
        return f"C{self.n:07d}demo{self.rng.randrange(16 ** 6):06x}"

    def connect(self, t: datetime, src: str, dst: str, port: int, out: int, inn: int, *,
                duration: float = 1.0, service: str = "ssl", name: str | None = None,
                state: str = "SF", proto: str = "tcp") -> None:
        uid = self._uid()
        sport = self.rng.randrange(49152, 65535)
        ts = t.timestamp()
        local = "T" if dst.startswith("10.") else "F"
        self.conn.append((ts, "\t".join(map(str, (
            f"{ts:.6f}", uid, src, sport, dst, port, proto, service or "-",
            f"{duration:.6f}", out, inn, state, "T", local, 0, "ShADadFf",
            max(out // 1400, 3), out + 40 * max(out // 1400, 3), max(inn // 1400, 3),
            inn + 40 * max(inn // 1400, 3), "(empty)")))))
        if service == "ssl":
            self.ssl.append((ts, "\t".join(map(str, (
                f"{ts:.6f}", uid, src, sport, dst, port, "TLSv13",
                "TLS_AES_256_GCM_SHA384", "x25519", name or "-", "F", "-", "h2", "T",
                f"CN={name}" if name else "-", "CN=R11,O=Let's Encrypt,C=US" if name else "-",
                "ok")))))

    def resolve(self, t: datetime, src: str, name: str, answer: str) -> None:
        ts = t.timestamp()
        self.dns.append((ts, "\t".join(map(str, (
            f"{ts:.6f}", self._uid(), src, self.rng.randrange(49152, 65535), DC01, 53, "udp",
            self.rng.randrange(65536), name, "A", "NOERROR", answer, "300.000000")))))

    def visit(self, t: datetime, src: str, name: str, ip: str, out: int, inn: int) -> None:
        self.resolve(t, src, name, ip)
        self.connect(t + timedelta(milliseconds=self.rng.randrange(20, 200)), src, ip, 443,
                     out, inn, duration=self.rng.uniform(0.5, 30), name=name)

    @staticmethod
    def _render(path: str, fields: tuple[str, ...] | list[str], types: list[str],
                rows: list[tuple[float, str]]) -> bytes:
        head = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
                "#unset_field\t-", f"#path\t{path}", "#open\t2026-09-13-22-00-00",
                "#fields\t" + "\t".join(fields), "#types\t" + "\t".join(types)]
        body = [r for _, r in sorted(rows)]
        return ("\n".join(head + body + ["#close\t2026-10-08-08-00-00"]) + "\n").encode()

    def render(self) -> dict[str, bytes]:
        return {"conn.log": self._render("conn", CONN_FIELDS, CONN_TYPES, self.conn),
                "ssl.log": self._render("ssl", SSL_FIELDS, SSL_TYPES, self.ssl),
                "dns.log": self._render("dns", DNS_FIELDS, DNS_TYPES, self.dns)}


def _business_hours() -> list[datetime]:
    out = []
    t = START
    while t < END:
        local = t + timedelta(hours=10)
        if local.weekday() < 5 and 8 <= local.hour < 18 and local.date().isoformat() \
                != "2026-10-05":
            out.append(t)
        t += timedelta(hours=1)
    return out


def build(seed: int = 40) -> dict[str, bytes]:
    """The three logs, rendered."""
    z = _Zeek(seed)
    rng = z.rng
    for hour in _business_hours():
        for ws, _ in WORKSTATIONS:
            for _ in range(rng.randint(1, 3)):  # the Dropbox desktop client syncing
                t = hour + timedelta(seconds=rng.randrange(3600))
                z.visit(t, ws, *DROPBOX_CONTENT, rng.randint(200_000, 2 * MiB),
                        rng.randint(20_000, 400_000))
            for _ in range(rng.randint(3, 8)):
                t = hour + timedelta(seconds=rng.randrange(3600))
                z.visit(t, ws, *rng.choice(SITES), rng.randint(2_000, 40_000),
                        rng.randint(20_000, 3 * MiB))
            for _ in range(rng.randint(1, 4)):
                t = hour + timedelta(seconds=rng.randrange(3600))
                z.connect(t, ws, WIKI01, 443, rng.randint(2_000, 20_000),
                          rng.randint(20_000, 900_000), name="wiki.corp.example")
            t = hour + timedelta(seconds=rng.randrange(3600))
            z.connect(t, ws, DC01, 389, rng.randint(800, 3_000), rng.randint(2_000, 30_000),
                      service="ldap")
        for _ in range(rng.randint(5, 15)):  # the public reaching WEB01's portal
            t = hour + timedelta(seconds=rng.randrange(3600))
            z.connect(t, f"198.51.100.{rng.randrange(100, 200)}", WEB01, 443,
                      rng.randint(1_000, 20_000), rng.randint(10_000, 400_000),
                      name="portal.corp.example")
        z.connect(hour + timedelta(seconds=rng.randrange(3600)), WEB01, DC01, 389,
                  1_500, 6_000, service="ldap")
    # the beacon: msohelper.exe on WS-ANALYST01, every 60 s with 10% jitter, from the
    # certutil download (stage 2) to the log clearing
    t = STAGES[1].time + timedelta(seconds=40)
    while t < STAGES[8].time + timedelta(minutes=10):
        z.connect(t, WS_ANALYST, C2_IP, 443, rng.randint(310, 360), rng.randint(900, 1_300),
                  duration=rng.uniform(0.2, 0.6), name=C2_HOST)
        t += timedelta(seconds=60 * rng.uniform(0.9, 1.1))
    # PsExec from WEB01 to DC01 (stage 6): SMB and RPC the zone policy does not allow
    t6 = STAGES[5].time
    z.connect(t6 - timedelta(seconds=1), WEB01, DC01, 445, 48_211, 21_377, duration=12.4,
              service="smb,gssapi,ntlm")
    z.connect(t6, WEB01, DC01, 135, 1_244, 988, duration=0.2, service="dce_rpc")
    # the exfiltration (stage 8): rclone lists the remote, then sends the two volumes
    t8 = STAGES[7].time
    z.visit(t8 + timedelta(milliseconds=400), WS_ANALYST, *DROPBOX_API, 14_220, 9_870)
    for n, (size, secs) in enumerate(((200 * MiB, 540.0), (137 * MiB, 371.0),
                                      (61_440, 2.0))):
        z.visit(t8 + timedelta(seconds=2 + 20 * n), WS_ANALYST, *DROPBOX_CONTENT,
                size + rng.randint(0, 9_000), rng.randint(40_000, 90_000))
        z.conn[-1] = (z.conn[-1][0], _with_duration(z.conn[-1][1], secs))
    return z.render()


def _with_duration(row: str, secs: float) -> str:
    cols = row.split("\t")
    cols[CONN_FIELDS.index("duration")] = f"{secs:.6f}"
    return "\t".join(cols)


def write_demo_network(evidence: Path, seed: int = 40) -> list[Path]:
    """Write ``zeek/{conn,dns,ssl}.log`` under the evidence folder; returns them."""
    out = evidence / "zeek"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in build(seed).items():
        (out / name).write_bytes(data)
        paths.append(out / name)
    return paths
