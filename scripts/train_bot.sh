#!/usr/bin/env bash
# Train the Rasa model when the bot's training data or configuration changed.
# The model goes to bot/models/hotline.tar.gz; a stamp remembers what it was trained on.
set -euo pipefail
cd "$(dirname "$0")/../bot"
want=$(cat config.yml domain.yml data/*.yml jieba/* components/*.py components/*.yml | sha256sum | cut -c1-64)
if [[ -f models/hotline.tar.gz && -f models/.trained.sha256 && "$(cat models/.trained.sha256)" == "$want" ]]; then
  exit 0
fi
echo "[setup] training the bot (about four minutes on two cores)"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore
../.venv-rasa/bin/rasa train --fixed-model-name hotline --out models --quiet
echo "$want" > models/.trained.sha256
