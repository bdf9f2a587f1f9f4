#!/usr/bin/env bash
# Installs what tests/api/test_v2_live_openapi_clients.py needs to generate and check clients:
# Node.js and npm (Debian's, when missing) and the pinned packages of tests/clients (its lockfile).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi
cd tests/clients
if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
  npm ci --no-audit --no-fund
  touch node_modules/.installed
fi
