#!/usr/bin/env bash
# Debian's chromium for the HTML report test (tests/unit/test_html_report.py).
# Installs it when missing and this user may (root or password-less sudo); otherwise says
# why and leaves the test to skip (or, in CI, to fail with the same reason).
set -u
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "install-chromium: not root and no password-less sudo; the HTML browser test will skip" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get (not Debian); install chromium yourself" >&2
  exit 0
fi
echo "install-chromium: installing Debian chromium (once) for the HTML report test" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && \
  $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null || \
  echo "install-chromium: apt-get install chromium failed; the HTML browser test will skip" >&2
exit 0
