#!/usr/bin/env bash
# Builds tidehunt's optional native EVTX flatten (native/evtxflat, Rust + PyO3) into
# src/tidehunt/ for the venv's Python. Offline: the crates come from Debian's packaged
# registry (/usr/share/cargo/registry: librust-pyo3-dev, -serde-json-dev, -ahash-0.7-dev), which
# this script installs when missing and this user may (root or password-less sudo).
# Without cargo or the crates it says why and exits 0: tidehunt then flattens in Python
# (same tables, slower ingest). TIDEHUNT_REQUIRE_NATIVE=1 makes any failure an error (CI).
#   usage: scripts/build-native.sh VENV_PYTHON
set -u
PY=${1:?usage: scripts/build-native.sh VENV_PYTHON}
case $PY in /*) ;; *) PY=$PWD/$PY ;; esac  # cargo runs pyo3's build script elsewhere
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRATE=$ROOT/native/evtxflat
REG=/usr/share/cargo/registry

fail() {
  echo "build-native: $*; ingest flattens in Python (same results, slower)" >&2
  if [ -n "${TIDEHUNT_REQUIRE_NATIVE:-}" ]; then
    echo "build-native: TIDEHUNT_REQUIRE_NATIVE is set, so this is an error" >&2
    exit 1
  fi
  exit 0
}

[ "${TIDEHUNT_NATIVE_FLATTEN:-1}" = 0 ] && fail "TIDEHUNT_NATIVE_FLATTEN=0"
CARGO=$(command -v cargo || true)
[ -z "$CARGO" ] && [ -x "$HOME/.cargo/bin/cargo" ] && CARGO=$HOME/.cargo/bin/cargo
[ -z "$CARGO" ] && fail "no cargo on PATH (install Rust >= 1.63 to build it)"

have_crates() { ls -d "$REG"/pyo3-0.17* "$REG"/serde_json-1.* "$REG"/ahash-0.7* >/dev/null 2>&1; }
if ! have_crates; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    fail "the Rust crates are not in $REG and this user cannot apt-get them"
  fi
  command -v apt-get >/dev/null 2>&1 || fail "no apt-get for the Debian Rust crates"
  echo "build-native: installing the Debian Rust crates (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get update -qq >/dev/null &&
    $SUDO apt-get install -y -qq --no-install-recommends \
      librust-pyo3-dev librust-serde-json-dev librust-itoa-dev librust-ahash-0.7-dev \
      >/dev/null; } ||
    fail "apt-get install of the librust-*-dev packages failed"
  have_crates || fail "the crates are still not in $REG"
fi

SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))') ||
  fail "cannot ask $PY for its extension suffix"
OUT=$ROOT/src/tidehunt/_evtxflat$SUFFIX
echo "build-native: cargo build --release (native/evtxflat)" >&2
# the lock file pins the versions Debian packages; a newer registry may need it refreshed
if ! (cd "$CRATE" && PYO3_PYTHON=$PY "$CARGO" build --release --quiet --locked 2>&1 ||
      { echo "build-native: retrying without the lock file's pins" >&2 &&
        PYO3_PYTHON=$PY "$CARGO" build --release --quiet 2>&1; }) >&2; then
  fail "cargo build failed (see above)"
fi
cp "$CRATE/target/release/lib_evtxflat.so" "$OUT.tmp" && mv "$OUT.tmp" "$OUT" ||
  fail "cannot copy the library to $OUT"
"$PY" -c 'from tidehunt import _evtxflat; print("build-native: built", _evtxflat.__file__)' >&2 ||
  { rm -f "$OUT"; fail "the built library does not import"; }
