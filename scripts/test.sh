#!/usr/bin/env bash
# Set up and run the whole test suite: lint (ruff), types (mypy), then pytest. Extra arguments go to pytest.
# HOTLINE_TEST_DATABASE_URL=postgresql://... also runs the store tests on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff check"
.venv/bin/ruff check .
echo "[test] mypy"
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
