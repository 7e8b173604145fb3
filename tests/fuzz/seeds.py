"""Seed inputs the project generates itself, for the property tests and the atheris
harnesses in ``fuzz/``: attachments (tests/fixtures/maldocs.py), an Outlook .msg, EVTX
headers. Corpus samples (``../shared/corpus``) are added at run time when present; none
is ever copied into the repository.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CORPUS
from tests.fixtures import maldocs as md


def _u(s: str) -> bytes:
    return s.encode("utf-16-le")


def outlook_msg(subject: str = "Invoice", body: str | bytes = "see attached",
                header: str = "From: a@b.example\r\nSubject: Invoice\r\n\r\n") -> bytes:
    """A minimal Outlook message: a compound file with the MAPI property streams."""
    props = struct.pack("<8xIIII8x", 0, 0, 0, 0)
    props += struct.pack("<HHII4x", 0x001F, 0x0037, 6, len(_u(subject)) + 2)
    return md._cfb(bytes(16), {
        "__properties_version1.0": props,
        "__substg1.0_001A001F": _u("IPM.Note"),
        "__substg1.0_0037001F": _u(subject),
        "__substg1.0_1000001F": body if isinstance(body, bytes) else _u(body),
        "__substg1.0_0C1A001F": _u("Alice Example"),
        "__substg1.0_007D001F": _u(header),
    })


def evtx_header(n_chunks: int = 1) -> bytes:
    """An EVTX file header (valid checksum) followed by one empty chunk."""
    h = bytearray(4096)
    h[:8] = b"ElfFile\x00"
    struct.pack_into("<QQQIHHHH", h, 8, 0, max(n_chunks - 1, 0), 1, 128, 1, 3, 4096, n_chunks)
    struct.pack_into("<I", h, 124, zlib.crc32(bytes(h[:120])))
    c = bytearray(65536)
    c[:8] = b"ElfChnk\x00"
    struct.pack_into("<QQQQIII", c, 8, 1, 1, 1, 1, 128, 512, 512)
    struct.pack_into("<I", c, 124, zlib.crc32(bytes(c[:120]) + bytes(c[128:512])))
    return bytes(h) + bytes(c) * n_chunks


def evtx_with_record(binxml: bytes) -> bytes:
    """An EVTX file of one chunk holding one record with the given BinXML (checksums set)."""
    h = bytearray(evtx_header(1)[:4096])
    struct.pack_into("<Q", h, 24, 2)
    struct.pack_into("<I", h, 124, zlib.crc32(bytes(h[:120])))
    rec = b"\x2a\x2a\x00\x00" + struct.pack("<IQQ", 24 + len(binxml) + 4, 1, 0) + binxml
    rec += struct.pack("<I", len(rec) + 4)
    c = bytearray(65536)
    c[:8] = b"ElfChnk\x00"
    struct.pack_into("<QQQQIII", c, 8, 1, 1, 1, 1, 128, 512, 512 + len(rec))
    c[512:512 + len(rec)] = rec
    struct.pack_into("<I", c, 52, zlib.crc32(rec))
    struct.pack_into("<I", c, 124, zlib.crc32(bytes(c[:120]) + bytes(c[128:512])))
    return bytes(h) + bytes(c)


def office() -> dict[str, bytes]:
    """Office documents and RTF, benign and with the traits the analysers look for."""
    return {"equation.rtf": md.rtf_equation_editor(), "template.rtf": md.rtf_template_injection(),
            "ole2link.rtf": md.rtf_ole2link(), "remote.docx": md.docx_remote_template(),
            "clean.docx": md.docx_clean(),
            "ole.doc": md._cfb(bytes(16), {"WordDocument": b"\xec\xa5" + bytes(510)})}


def lnk() -> dict[str, bytes]:
    """Shortcuts: a LOLBin with arguments, padding, a document icon."""
    return {"a.lnk": md.lnk(), "b.lnk": md.lnk(r"C:\Windows\System32\WindowsPowerShell\v1.0"
                                              r"\powershell.exe", " " * 60 + "-enc AAAA")}


def archives() -> dict[str, bytes]:
    """Archives: zip (plain, encrypted, nested, traversal), 7z, ISO, RAR 5, gzip."""
    inner = {"invoice.js": md.js_dropper(), "readme.txt": b"hello"}
    import gzip

    return {"a.zip": md.zip_with(inner), "enc.zip": md.zip_with(inner, password="infected"),
            "nested.zip": md.nested_zip(3), "trav.zip": md.zip_traversal(),
            "a.7z": md.seven_zip_with(inner), "a.iso": md.iso_with(inner),
            "a.rar": md.rar5(inner), "a.gz": gzip.compress(b"MZ" + bytes(200), mtime=0)}


def corpus_files(*globs: str, limit: int = 8, max_bytes: int = 1 << 20) -> list[Path]:
    """Small corpus files matching ``globs`` (none when the corpus is absent)."""
    if not CORPUS.is_dir():
        return []
    out: list[Path] = []
    for g in globs:
        out += [p for p in sorted(CORPUS.glob(g)) if p.is_file()
                and p.stat().st_size <= max_bytes]
    return out[:limit]


#: harness name -> (generated seeds, corpus globs)
SEEDS: dict[str, tuple[Callable[[], dict[str, bytes]], tuple[str, ...]]] = {
    "evtx": (lambda: {"header.evtx": evtx_header()},
             ("evtx-malformed/*.evtx", "evtx-benign/*.evtx")),
    "evtx_native": (lambda: {"header.evtx": evtx_header()},
                    ("evtx-malformed/*.evtx", "evtx-benign/*.evtx")),
    "office": (office, ("email/attachments/oletools/**/*.rtf", "email/attachments/**/*.doc*",
                        "email/attachments/**/*.xls*")),
    "lnk": (lnk, ("email/attachments/**/*.lnk",)),
    "archive": (archives, ("email/attachments/**/*.zip", "email/attachments/**/*.7z",
                           "email/attachments/**/*.rar", "email/attachments/**/*.iso")),
    "msg": (lambda: {"a.msg": outlook_msg()}, ("email/msg/*.msg",)),
}


def write_seeds(name: str, folder: Path) -> Path:
    """Write the generated seeds of a harness into ``folder`` and return it; corpus
    samples are passed to the fuzzer as a second, read-only folder (see fuzz/run.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in SEEDS[name][0]().items():
        (folder / fname).write_bytes(data)
    return folder
