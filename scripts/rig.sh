#!/usr/bin/env bash
# Test rig library: installs (if missing) and starts ClickHouse and a Kafka-protocol broker
# (Tansu with sqlite storage) on free 127.0.0.1 ports with temporary data directories.
# Sourced by scripts/test.sh and the load tests; `rig_stop` stops what `rig_start` started.

RIG_DIR="${SITETALLY_RIG_DIR:-$(mktemp -d -t sitetally-rig.XXXXXX)}"
TANSU_VERSION=0.6.0

log() { printf '[rig %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "gave up waiting for $what after ${secs}s"
  return 1
}

ensure_clickhouse() { # and openssl, which makes the rig's TLS certificates
  if command -v clickhouse-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
    return 0
  fi
  log "installing Debian's clickhouse-server, clickhouse-client and openssl (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq clickhouse-server clickhouse-client openssl >/dev/null
}

ensure_docker_compose() { # validates docker-compose.yml (no engine needed)
  if command -v docker-compose >/dev/null 2>&1; then return 0; fi
  log "installing Debian's docker-compose (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker-compose >/dev/null
}

# The cluster rig (scripts/rig-cluster.sh) runs Debian's ZooKeeper 3.8 (needs Java).
ZK_HOME=/usr/share/zookeeper
ensure_zookeeper() {
  if [ -x "$ZK_HOME/bin/zkServer.sh" ] && command -v java >/dev/null 2>&1; then return 0; fi
  log "installing Debian's zookeeper (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq zookeeper >/dev/null
}

ensure_tansu() {
  if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then return 0; fi
  if [ -x "$HOME/.cargo/bin/tansu" ]; then export PATH="$HOME/.cargo/bin:$PATH"; return 0; fi
  log "building the Tansu broker $TANSU_VERSION from crates.io (once; about 12 minutes)"
  cargo install --quiet tansu --version "$TANSU_VERSION" --features libsql
  export PATH="$HOME/.cargo/bin:$PATH"
}

launch_clickhouse() { # starts the server on the ports in $RIG_DIR/clickhouse.env
  local dir="$RIG_DIR/clickhouse"
  source "$RIG_DIR/clickhouse.env"
  mkdir -p "$dir/tmp" "$dir/uf" "$dir/fs"
  (cd "$dir" && exec clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
      --path="$dir/" --tmp_path="$dir/tmp/" --user_files_path="$dir/uf/" \
      --format_schema_path="$dir/fs/" --logger.log="$dir/server.log" \
      --logger.errorlog="$dir/error.log" --http_port="$CH_HTTP_PORT" \
      --tcp_port="$CH_TCP_PORT" --interserver_http_port="$CH_INTERSERVER_PORT" \
      --listen_host=127.0.0.1 --https_port="$CH_HTTPS_PORT" \
      --openSSL.server.certificateFile="$RIG_DIR/tls/server.pem" \
      --openSSL.server.privateKeyFile="$RIG_DIR/tls/server.key" \
      --openSSL.server.dhParamsFile= \
      >>"$dir/stdout.log" 2>&1) &
  echo $! > "$RIG_DIR/clickhouse.pid"
  wait_for 60 "ClickHouse on :$CH_HTTP_PORT" curl -fsS "http://127.0.0.1:$CH_HTTP_PORT/ping" || {
    tail -20 "$dir/error.log" >&2; return 1; }
}

stop_clickhouse() {
  local pid; pid=$(cat "$RIG_DIR/clickhouse.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

# A CA made for this rig and a server certificate it signed for 127.0.0.1, so tests can
# reach ClickHouse over https trusting that CA (and fail trusting another).
make_rig_ca() {
  local d="$RIG_DIR/tls"
  mkdir -p "$d"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=sitetally rig CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req "${ec[@]}" -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
}

start_clickhouse() {
  mkdir -p "$RIG_DIR"
  make_rig_ca
  printf 'CH_HTTP_PORT=%s\nCH_TCP_PORT=%s\nCH_INTERSERVER_PORT=%s\nCH_HTTPS_PORT=%s\n' \
    "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" > "$RIG_DIR/clickhouse.env"
  launch_clickhouse
  source "$RIG_DIR/clickhouse.env"
  export SITETALLY_TEST_CLICKHOUSE_URL="http://127.0.0.1:$CH_HTTP_PORT"
  export SITETALLY_TEST_CLICKHOUSE_HTTPS_URL="https://127.0.0.1:$CH_HTTPS_PORT"
  export SITETALLY_TEST_CLICKHOUSE_CA_FILE="$RIG_DIR/tls/ca.pem"
  wait_for 30 "ClickHouse https on :$CH_HTTPS_PORT" \
    curl -fsS --cacert "$SITETALLY_TEST_CLICKHOUSE_CA_FILE" "$SITETALLY_TEST_CLICKHOUSE_HTTPS_URL/ping" || {
    tail -20 "$RIG_DIR/clickhouse/error.log" >&2; return 1; }
  log "ClickHouse $(curl -fsS "$SITETALLY_TEST_CLICKHOUSE_URL/?query=SELECT%20version()") on $SITETALLY_TEST_CLICKHOUSE_URL (pid $(cat "$RIG_DIR/clickhouse.pid"))"
}

start_tansu() {
  local dir="$RIG_DIR/tansu"
  mkdir -p "$dir"
  KAFKA_PORT=$(free_port)
  # The path after sqlite:// is relative to the working directory.
  (cd "$dir" && exec tansu broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db" >"$dir/broker.log" 2>&1) &
  TANSU_PID=$!
  echo "$TANSU_PID" > "$RIG_DIR/tansu.pid"
  export SITETALLY_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
  wait_for 60 "Tansu on :$KAFKA_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT" || {
    tail -20 "$dir/broker.log" >&2; return 1; }
  log "Tansu $TANSU_VERSION (sqlite storage) on $SITETALLY_TEST_KAFKA (pid $TANSU_PID)"
}

rig_start() {
  ensure_clickhouse
  ensure_docker_compose
  ensure_zookeeper
  ensure_tansu
  mkdir -p "$RIG_DIR"
  log "rig directory $RIG_DIR"
  start_clickhouse
  start_tansu
  # Tests that stop and restart ClickHouse do it through scripts/rig-clickhouse.sh.
  export SITETALLY_TEST_RIG_DIR="$RIG_DIR"
}

rig_stop() {
  for name in tansu clickhouse; do
    if [ -f "$RIG_DIR/$name.pid" ]; then
      local pid; pid=$(cat "$RIG_DIR/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  # ClickHouse may have been restarted by a test under a new pid.
  pkill -f "clickhouse-server.*$RIG_DIR" 2>/dev/null || true
  if [ -z "${SITETALLY_KEEP_RIG:-}" ]; then rm -rf "$RIG_DIR"; fi
}
