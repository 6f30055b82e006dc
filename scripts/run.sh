#!/usr/bin/env bash
# Set up, load the demo data once, and run the service with its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python run_hotline.py seed-demo
exec .venv/bin/python run_hotline.py serve "$@"
