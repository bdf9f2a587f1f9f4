#!/usr/bin/env bash
# The rules the code keeps (docs/architecture.md, "Enforced rules"); any finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "ruff check src tests/fakes tests/services"
$BIN/ruff check src tests/fakes tests/services
echo "mypy src"
$BIN/mypy src
echo "lint-imports"
$BIN/lint-imports --no-cache
