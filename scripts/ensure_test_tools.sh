#!/usr/bin/env bash
# Install what the test suite needs beyond .venv: Debian's chromium (the real-browser report check).
# Idempotent; as root it installs with apt-get, otherwise it says what to run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[test-tools] installing chromium with apt-get (the report test renders the HTML report in it)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
    command -v chromium >/dev/null 2>&1 || { echo "[test-tools] chromium did not install" >&2; exit 1; }
else
    echo "[test-tools] chromium is missing and this is not root: run 'sudo apt-get install -y chromium'" >&2
    exit 1
fi
