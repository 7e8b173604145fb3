"""Archives and disk images: zip (pyzipper: ZipCrypto and AES), 7z (py7zr), ISO (pycdlib),
RAR, tar and cab (libarchive). Members come out into memory within :class:`Limits`; names
are only reported, never used as paths, so traversal names cannot write anywhere.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tidehunt.attachments.model import Child, Indicator, Report

CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How far unpacking goes, per attachment (the whole tree under it)."""

    max_total: int = 512 << 20
    max_member: int = 128 << 20
    max_ratio: float = 200.0
    max_depth: int = 5
    max_count: int = 2000


@dataclass
class Budget:
    """What an attachment tree has used of its limits."""

    limits: Limits
    total: int = 0
    count: int = 0

    def room(self) -> int:
        """Bytes still allowed for one member."""
        return max(0, min(self.limits.max_member, self.limits.max_total - self.total))


class _Stop(Exception):
    """A member went over a limit."""


def _traversal(name: str) -> bool:
    n = name.replace("\\", "/")
    return (n.startswith("/") or bool(re.match(r"^[A-Za-z]:", n))
            or any(p == ".." for p in n.split("/")))


def _check_names(names: list[str], report: Report) -> None:
    bad = [n for n in names if _traversal(n)]
    if bad:
        report.add(Indicator("archive_traversal", "high",
                             f"{len(bad)} member name(s) leave the extraction folder "
                             f"(path traversal or absolute): {', '.join(map(repr, bad[:4]))}",
                             "T1027"))
    files = {n.replace("\\", "/") for n in names}
    for n in sorted(files):
        if n.endswith(" ") and any(o.startswith(n + "/") for o in files):
            report.add(Indicator(
                "winrar_cve_2023_38831", "critical",
                f"member {n!r} ends in a space and a folder of the same name holds "
                f"{next(o for o in sorted(files) if o.startswith(n + '/'))!r}: WinRAR opens "
                "the script instead of the document (CVE-2023-38831)", "T1203",
                "CVE-2023-38831"))
            break


def _read_capped(fh: Any, budget: Budget, packed: int, name: str, report: Report) -> bytes:
    room = budget.room()
    out = bytearray()
    while True:
        block = fh.read(min(CHUNK, room + 1 - len(out)))
        if not block:
            break
        out += block
        if len(out) > room:
            _bomb(report, name, f"more than {room >> 20} MiB unpacked (limit)")
            raise _Stop
        if len(out) > CHUNK and packed and len(out) / packed > budget.limits.max_ratio:
            _bomb(report, name, f"expands over {budget.limits.max_ratio:.0f} times "
                  f"({packed} bytes packed)")
            raise _Stop
    return bytes(out)


def _bomb(report: Report, name: str, why: str) -> None:
    report.add(Indicator("archive_bomb", "high",
                         f"member {name!r} {why}: not unpacked further (decompression bomb?)",
                         "T1499"))


def _admit(budget: Budget, report: Report, name: str) -> bool:
    if budget.count >= budget.limits.max_count:
        report.add(Indicator("archive_too_many", "medium",
                             f"more than {budget.limits.max_count} members: the rest "
                             "are not unpacked", "T1027"))
        return False
    return True


def unpack(data: bytes, kind: str, report: Report, budget: Budget,
           passwords: list[str]) -> None:
    """Members of an archive into ``report.children``; indicators for what is odd."""
    fn = {"zip": _zip, "7z": _7z, "iso": _iso, "gzip": _gzip}.get(kind, _libarchive)
    for child in fn(data, report, budget, passwords, kind):
        budget.total += len(child.data)
        budget.count += 1
        report.children.append(child)
    if kind == "iso":
        report.add(Indicator("disk_image", "medium",
                             "disk image attachment: files inside it lose the "
                             "Mark-of-the-Web when mounted", "T1553.005"))


def _zip(data: bytes, report: Report, budget: Budget, passwords: list[str],
         kind: str) -> Iterator[Child]:
    import pyzipper

    try:
        zf = pyzipper.AESZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        report.notes.append(f"zip not readable: {exc}")
        return
    with zf:
        infos = zf.infolist()
        _check_names([i.filename for i in infos], report)
        enc = [i for i in infos if i.flag_bits & 1]
        pw = _zip_password(zf, enc, passwords) if enc else None
        if enc:
            report.encrypted = True
            report.password = pw
            inner = ", ".join(repr(i.filename) for i in enc[:3])
            report.add(Indicator(
                "archive_encrypted", "high" if pw is not None else "medium",
                f"password-protected archive ({inner}); " + (
                    f"opened with the password {pw!r} found in the mail" if pw is not None
                    else "no password from the mail opens it, members not analysed"),
                "T1027.013" if pw is not None else "T1027"))
        for info in infos:
            if info.is_dir():
                continue
            if not _admit(budget, report, info.filename):
                return
            if info.flag_bits & 1 and pw is None:
                yield Child(info.filename, b"", "zip member", "encrypted: not read")
                continue
            try:
                with zf.open(info, pwd=pw.encode() if pw is not None else None) as fh:
                    body = _read_capped(fh, budget, info.compress_size, info.filename, report)
            except _Stop:
                yield Child(info.filename, b"", "zip member", "over the unpack limits")
                continue
            except (zipfile.BadZipFile, RuntimeError, OSError, ValueError, EOFError,
                    NotImplementedError) as exc:
                yield Child(info.filename, b"", "zip member", f"not readable: {exc}")
                continue
            yield Child(info.filename, body, "zip member")


def _zip_password(zf: Any, enc: list[Any], passwords: list[str]) -> str | None:
    probe = min(enc, key=lambda i: i.compress_size)
    for pw in passwords:
        try:
            with zf.open(probe, pwd=pw.encode()) as fh:
                while fh.read(CHUNK):
                    pass
            return pw
        except (RuntimeError, zipfile.BadZipFile, ValueError, OSError, EOFError):
            continue
    return None


def _7z(data: bytes, report: Report, budget: Budget, passwords: list[str],
        kind: str) -> Iterator[Child]:
    import py7zr
    from py7zr.io import BytesIOFactory

    def opened(pw: str | None) -> Any:
        return py7zr.SevenZipFile(io.BytesIO(data), password=pw)

    infos: list[Any] = []
    try:
        with opened(None) as z:
            needs = bool(z.needs_password())
            infos = z.list()
    except Exception as exc:  # noqa: BLE001 - py7zr raises many types on bad input
        if "password" not in (type(exc).__name__ + str(exc)).lower():
            report.notes.append(f"7z not readable: {type(exc).__name__}: {exc}")
            return
        needs = True  # the headers themselves are encrypted
    if infos and not _7z_fits(infos, len(data), budget, report):
        return
    hostile = {i.filename for i in infos if _traversal(i.filename)}
    if hostile and not needs:
        # py7zr refuses to extract any member of such an archive ("Specified path is
        # bad"), which would hide every member; libarchive reads them by stream, names
        # only reported
        yield from _libarchive(data, report, budget, passwords, kind)
        return
    # a wrong password is only found out by decompressing (py7zr's test() passes with
    # plain headers), so each candidate is tried by extracting, within the limits
    for pw in ([None] if not needs else passwords):
        factory = BytesIOFactory(budget.room() + 1)
        try:
            with opened(pw) as z:
                infos = infos or z.list()
                hostile = hostile or {i.filename for i in infos if _traversal(i.filename)}
                if not _7z_fits(infos, len(data), budget, report):
                    return
                files = [i for i in infos if not i.is_directory
                         and i.filename not in hostile][:budget.limits.max_count]
                z.extract(targets=[i.filename for i in files], factory=factory)
        except Exception as exc:  # noqa: BLE001 - wrong password, corrupt data
            if not needs:
                report.notes.append(f"7z not readable: {type(exc).__name__}: {exc}")
                return
            continue
        break
    else:
        report.encrypted = True
        report.add(Indicator("archive_encrypted", "medium",
                             "password-protected 7z archive; no password from the mail opens "
                             "it, members not analysed", "T1027"))
        return
    if needs:
        report.encrypted, report.password = True, pw
        report.add(Indicator("archive_encrypted", "high",
                             f"password-protected 7z archive; opened with the password {pw!r} "
                             "found in the mail", "T1027.013"))
    _check_names([i.filename for i in infos], report)
    for name in sorted(hostile):  # encrypted and named to leave the folder: py7zr refuses
        yield Child(name, b"", "7z member", "name leaves the extraction folder: not "
                    "extracted from the encrypted archive")
    for i in files:
        if not _admit(budget, report, i.filename):
            return
        try:
            prod = factory.get(i.filename)  # type: ignore[no-untyped-call]
        except KeyError:
            yield Child(i.filename, b"", "7z member", "not extracted")
            continue
        prod.seek(0)
        yield Child(i.filename, prod.read(), "7z member")


def _7z_fits(infos: list[Any], packed_total: int, budget: Budget, report: Report) -> bool:
    files = [i for i in infos if not i.is_directory]
    declared = sum(int(i.uncompressed or 0) for i in files)
    packed = sum(int(i.compressed or 0) for i in files) or packed_total
    if declared > budget.room() or (declared > CHUNK and declared / packed >
                                    budget.limits.max_ratio):
        _bomb(report, "(7z archive)", f"declares {declared} bytes from {packed} packed")
        return False
    return True


def _gzip(data: bytes, report: Report, budget: Budget, passwords: list[str],
          kind: str) -> Iterator[Child]:
    import zlib

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    room = budget.room()
    try:
        out = d.decompress(data, room + 1)
    except zlib.error as exc:
        report.notes.append(f"gzip not readable: {exc}")
        return
    if len(out) > room or (len(out) > CHUNK and len(out) / max(1, len(data)) >
                           budget.limits.max_ratio):
        _bomb(report, "(gzip content)", f"expands to more than {len(out)} bytes")
        return
    yield Child(report.name[:-3] if report.name.lower().endswith(".gz") else
                report.name + ".out", out, "gzip content")


def _iso(data: bytes, report: Report, budget: Budget, passwords: list[str],
         kind: str) -> Iterator[Child]:
    import pycdlib

    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pycdlib raises its own and struct errors
        report.notes.append(f"ISO not readable: {type(exc).__name__}: {exc}")
        return
    try:
        facet = ("udf_path" if iso.has_udf() else "joliet_path" if iso.has_joliet()
                 else "rr_path" if iso.has_rock_ridge() else "iso_path")
        names: list[str] = []
        for root, _dirs, fnames in iso.walk(**{facet: "/"}):
            names += [(root.rstrip("/") + "/" + f) for f in fnames]
        _check_names([n.lstrip("/") for n in names], report)
        for n in names:
            if not _admit(budget, report, n):
                return
            rec = iso.get_record(**{facet: n})
            size = int(rec.get_data_length())
            if size > budget.room():
                _bomb(report, n, f"is {size} bytes")
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, **{facet: n})
            shown = n.lstrip("/")
            if facet == "iso_path":
                shown = re.sub(r";\d+$", "", shown).rstrip(".")
            yield Child(shown, out.getvalue(), "disk image file")
    finally:
        iso.close()


def _libarchive(data: bytes, report: Report, budget: Budget, passwords: list[str],
                kind: str) -> Iterator[Child]:
    try:
        import libarchive
    except (ImportError, OSError) as exc:
        report.notes.append(f"{kind} not unpacked: libarchive is not available ({exc})")
        return
    try:
        with libarchive.memory_reader(data) as arc:
            names: list[str] = []
            for entry in arc:
                name = str(entry.pathname)
                names.append(name)
                if entry.isdir:
                    continue
                if getattr(entry, "is_encrypted", False) or (
                        hasattr(entry, "isencrypted") and entry.isencrypted):
                    report.encrypted = True
                    yield Child(name, b"", f"{kind} member", "encrypted: not read")
                    continue
                if not _admit(budget, report, name):
                    break
                room = budget.room()
                out = bytearray()
                over = False
                for block in entry.get_blocks():
                    out += block
                    if len(out) > room:
                        over = True
                        break
                if over:
                    _bomb(report, name, f"more than {room >> 20} MiB unpacked (limit)")
                    yield Child(name, b"", f"{kind} member", "over the unpack limits")
                    continue
                yield Child(name, bytes(out), f"{kind} member")
            _check_names(names, report)
            if not names:
                report.notes.append(f"{kind}: no member could be read (empty or truncated)")
    except libarchive.ArchiveError as exc:
        msg = str(exc)
        if "encrypt" in msg.lower() or "passphrase" in msg.lower():
            report.encrypted = True
            report.add(Indicator("archive_encrypted", "medium",
                                 f"encrypted {kind} archive; members not analysed", "T1027"))
        else:
            report.notes.append(f"{kind} not fully readable: {msg[:200]}")


def odf_objects(data: bytes, report: Report) -> None:
    """OpenDocument files keep embedded OLE objects as zip members (``Object 1``...)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist()[:1000]:
            if info.is_dir() or info.file_size > 64 << 20:
                continue
            with zf.open(info) as fh:
                head = fh.read(8)
            if head == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
                report.add(Indicator("ole_object", "medium",
                                     f"OpenDocument embeds an OLE object ({info.filename})",
                                     "T1559.001"))
                report.children.append(Child(info.filename.rsplit("/", 1)[-1] + ".ole",
                                             zf.read(info), "OpenDocument object"))
