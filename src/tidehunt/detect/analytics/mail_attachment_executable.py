"""Attachments that are programs: shortcuts, scripts, executables, packages, disguised names."""

from __future__ import annotations

from typing import ClassVar

from tidehunt.detect.analytics._attachment import AttachmentIndicators
from tidehunt.detect.analytics.base import meta
from tidehunt.model.rule import RuleMeta


class MailAttachmentExecutable(AttachmentIndicators):
    """LNK commands, HTA/JS/VBS/WSF scripts, PE files, OLE Packages, double extensions and
    right-to-left override names, and YARA matches."""

    NAME: ClassVar[str] = "mail_attachment_executable"
    IDS: ClassVar[str] = (r"lnk_command|script_attachment|executable_attachment|ole_package|"
                          r"ole_package_link|double_extension|rlo_name|padded_name|yara:.*")
    META: ClassVar[RuleMeta] = meta(
        "th-analytic-0027", "Mail attachment that runs code when opened", "high",
        ["T1566.001", "T1204.002", "T1036.007", "T1036.002", "T1059"],
        ["initial-access", "execution", "defense-evasion"],
        "An attachment (or a file inside one) is a shortcut whose target runs a command "
        "(LnkParse3), a script Windows runs on a double-click (HTA, JScript, VBScript, WSF, "
        "PowerShell, batch), an executable, an embedded OLE Package, or hides its type behind "
        "a double extension or a right-to-left override character; YARA-X matches of the "
        "bundled and --yara rules are reported here too.",
        ["https://attack.mitre.org/techniques/T1204/002/",
         "https://attack.mitre.org/techniques/T1036/007/"], __name__)
