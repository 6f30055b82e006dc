#!/usr/bin/env bash
# Set up, load the demo data once, and run the service with its embedded defaults: the demo.
# Its staff share a public password, so seed-demo refuses a production database
# ([service] environment = production) and one that has staff of its own (made by init or adduser);
# a real installation starts with `run_hotline.py init` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python run_hotline.py seed-demo
exec .venv/bin/python run_hotline.py serve "$@"
