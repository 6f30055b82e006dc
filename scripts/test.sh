#!/usr/bin/env bash
# Set up and run the whole test suite. Extra arguments go to pytest.
# HOTLINE_TEST_DATABASE_URL=postgresql://... also runs the store tests on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
