#!/usr/bin/env bash
# The production profile on this machine: the real servers, 2 API processes, 2 routers and a
# webhook worker, behind the gateway (nginx, deploy/nginx/).
#   scripts/up.sh          start everything, print the URLs, stop the Chat4All processes and the
#                          gateway on Ctrl-C (scripts/services.sh down stops the servers)
# The API nodes listen on loopback only, 8101 and 8102; routers serve /health and /metrics on
# 8111 and 8112, the webhook worker on 8121. Clients use the gateway: https://127.0.0.1:8443
# (CA: `scripts/services.sh env` → CHAT4ALL_GATEWAY_CA), http://127.0.0.1:8088 redirects there.
# Other ports: CHAT4ALL_UP_API_PORTS, CHAT4ALL_UP_ROUTER_PORTS, CHAT4ALL_UP_WEBHOOKS_PORT,
# CHAT4ALL_GATEWAY_HTTPS_PORT, CHAT4ALL_GATEWAY_HTTP_PORT; the gateway's directory
# CHAT4ALL_GATEWAY_DIR, the processes' logs CHAT4ALL_UP_LOGS. CHAT4ALL_* settings already in the
# environment win over the servers' defaults from `scripts/services.sh env`.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a api_ports <<<"${CHAT4ALL_UP_API_PORTS:-8101 8102}"
read -r -a router_ports <<<"${CHAT4ALL_UP_ROUTER_PORTS:-8111 8112}"
webhooks_port="${CHAT4ALL_UP_WEBHOOKS_PORT:-8121}"
export CHAT4ALL_GATEWAY_HTTPS_PORT="${CHAT4ALL_GATEWAY_HTTPS_PORT:-8443}"
export CHAT4ALL_GATEWAY_HTTP_PORT="${CHAT4ALL_GATEWAY_HTTP_PORT:-8088}"
state="${CHAT4ALL_SERVICES_DIR:-.services}"
gateway="https://127.0.0.1:$CHAT4ALL_GATEWAY_HTTPS_PORT"

./scripts/services.sh up postgres redis etcd kafka seaweedfs
while read -r line; do  # export NAME='value', unless NAME is set already
  name=${line#export }; name=${name%%=*}
  [[ -n ${!name:-} ]] || eval "$line"
done < <(./scripts/services.sh env | grep -v CHAT4ALL_TEST_)
logs="${CHAT4ALL_UP_LOGS:-$state/logs}"
mkdir -p "$state" "$logs"
export CHAT4ALL_JWT_SECRET="${CHAT4ALL_JWT_SECRET:-$(cat "$state/jwt-secret" 2>/dev/null || (head -c 32 /dev/urandom | base64 | tee "$state/jwt-secret"))}"
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
  CHAT4ALL_PORT="$2" CHAT4ALL_NODE_ID="$3" .venv/bin/chat4all serve "$1" >>"$logs/$3.log" 2>&1 &
  pids+=("$!")
}
upstreams=()
for i in "${!api_ports[@]}"; do start api "${api_ports[$i]}" "api-$((i + 1))"; upstreams+=("127.0.0.1:${api_ports[$i]}"); done
for i in "${!router_ports[@]}"; do start router "${router_ports[$i]}" "router-$((i + 1))"; done
start webhooks "$webhooks_port" webhooks-1

for port in "${api_ports[@]}" "${router_ports[@]}" "$webhooks_port"; do
  for _ in $(seq 1 300); do  # 60 s: a busy machine imports slowly
    curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "port $port did not become ready; see $logs" >&2; exit 1; }
done
export CHAT4ALL_GATEWAY_UPSTREAMS="${upstreams[*]}"
./scripts/services.sh up nginx
ca="$(./scripts/services.sh env | sed -n "s/^export CHAT4ALL_GATEWAY_CA='\(.*\)'$/\1/p")"
curl -fsS --cacert "$ca" "$gateway/health/ready" >/dev/null || { echo "the gateway does not answer at $gateway" >&2; exit 1; }
cat <<MSG
Chat4All production profile is up:
  API      $gateway   (Swagger UI: $gateway/api-docs; CA: $ca)
           http://127.0.0.1:$CHAT4ALL_GATEWAY_HTTP_PORT redirects there; the gateway balances over ${upstreams[*]}
  routers  ${router_ports[*]/#/http://127.0.0.1:}   (/health/ready, /metrics)
  webhooks http://127.0.0.1:$webhooks_port   (/health/ready, /metrics)
  logs     $logs/, gateway: $(dirname "$(dirname "$ca")")/logs/
Ctrl-C stops the Chat4All processes and the gateway (scripts/services.sh down stops the servers).
MSG
wait
