"""Load Sigma rule packs (folders, YAML files, .zip or .tar.gz archives) into a cached Plan.

The cache key is the SHA-256 of every rule file's path and bytes plus the plan, tidehunt
and pySigma versions, so a changed rule, a new tidehunt or a new pySigma recompiles, and
nothing else does. Cold compilation is spread over worker processes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tidehunt import __version__
from tidehunt.detect.sigma.plan import PLAN_VERSION, Plan, build
from tidehunt.errors import ConfigError

log = logging.getLogger("tidehunt.sigma")

MAX_RULE_BYTES = 4 << 20
MAX_ARCHIVE_BYTES = 512 << 20
MAX_ARCHIVE_MEMBERS = 100_000
PARALLEL_MIN_FILES = 300


@dataclass(frozen=True, slots=True)
class RuleFile:
    """One YAML file's bytes and where it came from."""

    display: str
    data: bytes


def _is_yaml(name: str) -> bool:
    return name.lower().endswith((".yml", ".yaml"))


def rule_files(path: str | os.PathLike[str]) -> list[RuleFile]:
    """Every rule YAML under a folder, a single YAML file, or members of an archive.

    Raises:
        ConfigError: the path is missing or is none of these.
    """
    p = Path(path)
    if p.is_dir():
        out = []
        for f in sorted(p.rglob("*")):
            if f.is_file() and _is_yaml(f.name) and not any(
                    part.startswith(".") for part in f.relative_to(p).parts):
                out.append(RuleFile(str(f), f.read_bytes()))
        return out
    if not p.is_file():
        raise ConfigError(f"{path}: no such rule folder, file or archive")
    if _is_yaml(p.name):
        return [RuleFile(str(p), p.read_bytes())]
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        return _zip_members(p)
    if tarfile.is_tarfile(p):
        return _tar_members(p)
    raise ConfigError(f"{path}: not a rule folder, .yml file, .zip or .tar.gz archive")


def _zip_members(p: Path) -> list[RuleFile]:
    out: list[RuleFile] = []
    total = 0
    try:
        with zipfile.ZipFile(p) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir() and _is_yaml(i.filename)]
            if len(infos) > MAX_ARCHIVE_MEMBERS:
                raise ConfigError(f"{p}: more than {MAX_ARCHIVE_MEMBERS} rule files")
            for info in sorted(infos, key=lambda i: i.filename):
                if info.file_size > MAX_RULE_BYTES:
                    log.warning("%s!%s: larger than %d bytes; not loaded", p, info.filename,
                                MAX_RULE_BYTES)
                    continue
                data = zf.open(info).read(MAX_RULE_BYTES + 1)[:MAX_RULE_BYTES]
                total += len(data)
                if total > MAX_ARCHIVE_BYTES:
                    raise ConfigError(f"{p}: rule archive larger than {MAX_ARCHIVE_BYTES} bytes")
                out.append(RuleFile(f"{p}!{info.filename}", data))
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"{p}: damaged zip archive: {exc}") from exc
    return out


def _tar_members(p: Path) -> list[RuleFile]:
    out: list[RuleFile] = []
    total = 0
    try:
        with tarfile.open(p) as tf:
            for m in tf:
                if not (m.isfile() and _is_yaml(m.name)):
                    continue
                if m.size > MAX_RULE_BYTES:
                    log.warning("%s!%s: larger than %d bytes; not loaded", p, m.name,
                                MAX_RULE_BYTES)
                    continue
                fh = tf.extractfile(m)
                if fh is None:
                    continue
                data = fh.read(MAX_RULE_BYTES)
                total += len(data)
                if total > MAX_ARCHIVE_BYTES or len(out) >= MAX_ARCHIVE_MEMBERS:
                    raise ConfigError(f"{p}: rule archive over the size or count limit")
                out.append(RuleFile(f"{p}!{m.name}", data))
    except tarfile.TarError as exc:
        raise ConfigError(f"{p}: damaged tar archive: {exc}") from exc
    out.sort(key=lambda r: r.display)
    return out


def cache_dir() -> Path:
    """Where compiled plans are kept (``TIDEHUNT_CACHE_DIR`` overrides)."""
    env = os.environ.get("TIDEHUNT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("tidehunt"))


def _pysigma_version() -> str:
    from importlib.metadata import version

    return version("pysigma")


def plan_key(files: Sequence[RuleFile]) -> str:
    """Content hash of a rule set for the plan cache."""
    h = hashlib.sha256(f"{PLAN_VERSION}|{__version__}|{_pysigma_version()}".encode())
    for f in files:
        h.update(b"\x00" + f.display.encode() + b"\x01" + hashlib.sha256(f.data).digest())
    return h.hexdigest()


def _compile_chunk(chunk: list[tuple[str, bytes]]) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, str]]]:
    from tidehunt.detect.sigma.compile import compile_text

    rules: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for display, data in chunk:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            errors.append({"path": display, "id": "", "title": "",
                           "reason": "not UTF-8 text"})
            continue
        r, e = compile_text(text, display)
        rules += r
        errors += e
    return rules, errors


def newest_date(rules: Iterable[dict[str, Any]]) -> str:
    """Newest ``date``/``modified`` of a rule set (its content date), ISO or ''."""
    best = ""
    for r in rules:
        for k in ("modified", "date"):
            v = (r.get(k) or "")[:10].replace("/", "-")
            if len(v) == 10 and v > best:
                try:
                    date.fromisoformat(v)
                except ValueError:
                    continue
                best = v
    return best


def load_plan(paths: Sequence[str | os.PathLike[str]], *, workers: int | None = None,
              use_cache: bool = True,
              on_progress: Callable[[str, int, int | None], None] | None = None) -> Plan:
    """Load rule packs into a Plan (from the cache when the content is unchanged)."""
    sources: list[dict[str, Any]] = []
    files: list[RuleFile] = []
    for p in paths:
        fs = rule_files(p)
        h = hashlib.sha256()
        for f in fs:
            h.update(hashlib.sha256(f.data).digest())
        sources.append({"path": str(p), "files": len(fs), "sha256": h.hexdigest()})
        files += fs
    key = plan_key(files)
    cpath = cache_dir() / "sigma-plans" / f"{key}.json"
    if use_cache and cpath.is_file():
        try:
            cached = Plan.from_json(cpath.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable plan cache %s: %s", cpath, exc)
            cached = None
        if cached is not None:
            log.info("rule plan loaded from cache %s", cpath)
            return cached
    chunks = [[(f.display, f.data) for f in files[i:i + 100]] for i in range(0, len(files), 100)]
    compiled: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    workers = workers or min(2, os.cpu_count() or 1)
    done = 0
    if on_progress:
        on_progress("rules", 0, len(files))
    if workers > 1 and len(files) >= PARALLEL_MIN_FILES:
        mp = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp) as pool:
            for (r, e), chunk in zip(pool.map(_compile_chunk, chunks), chunks, strict=True):
                compiled += r
                errors += e
                done += len(chunk)
                if on_progress:
                    on_progress("rules", done, len(files))
    else:
        for chunk in chunks:
            r, e = _compile_chunk(chunk)
            compiled += r
            errors += e
            done += len(chunk)
            if on_progress:
                on_progress("rules", done, len(files))
    for s in sources:
        s["content_date"] = newest_date(r for r in compiled
                                        if r["path"].startswith(s["path"]))
    plan = build(key, compiled, errors, sources)
    if use_cache:
        try:
            cpath.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cpath.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(plan.to_json())
            Path(tmp).replace(cpath)
        except OSError as exc:
            log.warning("cannot write plan cache %s: %s", cpath, exc)
    return plan


__all__ = ["RuleFile", "io", "load_plan", "newest_date", "rule_files"]
