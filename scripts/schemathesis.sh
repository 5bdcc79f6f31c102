#!/usr/bin/env bash
# Property-based fuzzing of every REST API: starts a throwaway `tributary up` (embedded defaults,
# every listener on a free 127.0.0.1 port), finds each service address that serves an OpenAPI
# document at /openapi.json, and runs schemathesis against it with a bounded number of examples.
# Fails on any 5xx, a status code the document does not list, or a response body that does not
# match its documented schema. Called by scripts/test.sh (full and --quick); runs alone too:
#
#   scripts/schemathesis.sh                 every API
#   scripts/schemathesis.sh chat-api ...    only these services
#
# Environment: TRIBUTARY_SCHEMATHESIS_EXAMPLES (examples per operation, default 50),
# TRIBUTARY_SCHEMATHESIS_SEED (default fixed, so a run can be repeated; "random" for a new one),
# TRIBUTARY_SCHEMATHESIS_KEEP=1 keeps the data dir and the server log, TRIBUTARY_BIN=PATH tests
# that binary instead of building the debug one in $CARGO_TARGET_DIR.
# schemathesis itself is installed once per machine from PyPI into a venv under
# ~/.cache/tributary/schemathesis. scripts/schemathesis_hooks.py teaches it NDJSON bodies.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

VERSION=4.32.5
VENV="$HOME/.cache/tributary/schemathesis"
EXAMPLES="${TRIBUTARY_SCHEMATHESIS_EXAMPLES:-50}"
SEED="${TRIBUTARY_SCHEMATHESIS_SEED:-20240917}"
ONLY=("$@")

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
BIN="${TRIBUTARY_BIN:-$CARGO_TARGET_DIR/debug/tributary}"

log() { echo "schemathesis.sh: $*" >&2; }

ensure_schemathesis() {
    if [[ -x "$VENV/bin/schemathesis" ]] &&
        [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" == *" $VERSION" ]]; then
        return 0
    fi
    log "installing schemathesis $VERSION into $VENV (once per machine)"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
}

ensure_schemathesis
if [[ -z "${TRIBUTARY_BIN:-}" ]]; then
    cargo build --locked --quiet -p tributary
fi

# `tributary` with none of the caller's configuration (as the test kit's spawn helper does).
clean_env=()
while IFS='=' read -r name _; do
    case "$name" in
    TRIBUTARY__* | TRIBUTARY_CONFIG | TRIBUTARY_CHAT_SERVER | TRIBUTARY_TOKEN) clean_env+=(-u "$name") ;;
    esac
done < <(env)
trib() { env "${clean_env[@]}" "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-schemathesis.XXXXXX")
UP_PID=""
cleanup() {
    if [[ -n "$UP_PID" ]] && kill -0 "$UP_PID" 2>/dev/null; then
        kill -TERM "$UP_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$UP_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$UP_PID" 2>/dev/null || true
        wait "$UP_PID" 2>/dev/null || true
    fi
    if [[ "${TRIBUTARY_SCHEMATHESIS_KEEP:-}" == 1 ]]; then
        log "kept $WORK (server log: $WORK/up.log)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every service listener on a free port: TRIBUTARY__<KEY> for each key `services --json` lists.
listen_env=()
while read -r key; do
    var="TRIBUTARY__$(tr '[:lower:]' '[:upper:]' <<<"${key//./__}")"
    listen_env+=("$var=127.0.0.1:0")
done < <(trib "$BIN" services --json | jq -r '.listens[]?')
ADMIN="127.0.0.1:$(free_port)"

(cd "$WORK" && exec env "${clean_env[@]}" "${listen_env[@]}" TRIBUTARY__ADMIN__LISTEN="$ADMIN" \
    "$BIN" up --data-dir "$WORK/data" >/dev/null 2>"$WORK/up.log") &
UP_PID=$!
log "tributary up (pid $UP_PID, admin $ADMIN, data $WORK/data)"

ready=""
for _ in $(seq 600); do
    if ready=$(curl -sf --max-time 2 "http://$ADMIN/readyz"); then break; fi
    ready=""
    if ! kill -0 "$UP_PID" 2>/dev/null; then
        log "tributary up exited before it was ready:"
        tail -n 30 "$WORK/up.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    log "/readyz did not turn 200 within 60 s:"
    tail -n 30 "$WORK/up.log" >&2
    exit 1
fi

# Each address a service reports that answers GET /openapi.json with an OpenAPI document.
targets=()
while read -r service addr; do
    if ((${#ONLY[@]})) && [[ " ${ONLY[*]} " != *" $service "* ]]; then continue; fi
    if curl -sf --max-time 2 "http://$addr/openapi.json" 2>/dev/null | jq -e '.openapi' >/dev/null 2>&1; then
        targets+=("$service=$addr")
    fi
done < <(jq -r '.services[] | .name as $n | .listening[]? | "\($n) \(.)"' <<<"$ready")
if ((${#targets[@]} == 0)); then
    log "no service serves /openapi.json"
    exit 1
fi
log "OpenAPI documents: ${targets[*]}"

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance
CHECKS+=,response_headers_conformance,response_schema_conformance,ndjson_lines_conformance
seed_args=()
if [[ "$SEED" != random ]]; then seed_args=(--seed "$SEED"); fi

failed=()
for target in "${targets[@]}"; do
    service=${target%%=*}
    addr=${target#*=}
    log "=== $service: http://$addr/openapi.json"
    # Checks: every 5xx fails, and every response must be one the document lists, with its
    # content type, headers and body schema (for NDJSON: every line, see the hooks file).
    # Phases: the examples, coverage (boundary and negative values of each parameter),
    # fuzzing and stateful (chains of calls schemathesis infers, e.g. create then describe).
    # One worker: with two, the shop run failed inside schemathesis with "SystemError: AST
    # constructor recursion depth mismatch" from ast.parse, which Hypothesis calls from both
    # threads (a CPython 3.11 bug in the AST recursion counter, shared between threads; seen on
    # 3.11.7).
    if ! (cd "$WORK" && SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis_hooks.py" \
        "$VENV/bin/schemathesis" run "http://$addr/openapi.json" \
        --checks "$CHECKS" \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$EXAMPLES" \
        "${seed_args[@]}" \
        --workers 1 \
        --request-timeout 10 \
        --generation-database none \
        --suppress-health-check too_slow \
        --output-truncate true \
        --no-color); then
        failed+=("$service")
    fi
done

if ! kill -0 "$UP_PID" 2>/dev/null; then
    log "tributary up died during the run:"
    tail -n 30 "$WORK/up.log" >&2
    exit 1
fi
if ((${#failed[@]})); then
    log "FAILED: ${failed[*]} (server log below)"
    grep -E ' (ERROR|WARN) ' "$WORK/up.log" | tail -n 30 >&2 || true
    exit 1
fi
log "every API passed (${#targets[@]} documents, $EXAMPLES examples per operation)"
