"""Office documents through oletools: macros (VBA, XLM), DDE, embedded and linked objects,
external relationships (remote templates), RTF objects and template injection.

Each check is its own function so that one a malformed document breaks is reported as a
note and the others still run. Path-based oletools calls get a private copy of the data
under the analysis work folder (never the evidence itself).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tidehunt.attachments.model import Child, Indicator, Report

for _name in ("olevba", "oleobj", "rtfobj", "msodde", "crypto", "ooxml", "olefile",
              "xls_parser", "ppt_record_parser", "msoffcrypto"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)

_CVE = re.compile(r"CVE-\d{4}-\d{4,7}")
_RTF_TEMPLATE = re.compile(rb"\{\\\*\\template\s+([^}]{1,2000})\}", re.I)
_RTF_OBJUPDATE = re.compile(rb"\\objupdate\b", re.I)
_SOAP_WSDL = re.compile(rb"soap:wsdl=", re.I)
#: olevba keyword types worth a finding (the others are context: IOC, strings).
_VBA_TYPES = {"AutoExec": "auto-exec", "Suspicious": "suspicious"}
#: VBA keywords that download or run something (an auto-exec macro with one is a dropper).
_VBA_RUNNERS = re.compile(r"^(shell|wscript\.shell|run|createobject|powershell|urldownload"
                          r"tofile\w*|xmlhttp|winhttp|exec|callbyname|createprocess\w*|"
                          r"environ|adodb\.stream|savetofile|shellexecute\w*)$", re.I)
#: Relationship types (OOXML) whose external target Word or Excel fetches on open.
_FETCHED_RELS = {"attachedTemplate", "oleObject", "frame", "subDocument", "hyperlink",
                 "externalLinkPath", "externalLink", "image", "mailMergeSource"}


def analyse_office(data: bytes, kind: str, name: str, work: Path, report: Report,
                   passwords: list[str]) -> None:
    """Every oletools check that applies to ``kind``; findings go into ``report``."""
    path = _copy(work, data, name)
    try:
        checks: list[tuple[str, Callable[[], None]]] = []
        if kind in ("ole", "ooxml", "office_xml"):
            checks.append(("encryption", lambda: _encryption(path, report, passwords, work)))
        if kind not in ("csv",):
            checks.append(("macros", lambda: _vba(data, name, report)))
        if kind in ("ooxml",):
            checks.append(("excel4", lambda: _ooxml_xlm(data, report)))
        if kind in ("ole", "ooxml", "office_xml", "rtf", "csv"):
            checks.append(("dde", lambda: _dde(path, report)))
        if kind in ("ole", "ooxml"):
            checks.append(("objects", lambda: _embedded(path, data, report)))
        if kind == "ooxml":
            checks.append(("relationships", lambda: _external_rels(path, report)))
            checks.append(("metadata", lambda: _ooxml_meta(data, report)))
        if kind == "office_xml":
            checks.append(("xml parts", lambda: _office_xml(data, report)))
        if kind == "ole":
            checks.append(("metadata", lambda: _ole_meta(data, report)))
        if kind == "rtf":
            checks.append(("rtf objects", lambda: _rtf(data, report)))
        for what, check in checks:
            if report.encrypted and what != "encryption":  # the decrypted child is analysed
                continue
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - a broken document ends no analysis
                report.notes.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def _copy(work: Path, data: bytes, name: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    ext = re.sub(r"[^A-Za-z0-9]", "", name.rsplit(".", 1)[-1][:10] if "." in name else "bin")
    path = work / f".analyse-{os.getpid()}-{id(data)}.{ext or 'bin'}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _encryption(path: Path, report: Report, passwords: list[str], work: Path) -> None:
    from oletools import crypto

    if not crypto.is_encrypted(str(path)):
        return
    report.encrypted = True
    out, used = None, None
    for pw in dict.fromkeys([*crypto.DEFAULT_PASSWORDS, *passwords]):
        with contextlib.suppress(Exception):
            out = crypto.decrypt(str(path), [pw], dir=str(work))
        if out:
            used = pw
            break
    if not out:
        report.add(Indicator("encrypted_document", "medium",
                             "encrypted Office document; no known or mailed password opens it, "
                             "so its content is not analysed", "T1027"))
        report.notes.append("encrypted: content not analysed")
        return
    try:
        plain = Path(out).read_bytes()
    finally:
        with contextlib.suppress(OSError):
            Path(out).unlink()
    report.password = used
    std = used in crypto.DEFAULT_PASSWORDS
    report.add(Indicator(
        "encrypted_document", "low" if std else "medium",
        "Office document encrypted with the default password VelvetSweatshop (opens "
        "without a prompt, hides content from scanners)" if std else
        f"encrypted Office document opened with the password {used!r} from the mail",
        "T1027"))
    report.children.append(Child(report.name + " (decrypted)", plain, "decrypted content"))


def _vba(data: bytes, name: str, report: Report) -> None:
    from oletools.olevba import VBA_Parser

    try:
        vp = VBA_Parser(name or "attachment", data=data)
    except Exception:  # noqa: BLE001 - not a container olevba reads
        return
    try:
        if vp.type == "Text":  # olevba reads any text as VBA source: not a container
            return
        has_vba = bool(vp.detect_vba_macros())
        has_xlm = False
        with contextlib.suppress(Exception):
            has_xlm = bool(vp.detect_xlm_macros())
        if not (has_vba or has_xlm):
            return
        code: list[str] = []
        if has_vba:
            with contextlib.suppress(Exception):
                for _sub, _stream, vname, vcode in vp.extract_all_macros():
                    if vcode and vname != "xlm_macro":
                        code.append(f"' --- {vname}\n{vcode}")
        report.macros = "\n".join(code)[:65536] or None
        found: dict[str, list[str]] = {"auto-exec": [], "suspicious": []}
        with contextlib.suppress(Exception):
            for typ, keyword, _desc in vp.analyze_macros() or []:
                if typ in _VBA_TYPES:
                    found[_VBA_TYPES[typ]].append(str(keyword))
        auto = sorted(set(found["auto-exec"]))
        susp = sorted(set(found["suspicious"]))
        runners = [k for k in susp if _VBA_RUNNERS.match(k)]
        if has_vba:
            sev = "high" if auto and runners else "medium" if auto else "low"
            what = "VBA macros" + (f" with auto-exec trigger {', '.join(auto[:4])}" if auto
                                   else " (no auto-exec trigger)")
            if susp:
                what += f"; suspicious: {', '.join(susp[:6])}"
            report.add(Indicator("vba_autoexec" if auto else "vba_macro", sev, what,
                                 "T1204.002"))
        if has_xlm:
            report.add(Indicator("xlm_macro", "high",
                                 "Excel 4.0 (XLM) macro sheet" + (
                                     f" with auto-exec {', '.join(auto[:3])}" if auto else ""),
                                 "T1204.002"))
        with contextlib.suppress(Exception):
            if has_vba and vp.detect_vba_stomping():
                report.add(Indicator("vba_stomping", "high",
                                     "VBA stomping: the p-code differs from the source "
                                     "(the visible macro is not what runs)", "T1564.007"))
    finally:
        with contextlib.suppress(Exception):
            vp.close()


def _dde(path: Path, report: Report) -> None:
    from oletools import msodde

    text = ""
    with contextlib.redirect_stdout(io.StringIO()):
        text = msodde.process_maybe_encrypted(
            str(path), field_filter_mode=msodde.FIELD_FILTER_BLACKLIST) or ""
    links = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if links:
        report.add(Indicator("dde", "high",
                             f"DDE field(s) that run a command on open: {links[0][:160]}",
                             "T1559.002"))
        report.urls.extend(links[:20])


def _embedded(path: Path, data: bytes, report: Report) -> None:
    from oletools import oleobj
    from oletools.common.clsid import KNOWN_CLSIDS

    with contextlib.redirect_stdout(io.StringIO()):
        for ole in oleobj.find_ole(str(path), None):
            if ole is None:
                continue
            for entry in _ole_entries(ole):
                clsid = (entry.clsid or "").upper()
                desc = KNOWN_CLSIDS.get(clsid)
                if desc and clsid != "00020906-0000-0000-C000-000000000046" and (
                        "CVE" in desc or "Moniker" in desc or "Package" in desc):
                    _clsid_indicator(report, clsid, desc, "embedded OLE object")
            for parts in ole.listdir():
                if parts[-1].lower() != "\x01ole10native":
                    continue
                with contextlib.suppress(Exception):
                    stream = ole.openstream(parts)
                    pkg = oleobj.OleNativeStream(stream.read())
                    if pkg.is_link:
                        report.add(Indicator("ole_package_link", "high",
                                             f"OLE Package linking to {pkg.filename!r}",
                                             "T1204.002"))
                        continue
                    fname = str(pkg.filename or "package.bin")
                    payload = pkg.data or b""
                    report.add(Indicator(
                        "ole_package", "high",
                        f"embedded OLE Package {fname!r} ({len(payload)} bytes) that runs when "
                        "double-clicked", "T1204.002"))
                    report.children.append(Child(fname, bytes(payload), "OLE Package"))


def _ole_entries(ole: Any) -> Iterator[Any]:
    yield ole.root
    for parts in ole.listdir(streams=False, storages=True):
        with contextlib.suppress(Exception):
            yield ole.direntries[ole._find(parts)]


def _clsid_indicator(report: Report, clsid: str, desc: str, where: str) -> None:
    cves = sorted(set(_CVE.findall(desc)))
    sev = "critical" if cves else "high"
    iid = ("equation_editor" if "Equation" in desc else
           "ole2link" if "Moniker" in desc or "OleLink" in desc else
           "activex_exploit" if cves else "ole_object")
    report.add(Indicator(iid, sev, f"{where} {clsid}: {desc}", "T1203" if cves else "T1559.001",
                         ",".join(cves) or None))


def _external_rels(path: Path, report: Report) -> None:
    from oletools import oleobj
    from oletools.ooxml import XmlParser

    parser = XmlParser(str(path))
    for _ in parser.iter_xml():
        pass
    for rel, target in oleobj.find_external_relationships(parser):
        report.urls.append(target)
        if rel == "attachedTemplate":
            report.add(Indicator("remote_template", "high",
                                 f"remote template fetched on open: {target[:200]}", "T1221"))
        elif target.lower().startswith("mhtml:"):
            report.add(Indicator("mshtml_exploit", "critical",
                                 f"external {rel} to {target[:160]} (MSHTML, CVE-2021-40444)",
                                 "T1203", "CVE-2021-40444"))
        elif rel != "hyperlink":
            report.add(Indicator("external_relationship", "medium" if rel not in _FETCHED_RELS
                                 else "high",
                                 f"external {rel} relationship to {target[:200]}", "T1221"))
    for target in oleobj.find_customUI(parser):
        report.add(Indicator("customui_onload", "medium",
                             f"customUI onLoad handler {str(target)[:120]}", "T1221"))


def _ooxml_meta(data: bytes, report: Report) -> None:
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        try:
            info = zf.getinfo("docProps/core.xml")
        except KeyError:
            return
        if info.file_size > 1 << 20:
            return
        root = ET.fromstring(zf.read(info))
    for el in root:
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("title", "subject", "creator", "keywords", "description",
                   "lastModifiedBy") and el.text:
            report.meta[tag] = el.text.strip()[:300]


def _ole_meta(data: bytes, report: Report) -> None:
    import olefile

    with olefile.OleFileIO(data) as ole:
        m = ole.get_metadata()
    for attr, key in (("title", "title"), ("subject", "subject"), ("author", "creator"),
                      ("keywords", "keywords"), ("last_saved_by", "lastModifiedBy")):
        v = getattr(m, attr, None)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if v:
            report.meta[key] = str(v).strip("\x00 ")[:300]


def _rtf(data: bytes, report: Report) -> None:
    from oletools import rtfobj

    for m in _RTF_TEMPLATE.finditer(data[:8 << 20]):
        target = m.group(1).decode("latin-1").strip()
        report.urls.append(target)
        report.add(Indicator("rtf_template", "high",
                             f"RTF template injection: \\*\\template {target[:200]}", "T1221"))
    if _RTF_OBJUPDATE.search(data):
        report.add(Indicator("rtf_objupdate", "medium",
                             "RTF object set to update itself on open (\\objupdate)", "T1203"))
    if _SOAP_WSDL.search(data):
        report.add(Indicator("soap_moniker", "critical",
                             "SOAP WSDL moniker (CVE-2017-8759)", "T1203", "CVE-2017-8759"))
    parser = rtfobj.RtfObjParser(data)
    parser.parse()
    for obj in parser.objects:
        if obj.is_package:
            fname = str(obj.filename or "package.bin")
            report.add(Indicator("ole_package", "high",
                                 f"RTF embeds OLE Package {fname!r}", "T1204.002"))
            report.children.append(Child(fname, bytes(obj.olepkgdata or b""),
                                         "OLE Package in RTF"))
        elif obj.is_ole:
            cls = (obj.class_name or b"").decode("latin-1", "replace").strip("\x00")
            desc = str(obj.clsid_desc or "")
            if obj.clsid and desc:
                _clsid_indicator(report, str(obj.clsid).upper(), desc,
                                 f"RTF object class {cls!r}")
            elif re.match(r"(?i)equation", cls):
                report.add(Indicator("equation_editor", "critical",
                                     f"RTF object class {cls!r}: Equation Editor "
                                     "(CVE-2017-11882, CVE-2018-0802)", "T1203",
                                     "CVE-2017-11882,CVE-2018-0802"))
            elif re.match(r"(?i)ole2link|htmlfile|script", cls):
                report.add(Indicator("ole2link", "critical",
                                     f"RTF object class {cls!r} (CVE-2017-0199)", "T1203",
                                     "CVE-2017-0199"))
            else:
                report.add(Indicator("ole_object", "medium",
                                     f"RTF embeds an OLE object of class {cls!r}",
                                     "T1559.001"))
            if obj.oledata:
                report.children.append(Child(f"rtf-object-{obj.start}.ole",
                                             bytes(obj.oledata), f"OLE object {cls}"))
        elif obj.rawdata and len(obj.rawdata) > 16:
            report.add(Indicator("rtf_raw_object", "low",
                                 f"RTF object at offset {obj.start} that is not valid OLE "
                                 "(obfuscated or broken)", "T1027"))


_MACROSHEET = re.compile(rb"macrosheet|intlmacrosheet", re.I)
_AUTO_NAME = re.compile(rb"(?i)name=\"(_xlnm\.)?(auto_open|auto_close|auto_activate)\d*\"")


def _ooxml_xlm(data: bytes, report: Report) -> None:
    """Excel 4.0 macro sheets in .xlsm/.xlsb/.xltm (olevba finds them only in BIFF files)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        sheets = [n for n in names if n.lower().startswith("xl/macrosheets/")]
        ctypes = zf.read("[Content_Types].xml") if "[Content_Types].xml" in names else b""
        if not sheets and not _MACROSHEET.search(ctypes):
            return
        auto = b""
        for wb in ("xl/workbook.xml", "xl/workbook.bin"):
            if wb in names and zf.getinfo(wb).file_size < 16 << 20:
                auto = zf.read(wb)
    trig = _AUTO_NAME.search(auto) or (re.search(rb"(?i)auto_open", auto.replace(b"\x00", b""))
                                       if auto else None)
    report.add(Indicator("xlm_macro", "high",
                         f"Excel 4.0 (XLM) macro sheet(s) {', '.join(sheets[:3]) or ''}".strip()
                         + (" with an Auto_Open name" if trig else ""), "T1204.002"))


def _office_xml(data: bytes, report: Report) -> None:
    """Flat OPC and Word 2003 XML: binary parts (OLE objects, macros) become children and
    external relationships are reported as in a zipped document."""
    import base64
    import xml.etree.ElementTree as ET

    for _ev, el in ET.iterparse(io.BytesIO(data), events=("end",)):
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("binaryData", "binData") and el.text:
            raw = base64.b64decode("".join(el.text.split()), validate=False)
            name = ""
            for k, v in el.attrib.items():
                if k.endswith("name"):
                    name = v
            report.children.append(Child(name.rsplit("/", 1)[-1] or "part.bin", raw,
                                         "XML document part"))
        elif tag == "OLEObject":
            prog = el.attrib.get("ProgID", "?")
            report.add(Indicator("ole_object", "high" if prog == "Package" else "medium",
                                 f"embedded OLE object, ProgID {prog}", "T1559.001"))
        elif tag == "part":
            for k, v in el.attrib.items():
                if k.endswith("}name") and "embeddings/" in v:
                    report.add(Indicator("ole_object", "medium",
                                         f"embedded object part {v}", "T1559.001"))
        elif tag == "Relationship" and el.attrib.get("TargetMode") == "External":
            rel = el.attrib.get("Type", "").rsplit("/", 1)[-1]
            target = el.attrib.get("Target", "")
            report.urls.append(target)
            if rel == "attachedTemplate":
                report.add(Indicator("remote_template", "high",
                                     f"remote template fetched on open: {target[:200]}",
                                     "T1221"))
            elif rel != "hyperlink":
                report.add(Indicator("external_relationship", "high" if rel in _FETCHED_RELS
                                     else "medium",
                                     f"external {rel} relationship to {target[:200]}", "T1221"))
        if tag not in ("part", "package"):
            el.clear()
