"""Windows shortcuts (.lnk) through LnkParse3: what runs, with which arguments."""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

from tidehunt.attachments.model import Indicator, Report

#: Programs a lure shortcut starts to fetch or run the next stage.
LOLBINS = re.compile(
    r"(?i)(^|[\\/])(cmd|powershell|pwsh|mshta|wscript|cscript|rundll32|regsvr32|certutil|"
    r"bitsadmin|msiexec|conhost|forfiles|curl|wmic|schtasks|at|hh|msbuild|installutil|"
    r"regasm|regsvcs|odbcconf|pcalua|explorer|cmstp|finger|ftp|expand|esentutl|"
    r"extrac32|makecab|tar|rar|winrar|7z)(\.exe)?$")
_PADDING = re.compile(r"\s{40,}")
_DOC_ICON = re.compile(r"(?i)\.(pdf|docx?|xlsx?|pptx?|rtf|txt|jpe?g|png)\b|"
                       r"(shell32|imageres)\.dll")


def parse_lnk(data: bytes) -> dict[str, Any]:
    """Target, arguments, working folder, icon and machine ID of a shortcut."""
    import LnkParse3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lnk = LnkParse3.lnk_file(io.BytesIO(data))
        j = lnk.get_json()
    d = j.get("data") or {}
    li = j.get("link_info") or {}
    target = None
    if li.get("local_base_path"):
        target = str(li["local_base_path"]) + str(li.get("common_path_suffix") or "")
    elif (li.get("location_info") or {}).get("net_name"):
        target = str(li["location_info"]["net_name"]) + "\\" + str(
            li.get("common_path_suffix") or "")
    if not target:
        target = _from_items((j.get("target") or {}).get("items") or [])
    if not target and d.get("relative_path"):
        target = str(d["relative_path"])
    tracker = ((j.get("extra") or {}).get("DISTRIBUTED_LINK_TRACKER_BLOCK") or {})
    return {
        "target": target,
        "arguments": d.get("command_line_arguments"),
        "working_directory": d.get("working_directory"),
        "icon_location": d.get("icon_location"),
        "description": d.get("description"),
        "relative_path": d.get("relative_path"),
        "machine_id": tracker.get("machine_identifier"),
    }


def _from_items(items: list[dict[str, Any]]) -> str | None:
    parts: list[str] = []
    for it in items:
        if it.get("volume_name"):
            parts = [str(it["volume_name"]).rstrip("\\")]
        elif it.get("primary_name") and parts:
            parts.append(str(it.get("long_name") or it["primary_name"]))
    return "\\".join(parts) if len(parts) > 1 else None


def analyse_lnk(data: bytes, report: Report) -> None:
    """A shortcut's command as an indicator; LOLBins, padding and document icons raise it."""
    info = parse_lnk(data)
    report.lnk = info
    target = str(info.get("target") or "")
    args = str(info.get("arguments") or "")
    exe = target.replace("/", "\\").rsplit("\\", 1)[-1]
    lol = bool(LOLBINS.search(target.strip()))
    why = []
    if lol:
        why.append(f"starts {exe}")
    if _PADDING.search(args):
        why.append("pads its arguments with whitespace to hide them in Properties")
    if _DOC_ICON.search(str(info.get("icon_location") or "")) and lol:
        why.append("wears a document icon")
    if re.search(r"(?i)https?://|\\\\[\w.-]+\\|-enc|frombase64|downloadstring|iwr |"
                 r"invoke-webrequest|\.hta\b|javascript:", args):
        why.append("fetches or decodes a payload")
    sev = "high" if lol or why else "medium"
    cmd = (target + " " + " ".join(args.split()))[:300].strip()
    report.add(Indicator("lnk_command", sev,
                         f"shortcut runs {cmd!r}" + (f" ({'; '.join(why)})" if why else ""),
                         "T1204.002"))
