#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/serve/test_web_page.py).
# Playwright cannot download its own browsers here, so the tests drive /usr/bin/chromium; as root with
# apt-get, a missing one is installed, otherwise this says what to install and fails.
set -euo pipefail
CHROMIUM=${ZENREC_CHROMIUM:-/usr/bin/chromium}
log() { echo "ensure_chromium: $*" >&2; }

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "Chromium not found; installing Debian's chromium package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends chromium >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }
fi
if [ ! -x "$CHROMIUM" ]; then
    log "no Chromium at $CHROMIUM; install the 'chromium' package (apt-get install chromium)"
    exit 127
fi
