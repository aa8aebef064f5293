#!/usr/bin/env bash
# Install the headless browser the UI tests drive: Debian's chromium + chromedriver.
# Idempotent: does nothing when both binaries are already there.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [[ -x $CHROMIUM && -x $CHROMEDRIVER ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install_browser: chromium/chromedriver missing. Fix: sudo apt-get install -y --no-install-recommends chromium chromium-driver" >&2
  exit 1
fi
echo "==> installing chromium + chromium-driver (Debian packages)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when apt does not know the packages yet (a fresh machine).
if ! apt-cache show chromium chromium-driver >/dev/null 2>&1; then
  apt-get update -q
fi
apt-get install -y -q --no-install-recommends chromium chromium-driver
echo "==> browser install took $(( $(date +%s) - start )) s ($("$CHROMIUM" --version 2>/dev/null || echo chromium))"
