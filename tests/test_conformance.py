"""Conventions a machine can check: registries complete, plugins concrete and documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from tidehunt import registry
from tidehunt.model.tables import TABLES


@pytest.mark.parametrize(("kind", "package"), [("sources", "tidehunt.sources"),
                                               ("renderers", "tidehunt.render"),
                                               ("analytics", "tidehunt.detect.analytics")])
def test_every_module_is_registered(kind, package):
    path = importlib.import_module(package).__path__
    modules = {f"{package}.{m.name}" for m in pkgutil.iter_modules(path)
               if not m.name.startswith("_") and m.name not in ("base", "sniff", "detector")}
    assert modules == {t.partition(":")[0] for t in registry.targets(kind).values()}


def test_sources_are_concrete_documented_and_named():
    for name, cls in registry.all_of("sources").items():
        assert name == cls.NAME
        assert not inspect.isabstract(cls), name
        assert cls.__doc__ and cls.__module__.rsplit(".", 1)[1] == name
        assert set(cls.WRITES) <= set(TABLES), name
        assert inspect.getdoc(importlib.import_module(cls.__module__))


def test_detectors_declare_reads():
    for name in registry.targets("detectors"):
        cls = registry.load("detectors", name)
        assert name == cls.NAME and set(cls.READS) <= set(TABLES)


def test_analytics_are_named_documented_and_have_unique_ids():
    seen = set()
    for name, cls in registry.all_of("analytics").items():
        assert name == cls.NAME and cls.__module__.rsplit(".", 1)[1] == name
        # an intel match has no technique of its own (the indicator's report has)
        assert cls.__doc__ and cls.META.description and (
            cls.META.techniques or getattr(cls, "NO_TECHNIQUE", "")), name
        assert set(cls.READS) <= set(TABLES), name
        assert cls.META.id.startswith("th-analytic-") and cls.META.id not in seen
        seen.add(cls.META.id)
    assert len(seen) == len(registry.targets("analytics"))


def test_renderers_have_render_and_name():
    for name in registry.targets("renderers"):
        mod = registry.load("renderers", name)
        assert name == mod.NAME and callable(mod.render) and mod.__doc__


def test_every_field_documented():
    for table in TABLES.values():
        assert table.doc
        for f in table.fields:
            assert f.doc, (table.name, f.name)


def test_unknown_plugin_is_a_clear_error():
    with pytest.raises(registry.RegistryError, match=r"known: .*evtx"):
        registry.load("sources", "nope")


def test_sniffers_never_raise_on_hostile_heads():
    """Sniffing runs on every evidence file: no reader may raise on any bytes (a sniffer
    that did made whole EVTX folders unreadable once)."""
    import random
    from pathlib import Path

    from tidehunt.sources.base import Artefact

    rng = random.Random(7)
    heads = [b"", b"\x00" * 64, b"ElfFile\x00" + bytes(rng.randrange(256) for _ in range(4000)),
             b'a,"b\rc",d\n', b"time,user,ip\r\n\x00\x01", b"ElfChnk,x\ry,z\n",
             b"{" * 3000, b"[" + b'"x",' * 900,
             bytes(rng.randrange(256) for _ in range(65536)), "\u202e,é,\n".encode()]
    art = Artefact("x", Path("/nonexistent"), "x")
    # claims see the analyst's mappings: one of each kind a reader may look for
    options = {"net_mapping": [{"table": "net_conn", "format": "csv", "columns": {
        "ts": "time", "src_ip": "src", "dst_ip": "dst"}}], "auth_mapping": {"user": "login"}}
    for name, cls in registry.all_of("sources").items():
        for h in heads:
            assert cls.sniff(art, h) in (True, False), name
            assert cls.claims(art, h, options) in (True, False), name
