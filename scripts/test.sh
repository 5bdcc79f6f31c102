#!/usr/bin/env bash
# The project's test command: format, lints, every test (unit, in-process, and against real
# backends), doc tests, schemathesis against every OpenAPI document, and the shipped deploy files.
#
#   scripts/test.sh          full run: starts tansu and SeaweedFS (scripts/backends.sh), makes
#                            sure PostgreSQL and Redis answer, runs everything, stops what it started
#   scripts/test.sh --quick  no backends: embedded adapters only; real-backend tests skip
#                            (under CI=true they fail instead: CI always runs the full suite)
#
# Cargo builds into ${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}, outside the clone, so a
# fresh clone on a warm machine reuses earlier builds. A cold machine works too, only slower.
# Every step runs even when an earlier one failed; the exit code is non-zero if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

QUICK=false
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=true ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown argument: $arg (try --help)" >&2
        exit 2
        ;;
    esac
done

for dir in "$HOME/.cargo/bin" "$HOME/.local/bin"; do
    case ":$PATH:" in *":$dir:"*) ;; *) [[ -d "$dir" ]] && PATH="$dir:$PATH" ;; esac
done
export PATH
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tributary/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

in_ci() { [[ "${CI:-}" =~ ^(true|1|TRUE|True)$ ]]; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

T_ALL=$(now)
FAILED=()
SUMMARY=()

# step NAME CMD...: run CMD, print one timing line, remember a failure and go on.
step() {
    local name=$1 t0 rc=0
    shift
    echo "=== $name: $*"
    t0=$(now)
    "$@" || rc=$?
    if ((rc == 0)); then
        SUMMARY+=("$name ok $(since "$t0")s")
        echo "=== $name: ok in $(since "$t0")s"
    else
        FAILED+=("$name")
        SUMMARY+=("$name FAILED (exit $rc) $(since "$t0")s")
        echo "=== $name: FAILED (exit $rc) in $(since "$t0")s"
    fi
}

# --- tools -------------------------------------------------------------------------------

APT_UPDATED=false
# apt_tool CMD PACKAGE: make CMD available, installing the Debian PACKAGE if it is missing
# and apt works here. Fails when it cannot.
apt_tool() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null && return 0
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "test.sh: $cmd is missing (Debian package $pkg) and apt-get cannot install it here" >&2
        return 1
    fi
    echo "test.sh: installing $pkg with apt-get"
    if [[ $APT_UPDATED == false ]]; then
        apt-get update -qq >/dev/null || return 1
        APT_UPDATED=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null ||
        return 1
    command -v "$cmd" >/dev/null
}

# What the build and the TLS tests need from Debian: pkg-config and libssl-dev (librdkafka is
# built with OpenSSL), openssl (test CAs), socat (the TLS terminator in front of a private
# tansu). On this project's machines they are there already.
build_deps() {
    local rc=0
    apt_tool pkg-config pkg-config || rc=1
    apt_tool openssl openssl || rc=1
    apt_tool socat socat || rc=1
    if ! pkg-config --exists openssl 2>/dev/null; then
        # No command to look for: the check is openssl's pkg-config file.
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "test.sh: installing libssl-dev with apt-get"
            if [[ $APT_UPDATED == false ]]; then
                apt-get update -qq >/dev/null && APT_UPDATED=true
            fi
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev \
                >/dev/null || rc=1
        fi
        pkg-config --exists openssl || {
            echo "test.sh: OpenSSL headers missing (Debian package libssl-dev)" >&2
            rc=1
        }
    fi
    return $rc
}

ensure_nextest() {
    cargo nextest --version >/dev/null 2>&1 && return 0
    echo "test.sh: installing cargo-nextest (once per machine)"
    env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked --quiet
}

# --- steps -------------------------------------------------------------------------------

# Backends that were already up (a developer's `scripts/backends.sh start`) stay up.
export TRIBUTARY_BACKENDS_DIR="${TRIBUTARY_BACKENDS_DIR:-$ROOT/.backends}"
BACKENDS_STARTED=false
stop_backends() {
    if [[ $BACKENDS_STARTED == true ]]; then
        BACKENDS_STARTED=false
        local started=()
        if [[ -f "$TRIBUTARY_BACKENDS_DIR/started" ]]; then
            mapfile -t started <"$TRIBUTARY_BACKENDS_DIR/started"
        fi
        if ((${#started[@]})); then
            "$ROOT/scripts/backends.sh" stop "${started[@]}" || true
        fi
    fi
}
trap stop_backends EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_backends() {
    BACKENDS_STARTED=true
    "$ROOT/scripts/backends.sh" start
}

# Offline checks of the shipped deploy files (no Docker engine needed) and of the scripts.
deploy_check() {
    local rc=0 tool
    for tool in "docker-compose docker-compose" "promtool prometheus" "shellcheck shellcheck"; do
        # shellcheck disable=SC2086
        if ! apt_tool $tool; then
            # A laptop without apt still gets the rest of the run; CI must check everything.
            if in_ci || [[ $QUICK == false ]]; then rc=1; fi
        fi
    done
    if command -v docker-compose >/dev/null; then
        # Debian's docker-compose 1.29 validates offline and rejects keys it does not know.
        if docker-compose -f deploy/compose.yaml config -q; then
            echo "deploy/compose.yaml: valid for docker-compose $(docker-compose version --short 2>/dev/null)"
        else
            rc=1
        fi
    fi
    if command -v promtool >/dev/null; then
        promtool check config deploy/prometheus/prometheus.yml || rc=1
        promtool check rules deploy/prometheus/alerts.yml || rc=1
        promtool test rules deploy/prometheus/alerts_test.yml || rc=1
    fi
    # Dashboards and alert rules against the metrics the code emits (stdlib python3 only).
    python3 scripts/check_dashboards.py || rc=1
    if command -v shellcheck >/dev/null; then
        if shellcheck scripts/*.sh .ci/run; then echo "scripts: shellcheck clean"; else rc=1; fi
    fi
    if command -v docker-compose >/dev/null; then
        compose_settings_check || rc=1
    fi
    return "$rc"
}

# The settings deploy/compose.yaml gives the tributary service must load: the binary rejects
# unknown TRIBUTARY__ keys and bad values at start, and `tributary config` loads them the same way.
compose_settings_check() {
    local py vars=()
    for py in /usr/bin/python3 python3; do
        "$py" -c 'import yaml' 2>/dev/null && break
        py=""
    done
    if [[ -z "$py" ]]; then
        echo "test.sh: no python3 with PyYAML to read deploy/compose.yaml" >&2
        return 1
    fi
    cargo build --locked --quiet --bin tributary || return 1
    mapfile -t vars < <(docker-compose -f deploy/compose.yaml config | "$py" -c '
import sys, yaml
env = yaml.safe_load(sys.stdin)["services"]["tributary"]["environment"]
print("\n".join(f"{k}={v}" for k, v in env.items()))')
    ((${#vars[@]})) || return 1
    # In an empty directory with only those variables, as in the container.
    local dir ok=0
    dir=$(mktemp -d)
    (cd "$dir" && env -i PATH="$PATH" "${vars[@]}" "$CARGO_TARGET_DIR/debug/tributary" config >/dev/null) || ok=1
    rm -rf "$dir"
    if ((ok == 0)); then
        echo "deploy/compose.yaml: tributary accepts its ${#vars[@]} TRIBUTARY__ settings"
    fi
    return "$ok"
}

nextest() {
    local profile=()
    if [[ -f .config/nextest.toml ]] && grep -q '^\[profile\.ci\]' .config/nextest.toml; then
        profile=(--profile ci)
    fi
    ensure_nextest || return 1
    cargo nextest run --workspace --locked --no-fail-fast "${profile[@]}"
}

# --- run ---------------------------------------------------------------------------------

echo "test.sh: $(if [[ $QUICK == true ]]; then echo quick; else echo full; fi) run," \
    "CI=${CI:-unset}, CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

if [[ $QUICK == true ]]; then
    # Only embedded adapters: forget any backend a developer's shell points at.
    unset TRIBUTARY_TEST_KAFKA TRIBUTARY_TEST_POSTGRES TRIBUTARY_TEST_S3 TRIBUTARY_TEST_REDIS \
        TRIBUTARY_TEST_S3_BUCKET TRIBUTARY_TEST_S3_ACCESS_KEY_ID TRIBUTARY_TEST_S3_SECRET_ACCESS_KEY \
        TRIBUTARY_TEST_S3_REGION
else
    step backends start_backends
    if ((${#FAILED[@]})); then
        echo "test.sh: backends did not come up; not running the tests" >&2
        exit 1
    fi
    eval "$("$ROOT/scripts/backends.sh" env)"
fi

step build-deps build_deps
step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
step deploy deploy_check
step doctest cargo test --workspace --doc --locked
# Embedded defaults only, so it runs under --quick too.
step schemathesis "$ROOT/scripts/schemathesis.sh"
# Last, so its summary is (nearly) the closing lines of the run.
step nextest nextest

stop_backends
if ((${#FAILED[@]})); then
    echo "=== summary (total $(since "$T_ALL")s)"
    printf '    %s\n' "${SUMMARY[@]}"
    echo "test.sh: FAILED: ${FAILED[*]}"
    exit 1
fi
echo "test.sh: all ${#SUMMARY[@]} steps passed in $(since "$T_ALL")s"
