"""What an attachment is, from its first bytes (the name only breaks ties between texts)."""

from __future__ import annotations

import re
import zipfile
from io import BytesIO

#: Extensions that Windows runs when the file is opened (the name trick a lure relies on).
EXECUTABLE_EXT = frozenset({
    "exe", "scr", "com", "pif", "cpl", "msi", "msp", "dll", "hta", "js", "jse", "vbs", "vbe",
    "wsf", "wsh", "ps1", "psm1", "bat", "cmd", "lnk", "url", "scf", "reg", "jar", "chm",
    "iso", "img", "vhd", "vhdx", "appref-ms", "application", "msc", "inf", "sct", "xll",
    "library-ms", "settingcontent-ms", "gadget", "one",
})
#: Extensions a lure pretends to be.
DOCUMENT_EXT = frozenset({
    "pdf", "doc", "docx", "docm", "rtf", "xls", "xlsx", "xlsm", "ppt", "pptx", "txt", "jpg",
    "jpeg", "png", "gif", "odt", "csv", "zip", "rar", "htm", "html", "mp4", "wav",
})
SCRIPT_KINDS = frozenset({"hta", "js", "vbs", "wsf", "ps1", "bat", "sct"})
ARCHIVE_KINDS = frozenset({"zip", "7z", "rar", "iso", "tar", "gzip", "cab"})
OFFICE_KINDS = frozenset({"ole", "ooxml", "rtf", "office_xml", "slk", "mht"})

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"{\\rt", "rtf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00F", "lnk"),
    (b"%PDF-", "pdf"),
    (b"MZ", "pe"),
    (b"\x7fELF", "elf"),
    (b"\x1f\x8b", "gzip"),
    (b"MSCF", "cab"),
    (b"ID;P", "slk"),
    (b"\x89PNG", "image"), (b"GIF8", "image"), (b"\xff\xd8\xff", "image"),
    (b"BM", "image"),
)
_SCRIPT_SNIFF: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("hta", re.compile(rb"<\s*hta:application", re.I)),
    ("wsf", re.compile(rb"<\s*job\b[^>]*>|<\s*package\s*>", re.I)),
    ("sct", re.compile(rb"<\s*scriptlet\b", re.I)),
)
_EXT_SCRIPT = {"js": "js", "jse": "js", "vbs": "vbs", "vbe": "vbs", "wsf": "wsf",
               "hta": "hta", "ps1": "ps1", "psm1": "ps1", "bat": "bat", "cmd": "bat",
               "sct": "sct"}


def zip_kind(data: bytes) -> str:
    """``ooxml`` (Office 2007+), ``odf`` (OpenDocument) or plain ``zip``."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            names = set(zf.namelist()[:5000])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "zip"
    if "[Content_Types].xml" in names:
        return "ooxml"
    if "mimetype" in names and any(n == "content.xml" for n in names):
        return "odf"
    return "zip"


def kind(data: bytes, name: str) -> str:
    """Type of an attachment from its content; see :data:`_MAGIC` for binary ones."""
    if not data:
        return "empty"
    head = data[:65536]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return zip_kind(data)
    for magic, k in _MAGIC:
        if head.startswith(magic):
            return k
    if len(data) > 0x8006 and any(data[o:o + 5] == b"CD001" for o in (0x8001, 0x8801, 0x9001)):
        return "iso"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar"
    low = head[:8192].lower().lstrip(b"\xef\xbb\xbf \t\r\n")
    for k, rx in _SCRIPT_SNIFF:
        if rx.search(head):
            return k
    if low.startswith(b"mime-version") and b"multipart/related" in head[:4096].lower():
        return "mht"
    if low.startswith(b"<?xml") and (b"<?mso-application" in low or b"schemas-microsoft-com"
                                     in low or b"urn:schemas-microsoft" in low):
        return "office_xml"
    if ext in _EXT_SCRIPT and b"\x00" not in head[:4096]:
        return _EXT_SCRIPT[ext]
    if b"\x00" in head[:8192]:
        return "binary"
    if b"<html" in low or b"<!doctype html" in low or b"<script" in low:
        return "html"
    if ext == "csv":
        return "csv"
    if low.startswith(b"<"):
        return "xml"
    return "text"
