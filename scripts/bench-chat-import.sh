#!/usr/bin/env bash
# Chat import at scale, through the real binary: generates a synthetic Telegram export of about
# SIZE gigabytes (JSON, plus the same messages as HTML pages), starts `tributary up` on its
# embedded defaults (or on --sql URL) in a temporary data directory, imports the export with
# `tributary chat import`, and prints the import's throughput and the server's peak memory
# (VmHWM of the server process, read from /proc after the import).
#
#   scripts/bench-chat-import.sh [--gb 2] [--dir /tmp/tributary-chat-import] [--format json|html]
#                                [--sql postgres://postgres@127.0.0.1:5432/DB] [--keep]
#
# Builds release binaries into ${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}. The
# generator is the parse bench (`chat_bench`), so its parse figures for the same files are
# printed too. Needs about 2.3x SIZE of free disk for the export plus the database.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GB=2
DIR=/tmp/tributary-chat-import
FORMAT=json
SQL=""
KEEP=false
while (($#)); do
    case "$1" in
    --gb) GB=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --format) FORMAT=$2; shift 2 ;;
    --sql) SQL=$2; shift 2 ;;
    --keep) KEEP=true; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench-chat-import.sh: unknown argument: $1 (try --help)" >&2
        exit 2
        ;;
    esac
done
case "$FORMAT" in json | html) ;; *) echo "--format must be json or html" >&2; exit 2 ;; esac

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
cargo build --release --locked --quiet -p tributary --bin tributary
cargo build --release --locked --quiet -p tributary-chat --example chat_bench
BIN="$CARGO_TARGET_DIR/release/tributary"

# The generator writes about 480 bytes of JSON per message.
MESSAGES=$(awk -v gb="$GB" 'BEGIN { printf "%d", gb * 1e9 / 480 }')
if [[ ! -f "$DIR/json/result.json" ]]; then
    echo "generating $MESSAGES messages under $DIR (and timing our parsers on them)"
    "$CARGO_TARGET_DIR/release/examples/chat_bench" --messages "$MESSAGES" --dir "$DIR" --keep
else
    echo "reusing the export under $DIR"
fi
INPUT="$DIR/$FORMAT"
BYTES=$(du -sb "$INPUT" | cut -f1)

DATA=$(mktemp -d /tmp/tributary-bench-data.XXXXXX)
ADMIN=127.0.0.1:19464
CHAT=127.0.0.1:18470
envs=(
    TRIBUTARY__DATA_DIR="$DATA"
    "TRIBUTARY__ADMIN__LISTEN=$ADMIN"
    "TRIBUTARY__CHAT__LISTEN=$CHAT"
    TRIBUTARY__LOGISTICS__GRPC_LISTEN=127.0.0.1:0
    TRIBUTARY__LOGISTICS__HTTP_LISTEN=127.0.0.1:0
)
if grep -q grpc_listen crates/tributary-chat/src/settings.rs; then
    envs+=(TRIBUTARY__CHAT__GRPC_LISTEN=127.0.0.1:0)
fi
[[ -n "$SQL" ]] && envs+=(TRIBUTARY__SQL__URL="$SQL")
env "${envs[@]}" "$BIN" up >"$DATA/server.log" 2>&1 &
SERVER=$!
cleanup() {
    if kill "$SERVER" 2>/dev/null; then wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$DATA"
    [[ $KEEP == true ]] || rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
    curl -fsS "http://$ADMIN/readyz" >/dev/null 2>&1 &&
        curl -fsS "http://$CHAT/openapi.json" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log"; exit 1; }
    sleep 0.2
done
rss() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$SERVER/status"; }
echo "server up (pid $SERVER), RSS $(rss VmRSS) MB; importing $INPUT ($((BYTES / 1000000)) MB)"
T0=$(date +%s.%N)
"$BIN" chat --server "http://$CHAT" import "$INPUT"
T1=$(date +%s.%N)
COUNT=$("$BIN" chat --server "http://$CHAT" count)
awk -v t0="$T0" -v t1="$T1" -v b="$BYTES" -v n="$MESSAGES" -v peak="$(rss VmHWM)" \
    -v fmt="$FORMAT" -v sql="${SQL:-sqlite (embedded)}" 'BEGIN {
    s = t1 - t0
    printf "import %s into %s: %d messages, %.0f MB in %.1fs: %.0f msg/s, %.1f MB/s; server peak RSS %s MB\n",
        fmt, sql, n, b / 1e6, s, n / s, b / 1e6 / s, peak
}'
echo "archive count after import: $COUNT"
echo "log: $(grep -c . "$DATA/server.log") lines in the server log"
