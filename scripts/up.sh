#!/usr/bin/env bash
# The production profile on this machine: the real servers, 2 API processes, 2 routers and a
# webhook worker.
#   scripts/up.sh          start everything, print the URLs, stop the Chat4All processes on Ctrl-C
# API nodes listen on 8081 and 8082, routers serve /health and /metrics on 8091 and 8092, the
# webhook worker on 8093.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/services.sh up postgres redis etcd kafka seaweedfs
eval "$(./scripts/services.sh env | grep -v CHAT4ALL_TEST_)"
export CHAT4ALL_JWT_SECRET="${CHAT4ALL_JWT_SECRET:-$(cat .services/jwt-secret 2>/dev/null || (head -c 32 /dev/urandom | base64 | tee .services/jwt-secret))}"
.venv/bin/chat4all migrate

pids=()
stop() {
  echo "stopping Chat4All processes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

mkdir -p .services/logs
start() {  # role port node
  CHAT4ALL_PORT="$2" CHAT4ALL_NODE_ID="$3" .venv/bin/chat4all serve "$1" >>".services/logs/$3.log" 2>&1 &
  pids+=("$!")
}
start api 8081 api-1
start api 8082 api-2
start router 8091 router-1
start router 8092 router-2
start webhooks 8093 webhooks-1

for port in 8081 8082 8091 8092 8093; do
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "port $port did not become ready; see .services/logs" >&2; exit 1; }
done
cat <<MSG
Chat4All production profile is up:
  API      http://127.0.0.1:8081  http://127.0.0.1:8082   (Swagger: /api-docs)
  routers  http://127.0.0.1:8091  http://127.0.0.1:8092   (/health/ready, /metrics)
  webhooks http://127.0.0.1:8093                          (/health/ready, /metrics)
  logs     .services/logs/
Ctrl-C stops the Chat4All processes (scripts/services.sh down stops the servers).
MSG
wait
