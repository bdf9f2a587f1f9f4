#!/usr/bin/env bash
# The production profile on this machine, behind the gateway (nginx, deploy/nginx/):
#   scripts/up.sh        the single-node servers (scripts/services.sh up), 2 API processes,
#                        2 routers and a webhook worker; clients use https://127.0.0.1:8443
#   scripts/up.sh --ha   the HA profile: every engine replicated (scripts/services.sh up --ha:
#                        Kafka ×3, PostgreSQL ×3 under Patroni behind HAProxy, Redis + Sentinel ×3,
#                        etcd ×3) and two of every Chat4All process, behind a gateway of its own
#                        on https://127.0.0.1:18443, beside make up's
# Both print the URLs and stop the Chat4All processes and the gateway on Ctrl-C
# (scripts/services.sh down [--ha] stops the engines). The gateway's CA is in
# `scripts/services.sh env` (CHAT4ALL_GATEWAY_CA); its HTTP port redirects to HTTPS. The API
# nodes listen on loopback only; routers and webhook workers serve /health and /metrics.
# Other ports: CHAT4ALL_UP_API_PORTS, CHAT4ALL_UP_ROUTER_PORTS, CHAT4ALL_UP_WEBHOOKS_PORTS,
# CHAT4ALL_GATEWAY_HTTPS_PORT, CHAT4ALL_GATEWAY_HTTP_PORT; the gateway's directory
# CHAT4ALL_GATEWAY_DIR, the processes' logs CHAT4ALL_UP_LOGS. CHAT4ALL_* settings already in the
# environment win over the servers' defaults from `scripts/services.sh env`.
set -euo pipefail
cd "$(dirname "$0")/.."
ha=""
[[ ${1:-} == --ha ]] && ha="--ha"
state="${CHAT4ALL_SERVICES_DIR:-.services}"

api="8101 8102" routers="8111 8112" webhooks="8121" https=8443 http=8088 profile=production  # make up
if [[ -n $ha ]]; then  # make up-ha
  api="18001 18002" routers="18011 18012" webhooks="18021 18022" https=18443 http=18088 profile=HA
  export CHAT4ALL_GATEWAY_DIR="${CHAT4ALL_GATEWAY_DIR:-$state/gateway-ha}"
  export CHAT4ALL_DATA_DIR="${CHAT4ALL_DATA_DIR:-$state/data-ha}"
fi
read -r -a api_ports <<<"${CHAT4ALL_UP_API_PORTS:-$api}"
read -r -a router_ports <<<"${CHAT4ALL_UP_ROUTER_PORTS:-$routers}"
read -r -a webhooks_ports <<<"${CHAT4ALL_UP_WEBHOOKS_PORTS:-$webhooks}"
export CHAT4ALL_GATEWAY_HTTPS_PORT="${CHAT4ALL_GATEWAY_HTTPS_PORT:-$https}"
export CHAT4ALL_GATEWAY_HTTP_PORT="${CHAT4ALL_GATEWAY_HTTP_PORT:-$http}"
gateway="https://127.0.0.1:$CHAT4ALL_GATEWAY_HTTPS_PORT"

if [[ -n $ha ]]; then
  ./scripts/services.sh up seaweedfs
  ./scripts/services.sh up --ha
else
  ./scripts/services.sh up postgres redis etcd kafka seaweedfs
fi
while read -r line; do  # export NAME='value', unless NAME is set already
  name=${line#export }; name=${name%%=*}
  [[ -n ${!name:-} ]] || eval "$line"
done < <(./scripts/services.sh env $ha | grep -v -e CHAT4ALL_TEST_ -e CHAT4ALL_HA_)
logs="${CHAT4ALL_UP_LOGS:-$state/logs${ha:+-ha}}"
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
for i in "${!webhooks_ports[@]}"; do start webhooks "${webhooks_ports[$i]}" "webhooks-$((i + 1))"; done

for port in "${api_ports[@]}" "${router_ports[@]}" "${webhooks_ports[@]}"; do
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
Chat4All $profile profile is up:
  API      $gateway   (Swagger UI: $gateway/api-docs; CA: $ca)
           http://127.0.0.1:$CHAT4ALL_GATEWAY_HTTP_PORT redirects there; the gateway balances over ${upstreams[*]}
  routers  ${router_ports[*]/#/http://127.0.0.1:}   (/health/ready, /metrics)
  webhooks ${webhooks_ports[*]/#/http://127.0.0.1:}   (/health/ready, /metrics)
  engines  scripts/services.sh status $ha
  logs     $logs/, gateway: $(dirname "$(dirname "$ca")")/logs/
Ctrl-C stops the Chat4All processes and the gateway (scripts/services.sh down $ha stops the engines).
MSG
wait
