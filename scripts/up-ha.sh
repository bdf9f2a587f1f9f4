#!/usr/bin/env bash
# The high-availability profile on this machine: every engine replicated (scripts/services.sh up
# --ha: Kafka ×3, PostgreSQL ×3 under Patroni behind HAProxy, Redis + Sentinel ×3, etcd ×3) and
# two of every Chat4All process, behind a gateway of its own (nginx, deploy/nginx/).
#   scripts/up-ha.sh          start everything, print the URLs, stop the Chat4All processes and
#                             the gateway on Ctrl-C (scripts/services.sh down --ha stops the engines)
# Clients use https://127.0.0.1:18443 (http://127.0.0.1:18088 redirects there; its CA is printed).
# API nodes listen on loopback only, 18001 and 18002; routers serve /health and /metrics on 18011
# and 18012, webhook workers on 18021 and 18022.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh up seaweedfs
./scripts/services.sh up --ha
eval "$(./scripts/services.sh env --ha | grep -v CHAT4ALL_HA_)"
mkdir -p .services/logs-ha
export CHAT4ALL_JWT_SECRET="${CHAT4ALL_JWT_SECRET:-$(cat .services/jwt-secret 2>/dev/null || (head -c 32 /dev/urandom | base64 | tee .services/jwt-secret))}"
export CHAT4ALL_DATA_DIR="${CHAT4ALL_DATA_DIR:-.services/data-ha}"
# the HA profile's own gateway: its own directory, ports and nodes, beside make up's
export CHAT4ALL_GATEWAY_DIR="${CHAT4ALL_GATEWAY_DIR:-.services/gateway-ha}"
export CHAT4ALL_GATEWAY_HTTPS_PORT="${CHAT4ALL_GATEWAY_HTTPS_PORT:-18443}" CHAT4ALL_GATEWAY_HTTP_PORT="${CHAT4ALL_GATEWAY_HTTP_PORT:-18088}"
export CHAT4ALL_GATEWAY_UPSTREAMS="127.0.0.1:18001 127.0.0.1:18002"
gateway="https://127.0.0.1:$CHAT4ALL_GATEWAY_HTTPS_PORT"
export CHAT4ALL_HOST=127.0.0.1 CHAT4ALL_PUBLIC_BASE_URL="${CHAT4ALL_PUBLIC_BASE_URL:-$gateway}"
.venv/bin/chat4all migrate

pids=()
stop() {
  trap - EXIT INT TERM
  echo "stopping Chat4All processes and the gateway"
  ./scripts/services.sh down nginx || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

start() {  # role port node
  CHAT4ALL_PORT="$2" CHAT4ALL_NODE_ID="$3" .venv/bin/chat4all serve "$1" >>".services/logs-ha/$3.log" 2>&1 &
  pids+=("$!")
}
start api 18001 api-1
start api 18002 api-2
start router 18011 router-1
start router 18012 router-2
start webhooks 18021 webhooks-1
start webhooks 18022 webhooks-2

for port in 18001 18002 18011 18012 18021 18022; do
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "port $port did not become ready; see .services/logs-ha" >&2; exit 1; }
done
./scripts/services.sh up nginx
ca="$(./scripts/services.sh env | sed -n "s/^export CHAT4ALL_GATEWAY_CA='\(.*\)'$/\1/p")"
curl -fsS --cacert "$ca" "$gateway/health/ready" >/dev/null || { echo "the gateway does not answer at $gateway" >&2; exit 1; }
cat <<MSG
Chat4All HA profile is up:
  API      $gateway   (Swagger UI: $gateway/api-docs; CA: $ca)
           balanced over http://127.0.0.1:18001 http://127.0.0.1:18002
  routers  http://127.0.0.1:18011  http://127.0.0.1:18012   (/health/ready, /metrics)
  webhooks http://127.0.0.1:18021  http://127.0.0.1:18022   (/health/ready, /metrics)
  engines  scripts/services.sh status --ha
  logs     .services/logs-ha/
Ctrl-C stops the Chat4All processes (scripts/services.sh down --ha stops the engines).
MSG
wait
