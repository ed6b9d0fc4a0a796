#!/usr/bin/env bash
# Make sure Debian's chromium is present for the browser tests in tests/site.
# Installs it only when /usr/bin/chromium is missing; never downloads a
# browser through playwright.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

echo "ensure_chromium: /usr/bin/chromium not found, installing Debian's chromium" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x /usr/bin/chromium
echo "ensure_chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)" >&2
