#!/usr/bin/env bash
# Set up everything the service and its tests need; safe to run again.
#   - Debian packages listed in scripts/debian-packages.txt (only the missing ones)
#   - the service's environment .venv from requirements.txt
#   - the bot's environment .venv-rasa from bot/requirements-rasa.txt (Rasa 3.6 on Python 3.11)
#   - a trained Rasa model when the bot's data changed (scripts/train_bot.sh)
# Each step is skipped when a stamp says its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
pip_quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }

# --- Debian packages -------------------------------------------------------
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/debian-packages.txt
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${HOTLINE_PYTHON:-$(command -v python3.11 || true)}
if [[ -z "$PYTHON" ]]; then
  echo "Python 3.11 is needed (apt-get install python3.11 python3.11-venv, or set HOTLINE_PYTHON)" >&2
  exit 1
fi

stamp_ok() { [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]; }
hash_of() { cat "$@" | sha256sum | cut -c1-64; }

# --- the service's environment ---------------------------------------------
want=$(hash_of requirements.txt)
if ! stamp_ok .venv/.requirements.sha256 "$want"; then
  log "creating .venv (service)"
  [[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | pip_quiet
  echo "$want" > .venv/.requirements.sha256
fi

# --- the bot's environment -------------------------------------------------
# Rasa 3.6.21 declares Python < 3.11 but runs on 3.11 with this pinned set of
# its dependencies (see bot/README.md); hence --no-deps and --ignore-requires-python.
want=$(hash_of bot/requirements-rasa.txt)
if ! stamp_ok .venv-rasa/.requirements.sha256 "$want"; then
  log "creating .venv-rasa (Rasa 3.6, about 2.8 GB; takes a few minutes the first time)"
  [[ -x .venv-rasa/bin/python ]] || "$PYTHON" -m venv .venv-rasa
  .venv-rasa/bin/pip install -q --disable-pip-version-check --no-deps -r bot/requirements-rasa.txt 2>&1 | pip_quiet
  .venv-rasa/bin/pip install -q --disable-pip-version-check --no-deps --ignore-requires-python \
    rasa==3.6.21 rasa-sdk==3.6.2 2>&1 | pip_quiet
  echo "$want" > .venv-rasa/.requirements.sha256
fi

if [[ -f scripts/train_bot.sh ]]; then
  bash scripts/train_bot.sh
fi
log "ready"
