#!/usr/bin/env bash
# The high-availability profile's engines on this machine, each member its own process, data dir
# and ports, all on 127.0.0.1 (called by `scripts/services.sh up|down|status|env --ha`):
#
#   etcd        3 members          clients 22379 22381 22383, peers 22380 22382 22384
#   postgres    3 nodes (Patroni)  postgres 25432-25434, Patroni REST 28008-28010, DCS: the etcd cluster
#   haproxy     in front of them   25000 -> the primary (Patroni REST /primary), 25001 -> replicas (/replica)
#   redis       master + 2         16379 16380 16381, Sentinels 16479 16480 16481 (master name chat4all)
#   kafka       3 KRaft nodes      brokers 29092-29094, controllers 29192-29194 (RF 3, min ISR 2)
#
#   scripts/services-ha.sh up [member...]     install what is missing, start, wait until ready (idempotent)
#   scripts/services-ha.sh down [member...]   stop what this script started
#   scripts/services-ha.sh status             one line per member
#   scripts/services-ha.sh env                `export CHAT4ALL_...` lines for the app
#   scripts/services-ha.sh pid MEMBER         pid of a member (e.g. kafka-2, patroni-1, postgres-1, redis-3)
#
# Members: etcd-{1,2,3} patroni-{1,2,3} haproxy redis-{1,2,3} sentinel-{1,2,3} kafka-{1,2,3};
# a group name (etcd, postgres, haproxy, redis, sentinel, kafka) means all of its members.
# `postgres-N` is the postmaster that Patroni N runs (for pid; it is started and stopped with patroni-N).
# Settings and timings follow what was tried on this kind of machine (docs/reliability.md).
set -euo pipefail

# shellcheck source=scripts/services.sh
source "$(dirname "${BASH_SOURCE[0]}")/services.sh"

HA_DIR="$STATE_DIR/ha"
# PostgreSQL's files must be reachable by user postgres, and its socket path short
HA_PG_ROOT="/var/lib/chat4all-services/$(echo "$STATE_DIR" | md5sum | cut -c1-12)/ha"
PATRONI_VENV="$HA_PG_ROOT/patroni-venv"
PATRONI_VERSION=4.1.5
HA_SCOPE=chat4all
PG_SUPER_PASSWORD=chat4all-super PG_REPL_PASSWORD=chat4all-repl PG_REWIND_PASSWORD=chat4all-rewind
HAPROXY_RW_PORT=25000 HAPROXY_RO_PORT=25001
REDIS_MASTER_NAME=chat4all
GROUPS_IN_ORDER=(etcd postgres haproxy redis sentinel kafka)

etcd_port() { echo $((22379 + 2 * ($1 - 1))); }
etcd_peer_port() { echo $((22380 + 2 * ($1 - 1))); }
pg_port() { echo $((25431 + $1)); }
patroni_port() { echo $((28007 + $1)); }
redis_port() { echo $((16378 + $1)); }
sentinel_port() { echo $((16478 + $1)); }
kafka_port() { echo $((29091 + $1)); }
kafka_controller_port() { echo $((29191 + $1)); }
etcd_endpoints() { echo "$HOST:$(etcd_port 1),$HOST:$(etcd_port 2),$HOST:$(etcd_port 3)"; }
kafka_bootstrap() { echo "$HOST:$(kafka_port 1),$HOST:$(kafka_port 2),$HOST:$(kafka_port 3)"; }
sentinels() { echo "$HOST:$(sentinel_port 1),$HOST:$(sentinel_port 2),$HOST:$(sentinel_port 3)"; }

members_of() {
  case $1 in
    etcd | redis | sentinel | kafka) echo "$1-1 $1-2 $1-3" ;;
    postgres | patroni) echo "patroni-1 patroni-2 patroni-3" ;;
    haproxy) echo haproxy ;;
    etcd-[123] | redis-[123] | sentinel-[123] | kafka-[123] | patroni-[123]) echo "$1" ;;
    postgres-[123]) echo "patroni-${1#postgres-}" ;;
    *) die "unknown HA member '$1' (known: ${GROUPS_IN_ORDER[*]}, or one member such as kafka-2)" ;;
  esac
}
member_dir() {
  case $1 in patroni-* | haproxy) echo "$HA_PG_ROOT/$1" ;; *) echo "$HA_DIR/$1" ;; esac
}
member_pidfile() {
  case $1 in
    postgres-*) echo "$(member_dir "patroni-${1#postgres-}")/data/postmaster.pid" ;;
    *) echo "$(member_dir "$1")/$1.pid" ;;
  esac
}
member_log() { echo "$(member_dir "$1")/$1.log"; }
member_pattern() {
  case $1 in
    kafka-*) echo kafka.Kafka ;; etcd-*) echo etcd ;; redis-*) echo redis-server ;; sentinel-*) echo sentinel ;;
    patroni-*) echo patroni ;; postgres-*) echo postgres ;; haproxy) echo haproxy ;;
  esac
}
member_port() {
  local n=${1##*-}
  case $1 in
    etcd-*) etcd_port "$n" ;; patroni-*) patroni_port "$n" ;; postgres-*) pg_port "$n" ;; redis-*) redis_port "$n" ;;
    sentinel-*) sentinel_port "$n" ;; kafka-*) kafka_port "$n" ;; haproxy) echo $HAPROXY_RW_PORT ;;
  esac
}
member_pid() {
  local f pid; f=$(member_pidfile "$1")
  [[ -s $f ]] || return 0
  pid=$(head -1 "$f" | tr -dc 0-9)
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(member_pattern "$1")" && echo "$pid" || true
}
member_running() { [[ -n $(member_pid "$1") ]]; }
ha_spawn() {  # ha_spawn MEMBER CMD...: detached, own session, output to the member's log
  local m=$1; shift
  mkdir -p "$(member_dir "$m")"
  setsid "$@" >>"$(member_log "$m")" 2>&1 </dev/null &
  echo $! >"$(member_pidfile "$m")"
}
ha_wait() {  # ha_wait MEMBER TIMEOUT CHECK...
  local m=$1 timeout=$2; shift 2
  poll_ready "$m" "$timeout" "member_running $m" "$(member_log "$m")" "$@"
}

# ---------------------------------------------------------------- etcd ×3
start_etcd_member() {
  local n=${1#etcd-} cluster="" i
  for i in 1 2 3; do cluster+="${cluster:+,}ha-etcd-$i=http://$HOST:$(etcd_peer_port $i)"; done
  local state=new; [[ -d $(member_dir "$1")/data/member ]] && state=existing
  ha_spawn "$1" etcd --name "ha-etcd-$n" --data-dir "$(member_dir "$1")/data" --logger zap --log-outputs stderr \
    --listen-client-urls "http://$HOST:$(etcd_port "$n")" --advertise-client-urls "http://$HOST:$(etcd_port "$n")" \
    --listen-peer-urls "http://$HOST:$(etcd_peer_port "$n")" --initial-advertise-peer-urls "http://$HOST:$(etcd_peer_port "$n")" \
    --initial-cluster "$cluster" --initial-cluster-state "$state" --initial-cluster-token chat4all-ha \
    --quota-backend-bytes $((1024 * 1024 * 1024))
}
ready_etcd_member() { ha_wait "$1" 60 etcdctl --endpoints="$HOST:$(etcd_port "${1#etcd-}")" --dial-timeout=1s endpoint health; }

# ---------------------------------------------------------------- PostgreSQL ×3 under Patroni, HAProxy in front
patroni_install() {
  [[ -x $PATRONI_VENV/bin/patroni && $(readlink -f "$PATRONI_VENV/bin/python3") == /usr/* ]] \
    && "$PATRONI_VENV/bin/patroni" --version 2>/dev/null | grep -q "$PATRONI_VERSION" && return 0
  log "patroni: installing patroni $PATRONI_VERSION into $PATRONI_VENV"
  mkdir -p "$HA_PG_ROOT"; chown postgres:postgres "$HA_PG_ROOT"
  # Debian's python: user postgres cannot reach an interpreter under root's home (pyenv)
  rm -rf "$PATRONI_VENV"; /usr/bin/python3 -m venv "$PATRONI_VENV"
  "$PATRONI_VENV/bin/pip" install -q --disable-pip-version-check "patroni[etcd3,psycopg3]==$PATRONI_VERSION"
}
patroni_config() {  # the YAML of node N (user postgres reads it)
  local n=$1 d; d=$(member_dir "patroni-$1")
  cat <<EOF
# generated by scripts/services-ha.sh
scope: $HA_SCOPE
namespace: /service/
name: pg$n
log: {level: INFO}
restapi:
  listen: $HOST:$(patroni_port "$n")
  connect_address: $HOST:$(patroni_port "$n")
etcd3:
  hosts: $(etcd_endpoints)
bootstrap:
  dcs:
    # ttl 20 is Patroni's minimum: a crashed leader's key expires within 20 s, then a sync
    # standby is promoted; a postgres that dies under a live Patroni is restarted in place
    ttl: 20
    loop_wait: 5
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    # a commit is acknowledged only once a synchronous standby has it: promotion loses nothing
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 200
        shared_buffers: 64MB
        wal_level: replica
        hot_standby: 'on'
        wal_log_hints: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 256MB
        plan_cache_mode: force_custom_plan
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: $HOST:$(pg_port "$n")
  connect_address: $HOST:$(pg_port "$n")
  data_dir: $d/data
  bin_dir: $(pg_bin)
  pgpass: $d/pgpass
  authentication:
    superuser: {username: postgres, password: $PG_SUPER_PASSWORD}
    replication: {username: replicator, password: $PG_REPL_PASSWORD}
    rewind: {username: rewinder, password: $PG_REWIND_PASSWORD}
  parameters:
    unix_socket_directories: '$d'
  pg_hba:
    - local all all peer
    - host replication replicator $HOST/32 scram-sha-256
    - host all all $HOST/32 scram-sha-256
EOF
}
start_patroni_member() {
  local m=$1 n=${1#patroni-} d; d=$(member_dir "$1")
  patroni_install
  mkdir -p "$d"; chown postgres:postgres "$HA_PG_ROOT" "$d"
  patroni_config "$n" >"$d/patroni.yml"; chown postgres:postgres "$d/patroni.yml"
  touch "$(member_log "$m")"; chown postgres:postgres "$(member_log "$m")"
  # setpriv execs (no forking helper), so the pid file holds Patroni's own pid
  (cd / && ha_spawn "$m" setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME="$HA_PG_ROOT" "$PATRONI_VENV/bin/patroni" "$d/patroni.yml")
}
patroni_state() { curl -fsS "http://$HOST:$(patroni_port "$1")/patroni" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
patroni_running() { [[ $(patroni_state "$1") == running ]]; }
ready_patroni_member() { ha_wait "$1" 180 patroni_running "${1#patroni-}"; }
leader_ok() { curl -fsS "http://$HOST:$(patroni_port "$1")/cluster" | grep -q '"role": *"leader"'; }
postgres_provision() {  # the app's role and databases, through HAProxy on the primary
  local sql db
  sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN CREATE ROLE $DB_USER; END IF;
END \$\$;
ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD';"
  for db in "${DATABASES[@]}"; do
    sql+=$'\n'"SELECT 'CREATE DATABASE $db OWNER $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\\gexec"
  done
  PGPASSWORD=$PG_SUPER_PASSWORD psql -X -q -v ON_ERROR_STOP=1 -h $HOST -p $HAPROXY_RW_PORT -U postgres -d postgres <<<"$sql" >/dev/null
}
haproxy_config() {
  local n
  cat <<EOF
# generated by scripts/services-ha.sh: PostgreSQL's primary and replicas as Patroni's REST API says
global
  maxconn 2000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 2s
  # a node that stops being what the port promises loses its sessions at once, so no client
  # keeps writing to an old primary
  default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
listen primary
  bind $HOST:$HAPROXY_RW_PORT
  option httpchk
  http-check send meth GET uri /primary
  http-check expect status 200
EOF
  for n in 1 2 3; do echo "  server pg$n $HOST:$(pg_port $n) check port $(patroni_port $n)"; done
  cat <<EOF
listen replicas
  bind $HOST:$HAPROXY_RO_PORT
  balance roundrobin
  option httpchk
  # a replica more than 16 MB of WAL behind is not served (bounded staleness of replica reads)
  http-check send meth GET uri /replica?lag=16MB
  http-check expect status 200
EOF
  for n in 1 2 3; do echo "  server pg$n $HOST:$(pg_port $n) check port $(patroni_port $n)"; done
}
start_haproxy_member() {
  local d; d=$(member_dir haproxy); mkdir -p "$d"
  haproxy_config >"$d/haproxy.cfg"
  haproxy -c -q -f "$d/haproxy.cfg" || die "haproxy: invalid $d/haproxy.cfg"
  ha_spawn haproxy haproxy -db -f "$d/haproxy.cfg"
}
primary_reachable() { PGPASSWORD=$PG_SUPER_PASSWORD psql -X -h $HOST -p $HAPROXY_RW_PORT -U postgres -d postgres -Atqc 'select not pg_is_in_recovery()' | grep -qx t; }
ready_haproxy_member() { ha_wait haproxy 120 primary_reachable; postgres_provision; }

# ---------------------------------------------------------------- Redis master + 2 replicas, 3 Sentinels
start_redis_member() {
  local m=$1 n=${1#redis-} d; d=$(member_dir "$1"); mkdir -p "$d"
  if [[ ! -f $d/redis.conf ]]; then  # Sentinel rewrites it on failover: written once, then kept
    {
      echo "bind $HOST"; echo "port $(redis_port "$n")"; echo "dir $d"; echo "save \"\""; echo "appendonly no"
      echo "replica-announce-ip $HOST"
      ((n == 1)) || echo "replicaof $HOST $(redis_port 1)"
    } >"$d/redis.conf"
  fi
  ha_spawn "$m" redis-server "$d/redis.conf" --daemonize no --logfile ""
}
ready_redis_member() { ha_wait "$1" 30 bash -c "[[ \$(redis-cli -h $HOST -p $(redis_port "${1#redis-}") ping) == PONG ]]"; }
start_sentinel_member() {
  local m=$1 n=${1#sentinel-} d; d=$(member_dir "$1"); mkdir -p "$d"
  if [[ ! -f $d/sentinel.conf ]]; then  # Sentinel rewrites its own config: written once, then kept
    cat >"$d/sentinel.conf" <<EOF
bind $HOST
port $(sentinel_port "$n")
dir $d
sentinel announce-ip $HOST
sentinel monitor $REDIS_MASTER_NAME $HOST $(redis_port 1) 2
sentinel down-after-milliseconds $REDIS_MASTER_NAME 5000
sentinel failover-timeout $REDIS_MASTER_NAME 15000
sentinel parallel-syncs $REDIS_MASTER_NAME 1
EOF
  fi
  ha_spawn "$m" redis-sentinel "$d/sentinel.conf" --daemonize no --logfile ""
}
sentinel_ok() {
  redis-cli -h $HOST -p "$(sentinel_port "$1")" sentinel ckquorum $REDIS_MASTER_NAME | grep -q '^OK'
}
ready_sentinel_member() { ha_wait "$1" 60 sentinel_ok "${1#sentinel-}"; }

# ---------------------------------------------------------------- Kafka ×3 (KRaft, combined broker+controller)
kafka_ha_properties() {
  local n=$1 d; d=$(member_dir "kafka-$1")
  cat <<EOF
# generated by scripts/services-ha.sh: node $n of 3, KRaft broker+controller
process.roles=broker,controller
node.id=$n
controller.quorum.voters=1@$HOST:$(kafka_controller_port 1),2@$HOST:$(kafka_controller_port 2),3@$HOST:$(kafka_controller_port 3)
listeners=PLAINTEXT://$HOST:$(kafka_port "$n"),CONTROLLER://$HOST:$(kafka_controller_port "$n")
advertised.listeners=PLAINTEXT://$HOST:$(kafka_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
num.partitions=8
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
# a dead broker is fenced after 3 s instead of 9: produce stalls 6-7.5 s instead of 12-14
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.retention.bytes=268435456
log.segment.bytes=67108864
EOF
}
start_kafka_member() {
  local m=$1 n=${1#kafka-} d; d=$(member_dir "$1"); mkdir -p "$d"
  kafka_libs
  kafka_ha_properties "$n" >"$d/server.properties"
  if [[ ! -f $d/data/meta.properties ]]; then
    [[ -s $HA_DIR/kafka-cluster.id ]] || kafka_java WARN kafka.tools.StorageTool random-uuid >"$HA_DIR/kafka-cluster.id"
    kafka_java WARN kafka.tools.StorageTool format --ignore-formatted -t "$(cat "$HA_DIR/kafka-cluster.id")" \
      -c "$d/server.properties" >>"$(member_log "$m")" 2>&1 || die "$m: storage format failed"
  fi
  ha_spawn "$m" java -Xms192m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$ROOT/deploy/kafka/log4j.properties" -Dkafka.root.level=INFO \
    -Dkafka.logs.dir="$d" -cp "$(svc_dir kafka)/libs/*" kafka.Kafka "$d/server.properties"
}
kafka_brokers_listed() {  # Metadata v4: how many brokers this one lists
  python3 - "$HOST" "$1" <<'EOF'
import socket, struct, sys
cid = b"chat4all-services"
req = struct.pack(">hhih", 3, 4, 1, len(cid)) + cid + struct.pack(">ib", -1, 0)
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    s.sendall(struct.pack(">i", len(req)) + req)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(1)
        buf += chunk
print(struct.unpack(">iii", buf[4:16])[2])
EOF
}
kafka_cluster_ok() { [[ $(kafka_brokers_listed "$(kafka_port "$1")") == 3 ]]; }
ready_kafka_member() { ha_wait "$1" 120 kafka_cluster_ok "${1#kafka-}"; }

# ---------------------------------------------------------------- commands
packages_for_ha() { echo postgresql etcd-server etcd-client redis-server redis-sentinel haproxy python3-venv; }
ha_ensure_packages() {
  ensure_packages kafka
  local missing=() p
  for p in curl $(packages_for_ha); do installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  local own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  [[ -n $own_policy ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get failed (exit $rc)"
  # Debian starts its own redis-sentinel/haproxy on default ports only through systemd, which is
  # kept from doing so above; nothing of theirs listens on ours
}
kind_of() { echo "${1%-[123]}"; }
ha_up() {
  local members=() g m t0=$SECONDS
  for g in "$@"; do for m in $(members_of "$g"); do members+=("$m"); done; done
  ha_ensure_packages
  mkdir -p "$HA_DIR" "$HA_PG_ROOT"
  # start every member first (a cluster needs its peers to elect), then wait for each
  for m in "${members[@]}"; do
    if member_running "$m"; then continue; fi
    log "$m: starting"
    "start_$(kind_of "$m")_member" "$m" 9>&-
  done
  for m in "${members[@]}"; do
    "ready_$(kind_of "$m")_member" "$m"
    log "$m: ready on $HOST:$(member_port "$m")"
  done
  log "up --ha: ${members[*]} ready in $((SECONDS - t0))s"
}
ha_down() {
  local members=() g m i pid
  for g in "$@"; do for m in $(members_of "$g"); do members+=("$m"); done; done
  for ((i = ${#members[@]} - 1; i >= 0; i--)); do
    m=${members[i]}; pid=$(member_pid "$m")
    [[ -n $pid ]] || continue
    log "$m: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while pid_alive "$pid"; do
      if ((SECONDS >= deadline)); then kill -KILL "$pid" || true; fi
      sleep 0.2
    done
    rm -f "$(member_pidfile "$m")"
  done
}
ha_status() {
  local g m pid
  for g in "${GROUPS_IN_ORDER[@]}"; do
    for m in $(members_of "$g"); do
      pid=$(member_pid "$m")
      printf '%-11s %-22s %s\n' "$m" "$([[ -n $pid ]] && echo "running (pid $pid)" || echo stopped)" "$HOST:$(member_port "$m")"
    done
  done
}
ha_env() {
  local pg="postgresql+asyncpg://$DB_USER:$DB_PASSWORD@$HOST"
  local s3="endpoint=http://$HOST:$S3_PORT&access_key=$S3_ACCESS_KEY&secret_key=$S3_SECRET_KEY&region=us-east-1"
  cat <<EOF
export CHAT4ALL_DATABASE_URL='$pg:$HAPROXY_RW_PORT/chat4all'
export CHAT4ALL_DATABASE_READ_URL='$pg:$HAPROXY_RO_PORT/chat4all'
export CHAT4ALL_EVENT_LOG_URL='kafka://$(kafka_bootstrap)'
export CHAT4ALL_LOG_REPLICATION_FACTOR='3'
export CHAT4ALL_LOG_MIN_INSYNC_REPLICAS='2'
export CHAT4ALL_PRESENCE_URL='redis+sentinel://$(sentinels)/$REDIS_MASTER_NAME/0'
export CHAT4ALL_METADATA_URL='etcd://$(etcd_endpoints)'
export CHAT4ALL_BLOB_URL='s3://${S3_BUCKETS[0]}?$s3'
export CHAT4ALL_HA_POSTGRES_ADMIN_URL='postgresql://postgres:$PG_SUPER_PASSWORD@$HOST:$HAPROXY_RW_PORT/postgres'
export CHAT4ALL_HA_PATRONI_URLS='http://$HOST:$(patroni_port 1),http://$HOST:$(patroni_port 2),http://$HOST:$(patroni_port 3)'
EOF
}

ha_main() {
  local cmd=${1:-}; shift || true
  case $cmd in
    up | down)
      (($#)) || set -- "${GROUPS_IN_ORDER[@]}"
      lock_state; "ha_$cmd" "$@" ;;
    status) ha_status ;;
    env) ha_env ;;
    pid) (($# == 1)) || die "usage: $0 pid MEMBER"; member_pid "$1" ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; [[ $cmd == -h || $cmd == --help || $cmd == help ]] || exit 2 ;;
  esac
}
ha_main "$@"
