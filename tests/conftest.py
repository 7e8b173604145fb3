"""Shared fixtures: corpus access, an offline guard, isolated cache and data dirs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SIGMA_DIRS = ("rules", "rules-threat-hunting", "rules-emerging-threats", "rules-dfir",
              "rules-placeholder", "rules-compliance")


def corpus_path(rel: str = "") -> Path:
    """A path in ../shared/corpus; skips (or fails in CI) when the corpus is absent."""
    if not CORPUS.is_dir():
        if os.environ.get("TIDEHUNT_REQUIRE_CORPUS"):
            pytest.fail(f"{CORPUS} is missing but TIDEHUNT_REQUIRE_CORPUS is set")
        pytest.skip(f"../shared/corpus not present ({CORPUS}); corpus tests skipped")
    return CORPUS / rel


@pytest.fixture
def native():
    """The native flatten module; skips when it is not built (fails when
    TIDEHUNT_REQUIRE_NATIVE is set, as CI sets it on a machine with cargo)."""
    from tidehunt.sources._wincolumnar import native_flatten

    mod = native_flatten()
    if mod is None:
        why = ("the native flatten is not built or is switched off (scripts/build-native.sh "
               "builds it where cargo and the Debian Rust crates are at hand)")
        if os.environ.get("TIDEHUNT_REQUIRE_NATIVE"):
            pytest.fail(why + ", but TIDEHUNT_REQUIRE_NATIVE is set")
        pytest.skip(why)
    return mod


@pytest.fixture
def corpus():
    """Function returning a corpus path (skips when the corpus is absent)."""
    return corpus_path


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory):
    """Plan cache and rule-pack store live in the test session's temp dir."""
    cache = tmp_path_factory.mktemp("cache")
    data = tmp_path_factory.mktemp("data")
    old = {k: os.environ.get(k) for k in ("TIDEHUNT_CACHE_DIR", "TIDEHUNT_DATA_DIR")}
    os.environ["TIDEHUNT_CACHE_DIR"] = str(cache)
    os.environ["TIDEHUNT_DATA_DIR"] = str(data)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing in the tests may reach beyond this machine."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        local = isinstance(host, str) and (host.startswith("127.") or host in ("::1",
                                                                                "localhost"))
        if not local and self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"test tried to reach {address}: tests run offline")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def ctx():
    """A fresh RunContext."""
    from tidehunt.context import RunContext

    return RunContext()


@pytest.fixture(scope="session")
def sigmahq_plan():
    """Every SigmaHQ rule in the corpus, compiled once per session."""
    from tidehunt.detect.sigma.loader import load_plan

    base = corpus_path("sigma")
    return load_plan([base / d for d in SIGMA_DIRS])
