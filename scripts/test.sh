#!/usr/bin/env bash
# Installs what the tests need (venv, Python packages, Debian's chromium for the browser tests) and runs them.
# Used by the README's quick start and by CI. Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq && DEBIAN_FRONTEND=noninteractive apt_get install -y -qq chromium >/dev/null
fi
[ -d .venv ] || python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
. .venv/bin/activate
pip install -q -r requirements-test.txt

ruff check .
ruff format --check .
python -m pytest "$@"

