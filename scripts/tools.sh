#!/usr/bin/env bash
# Go tools Chat4All builds from the Go module proxy: each is pinned in deploy/tools/NAME/go.mod
# (`go get -tool MODULE@VERSION`) and built once into the state dir; a changed go.mod/go.sum
# builds it again.
#
#   scripts/tools.sh path NAME    build NAME if needed, print its binary's path (jaeger, kustomize)
#
# State: ${CHAT4ALL_SERVICES_DIR:-<repo>/.services}/tools-bin. Needs Go >= the version in go.mod.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$(realpath -m "${CHAT4ALL_SERVICES_DIR:-$ROOT/.services}")"
BIN_DIR="$STATE_DIR/tools-bin"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

go_cmd() {
  local g
  for g in go /usr/local/go/bin/go /usr/lib/go/bin/go; do
    command -v "$g" >/dev/null 2>&1 && { echo "$g"; return; }
  done
  die "no Go toolchain (install Go >= $(awk '/^go /{print $2}' "$ROOT"/deploy/tools/*/go.mod | sort -V | tail -1))"
}

tool_path() {
  local name=$1 dir stamp bin pkg go t0
  dir="$ROOT/deploy/tools/$name"
  [[ -f $dir/go.mod ]] || die "unknown tool '$name' (no deploy/tools/$name/go.mod)"
  stamp=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
  bin="$BIN_DIR/$name-$stamp"
  if [[ ! -x $bin ]]; then
    mkdir -p "$BIN_DIR"
    exec 8>"$BIN_DIR/.$name.lock"; flock -w 1800 8 || die "another build of $name holds the lock"
    if [[ ! -x $bin ]]; then
      go=$(go_cmd); pkg=$(awk '$1 == "tool" {print $2; exit}' "$dir/go.mod")
      log "building $pkg (deploy/tools/$name/go.mod); the first build takes minutes, later ones are cached"
      t0=$SECONDS
      (cd "$dir" && GOFLAGS=-mod=mod GOTOOLCHAIN=local "$go" build -trimpath -o "$bin.tmp" "$pkg") >&2 \
        || die "building $name failed"
      mv "$bin.tmp" "$bin"
      find "$BIN_DIR" -maxdepth 1 -name "$name-*" ! -name "$(basename "$bin")" -delete
      log "built $name in $((SECONDS - t0))s: $bin"
    fi
  fi
  echo "$bin"
}

case ${1:-} in
  path) [[ -n ${2:-} ]] || die "usage: $0 path NAME"; tool_path "$2" ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
