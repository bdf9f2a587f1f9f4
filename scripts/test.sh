#!/usr/bin/env bash
# Starts the real servers the suite needs, points the tests at them, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh up postgres redis etcd kafka seaweedfs prometheus jaeger alertmanager
# tests/web drive the web app in Debian's Chromium (Playwright is told its path; it downloads no browser)
command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
# only the test URLs: the suite decides per test which backends a server uses
eval "$(./scripts/services.sh env | grep CHAT4ALL_TEST_)"
export CHAT4ALL_TEST_POSTGRES_URL="${CHAT4ALL_TEST_POSTGRES_URL:-postgresql+asyncpg://chat4all:chat4all@127.0.0.1:5432/chat4all_test}"
exec .venv/bin/pytest -q "$@"
