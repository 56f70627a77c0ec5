#!/usr/bin/env bash
# The whole test suite, as root on a fresh machine: set-up, generated files
# current, then every test (live kernel tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/sdxfer gen --check
exec .venv/bin/python -m pytest -q "$@"
