"""Script attachments (HTA, JScript, VBScript, WSF, PowerShell, batch): what they call."""

from __future__ import annotations

import re

from tidehunt.attachments.model import Indicator, Report

#: Calls that download, run or decode something, per behaviour.
BEHAVIOURS: tuple[tuple[str, re.Pattern[bytes]], ...] = tuple(
    (n, re.compile(p, re.I)) for n, p in (
        ("runs commands", rb"wscript\.shell|shell\.application|\.run\s*\(|\.exec\s*\(|"
                          rb"shellexecute|start-process|invoke-expression|\biex\b|cmd(\.exe)?"
                          rb"\s+/[ck]"),
        ("downloads", rb"xmlhttp|winhttp|msxml2|urldownloadtofile|downloadstring|"
                      rb"downloadfile|invoke-webrequest|\biwr\b|bitsadmin|certutil\s+-urlcache|"
                      rb"net\.webclient|adodb\.stream"),
        ("decodes", rb"frombase64string|atob\s*\(|-enc(odedcommand)?\s|certutil\s+-decode|"
                    rb"chrw?\s*\(\s*\d+\s*\)\s*&|string\.fromcharcode"),
        ("ActiveX", rb"activexobject|createobject\s*\("),
        ("writes files", rb"savetofile|scripting\.filesystemobject|createtextfile|"
                         rb"set-content|out-file"),
        ("persists", rb"currentversion\\run|schtasks|startup|new-itemproperty"),
    ))
_NAMES = {"hta": "HTML application (HTA)", "js": "JScript", "vbs": "VBScript",
          "wsf": "Windows Script File", "ps1": "PowerShell script", "bat": "batch file",
          "sct": "scriptlet (SCT)"}


def analyse_script(data: bytes, kind: str, report: Report) -> None:
    """A script attachment is itself the finding; its behaviours explain it."""
    found = [n for n, rx in BEHAVIOURS if rx.search(data[:4 << 20])]
    what = _NAMES.get(kind, kind)
    report.add(Indicator("script_attachment", "high" if found else "medium",
                         f"{what} that Windows runs with a double-click" +
                         (f"; it {', '.join(found)}" if found else ""),
                         "T1059.005" if kind in ("vbs", "hta", "wsf") else
                         "T1059.001" if kind == "ps1" else
                         "T1059.003" if kind == "bat" else "T1059.007"))
