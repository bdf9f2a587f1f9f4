#!/usr/bin/env bash
# The bench's load against Matrix Synapse on this machine: the comparison of docs/performance.md,
# "Synapse on the same box". Installs Synapse (PyPI) into its own venv once, writes a homeserver
# config (server_name localhost, 127.0.0.1 only, rate limits lifted, registration by shared
# secret), starts it, runs `python -m chat4all.bench.synapse`, stops it. Leaves nothing running.
#
#   scripts/synapse-bench.sh [--postgres] [--rate R] [--duration S] [--rooms N] [--drain S]
#                            [--ramp S] [--warmup S] [--port P] [--out DIR]
#   scripts/synapse-bench.sh --install-only
#
#   --postgres   Synapse on the PostgreSQL of scripts/services.sh (started if needed), in a
#                database of its own that this script creates and drops; default: SQLite.
#   --port P     first port to try (default 18448; the next free one above it is taken).
#   --out DIR    result.json and chart.png (default bench-out/synapse-<db>-<rate>).
#
# State: ${SYNAPSE_BENCH_DIR:-${CHAT4ALL_SERVICES_DIR:-<repo>/.services}/synapse} (venv, the last
# run's config, data and log). SYNAPSE_VERSION (default 1.163.*) pins the release. The load runs in the project's venv
# (make .venv first), or the Python named by BENCH_PYTHON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$(realpath -m "${SYNAPSE_BENCH_DIR:-${CHAT4ALL_SERVICES_DIR:-$ROOT/.services}/synapse}")"
VENV="$STATE_DIR/venv"
RUN_DIR="$STATE_DIR/run"
SYNAPSE_VERSION="${SYNAPSE_VERSION:-1.163.*}"
BENCH_PYTHON="${BENCH_PYTHON:-$ROOT/.venv/bin/python}"
HOST=127.0.0.1
PG_PORT=5432 DB_USER=chat4all DB_PASSWORD=chat4all  # the shared server of scripts/services.sh

log() { printf '[synapse-bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

postgres=0 install_only=0 rate=20 duration=20 rooms=100 drain=30 ramp=0 warmup=0 port=18448 out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --postgres) postgres=1 ;;
    --install-only) install_only=1 ;;
    --rate) rate=$2; shift ;;
    --duration) duration=$2; shift ;;
    --rooms) rooms=$2; shift ;;
    --drain) drain=$2; shift ;;
    --ramp) ramp=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --port) port=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

# ---------------------------------------------------------------- install (once per version)
install() {
  local stamp="$VENV/.installed-${SYNAPSE_VERSION//[^0-9A-Za-z.]/_}"
  [[ -f $stamp ]] && return 0
  log "installing matrix-synapse $SYNAPSE_VERSION into $VENV (a minute or two, once)"
  mkdir -p "$STATE_DIR"
  [[ -x $VENV/bin/python ]] || "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "matrix-synapse[postgres]==$SYNAPSE_VERSION"
  rm -f "$VENV"/.installed-* && touch "$stamp"
}
install
version=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("matrix-synapse"))')
log "matrix-synapse $version"
[[ $install_only == 1 ]] && exit 0
[[ -x $BENCH_PYTHON ]] || die "no $BENCH_PYTHON: make the project's venv first (make test-fast) or set BENCH_PYTHON"

# ---------------------------------------------------------------- the last run's leftovers
stop_synapse() {  # by the pid file of our run directory, and only a Synapse process
  local pid
  [[ -s $RUN_DIR/synapse.pid ]] || return 0
  pid=$(tr -dc 0-9 <"$RUN_DIR/synapse.pid")
  if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$RUN_DIR/homeserver.yaml"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do [[ -d /proc/$pid ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || break; sleep 0.1; done
    [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/synapse.pid"
}
database=""
drop_database() {
  [[ -n $database ]] || return 0
  PGPASSWORD=$DB_PASSWORD psql -X -q -h $HOST -p $PG_PORT -U $DB_USER -d postgres \
    -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null || log "could not drop database $database"
  database=""
}
cleanup() { stop_synapse; drop_database; }
stop_synapse
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }
for _ in $(seq 1 50); do port_open "$port" || break; port=$((port + 1)); done
port_open "$port" && die "no free port from $((port - 50)) to $port"

# ---------------------------------------------------------------- the database
if [[ $postgres == 1 ]]; then
  "$ROOT/scripts/services.sh" up postgres >/dev/null
  database="synapse_bench_$(date +%s)_$$"
  # Synapse wants a C collation (docs/postgres.md of Synapse): template0 with C locale
  PGPASSWORD=$DB_PASSWORD psql -X -q -v ON_ERROR_STOP=1 -h $HOST -p $PG_PORT -U $DB_USER -d postgres \
    -c "CREATE DATABASE \"$database\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
  db_label="postgres, database $database"
  db_config="database:
  name: psycopg2
  args:
    user: $DB_USER
    password: $DB_PASSWORD
    dbname: $database
    host: $HOST
    port: $PG_PORT
    cp_min: 5
    cp_max: 10"
else
  db_label=sqlite
  db_config="database:
  name: sqlite3
  args:
    database: $RUN_DIR/homeserver.db"
fi

# ---------------------------------------------------------------- the homeserver config
secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
lifted="{per_second: 100000, burst_count: 100000}"  # a limit no bench rate reaches
cat >"$RUN_DIR/homeserver.yaml" <<EOF
# written by scripts/synapse-bench.sh for one run
server_name: localhost
pid_file: $RUN_DIR/homeserver.pid
listeners:
  - port: $port
    bind_addresses: ["$HOST"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
$db_config
log_config: $RUN_DIR/log.yaml
media_store_path: $RUN_DIR/media
signing_key_path: $RUN_DIR/signing.key
registration_shared_secret: "$secret"
enable_registration: false
bcrypt_rounds: 4
report_stats: false
enable_metrics: false
trusted_key_servers: []
suppress_key_server_warning: true
# not part of the load (the Chat4All bench measures none either)
presence:
  enabled: false
url_preview_enabled: false
# rate limits lifted: the run measures the pipeline, as the Chat4All bench does with its own
rc_message: $lifted
rc_registration: $lifted
rc_login:
  address: $lifted
  account: $lifted
  failed_attempts: $lifted
rc_joins:
  local: $lifted
  remote: $lifted
rc_joins_per_room: $lifted
rc_invites:
  per_room: $lifted
  per_user: $lifted
  per_issuer: $lifted
rc_room_creation: $lifted
rc_presence:
  per_user: $lifted
EOF
cat >"$RUN_DIR/log.yaml" <<EOF
version: 1
formatters:
  plain:
    format: "%(asctime)s %(name)s %(levelname)s %(message)s"
handlers:
  file:
    class: logging.FileHandler
    filename: $RUN_DIR/homeserver.log
    formatter: plain
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
EOF
"$VENV/bin/python" -m synapse.app.homeserver -c "$RUN_DIR/homeserver.yaml" --generate-keys >/dev/null

# ---------------------------------------------------------------- start, load, stop
"$VENV/bin/python" -m synapse.app.homeserver -c "$RUN_DIR/homeserver.yaml" \
  >"$RUN_DIR/stdout.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$RUN_DIR/synapse.pid"
url="http://$HOST:$port"
log "synapse $version ($db_label) on $url, pid $pid"
for _ in $(seq 1 600); do
  [[ $(curl -fsS "$url/health" 2>/dev/null) == OK ]] && break
  [[ -d /proc/$pid ]] || { tail -30 "$RUN_DIR/stdout.log" "$RUN_DIR/homeserver.log" >&2 2>/dev/null; die "synapse exited"; }
  sleep 0.2
done
[[ $(curl -fsS "$url/health" 2>/dev/null) == OK ]] || die "synapse not ready after 120 s (see $RUN_DIR)"

out="${out:-$ROOT/bench-out/synapse-${db_label%%,*}-$rate}"
log "load: $rate msg/s for $duration s over $rooms rooms -> $out"
SYNAPSE_REGISTRATION_SHARED_SECRET=$secret "$BENCH_PYTHON" -m chat4all.bench.synapse \
  --url "$url" --rate "$rate" --duration "$duration" --rooms "$rooms" --drain "$drain" --ramp "$ramp" --warmup "$warmup" \
  --out "$out" --server-pid "$pid" --server-label "synapse $version ($db_label)"
