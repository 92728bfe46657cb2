#!/usr/bin/env bash
# Headless Chromium and its driver for the report browser test (tests/e2e/test_report_browser.py).
# Debian's own packages, so selenium never downloads a browser or a driver. Idempotent: installs
# only what is missing; waits for another apt/dpkg to finish instead of failing on its lock.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-browser: ${missing[*]} missing and not root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "ensure-browser: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" fonts-dejavu-core
chromium --version
chromedriver --version
