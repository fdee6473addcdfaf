#!/usr/bin/env bash
# A sharded, replicated ClickHouse for the cluster test: Debian's ZooKeeper and four
# clickhouse-server processes (2 shards x 2 replicas) on 127.0.0.1, each with the
# `remote_servers`, `zookeeper` and `macros` config written here.
#   SITETALLY_TEST_RIG_DIR=EMPTY_DIR scripts/rig-cluster.sh start
#       starts it all and prints one line per node: `NAME SHARD HTTP_URL`
#   SITETALLY_TEST_RIG_DIR=DIR scripts/rig-cluster.sh stop-node NAME | start-node NAME
#       stops (SIGTERM) or restarts one node on its ports and data
#   SITETALLY_TEST_RIG_DIR=DIR scripts/rig-cluster.sh stop
#       stops every node and ZooKeeper
# The cluster is named `sitetally`; the nodes are s1r1 s1r2 s2r1 s2r2 (shard, replica).
set -euo pipefail
: "${SITETALLY_TEST_RIG_DIR:?set SITETALLY_TEST_RIG_DIR to an empty directory}"
export SITETALLY_RIG_DIR="$SITETALLY_TEST_RIG_DIR"
source "$(dirname "$0")/rig.sh"

CLUSTER=sitetally
NODES=(s1r1 s1r2 s2r1 s2r2)
start_zookeeper() {
  local dir="$RIG_DIR/zookeeper"
  mkdir -p "$dir/data"
  ZK_PORT=$(free_port)
  echo "ZK_PORT=$ZK_PORT" > "$RIG_DIR/zookeeper.env"
  # A short tick: sessions of a stopped ClickHouse expire in seconds, not minutes.
  cat > "$dir/zoo.cfg" <<EOF
tickTime=500
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
maxClientCnxns=0
4lw.commands.whitelist=ruok
EOF
  cp /etc/zookeeper/conf_example/log4j.properties "$dir/" 2>/dev/null || true
  (cd "$dir" && ZOOCFGDIR="$dir" ZOO_LOG_DIR="$dir" exec "$ZK_HOME/bin/zkServer.sh" \
      start-foreground "$dir/zoo.cfg" >"$dir/out.log" 2>&1) &
  echo $! > "$RIG_DIR/zookeeper.pid"
  wait_for 60 "ZooKeeper on :$ZK_PORT" bash -c \
    "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && printf ruok >&3 && grep -q imok <&3" || {
    tail -20 "$dir/out.log" >&2; return 1; }
  log "ZooKeeper on 127.0.0.1:$ZK_PORT (pid $(cat "$RIG_DIR/zookeeper.pid"))"
}

# Ports of every node first: each node's config names all of them.
allocate_ports() {
  for node in "${NODES[@]}"; do
    printf 'HTTP=%s\nTCP=%s\nINTERSERVER=%s\n' "$(free_port)" "$(free_port)" "$(free_port)" \
      > "$RIG_DIR/$node.env"
  done
}

tcp_port() { (source "$RIG_DIR/$1.env"; echo "$TCP"); }

write_node_config() { # write_node_config NODE
  local node=$1 etc="$RIG_DIR/$1/etc"
  mkdir -p "$etc/config.d"
  cp /etc/clickhouse-server/config.xml /etc/clickhouse-server/users.xml "$etc/"
  source "$RIG_DIR/zookeeper.env"
  {
    echo "<yandex>"
    echo "  <zookeeper><node><host>127.0.0.1</host><port>$ZK_PORT</port></node>"
    echo "    <session_timeout_ms>6000</session_timeout_ms></zookeeper>"
    # The replica name is unique in the whole cluster: the tables every node holds a copy
    # of (alert state, licences, migrations) share one ZooKeeper path.
    echo "  <macros><shard>${node:1:1}</shard><replica>$node</replica></macros>"
    echo "  <interserver_http_host>127.0.0.1</interserver_http_host>"
    echo "  <remote_servers><$CLUSTER>"
    for shard in 1 2; do
      echo "    <shard><internal_replication>true</internal_replication>"
      for replica in 1 2; do
        echo "      <replica><host>127.0.0.1</host><port>$(tcp_port "s${shard}r${replica}")</port></replica>"
      done
      echo "    </shard>"
    done
    echo "  </$CLUSTER></remote_servers>"
    echo "</yandex>"
  } > "$etc/config.d/cluster.xml"
}

launch_node() { # launch_node NODE
  local node=$1 dir="$RIG_DIR/$1"
  source "$RIG_DIR/$node.env"
  mkdir -p "$dir/tmp" "$dir/uf" "$dir/fs"
  (cd "$dir" && exec clickhouse-server --config-file="$dir/etc/config.xml" -- \
      --path="$dir/" --tmp_path="$dir/tmp/" --user_files_path="$dir/uf/" \
      --format_schema_path="$dir/fs/" --logger.log="$dir/server.log" \
      --logger.errorlog="$dir/error.log" --http_port="$HTTP" --tcp_port="$TCP" \
      --interserver_http_port="$INTERSERVER" --listen_host=127.0.0.1 \
      >>"$dir/stdout.log" 2>&1) &
  echo $! > "$RIG_DIR/$node.pid"
}

wait_node() { # wait_node NODE
  source "$RIG_DIR/$1.env"
  wait_for 90 "ClickHouse $1 on :$HTTP" curl -fsS "http://127.0.0.1:$HTTP/ping" || {
    tail -20 "$RIG_DIR/$1/error.log" >&2; return 1; }
}

stop_pid_file() { # stop_pid_file FILE: SIGTERM, then SIGKILL after 20 s
  local pid; pid=$(cat "$1" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start)
    ensure_clickhouse
    ensure_zookeeper
    mkdir -p "$RIG_DIR"
    start_zookeeper
    allocate_ports
    for node in "${NODES[@]}"; do write_node_config "$node"; launch_node "$node"; done
    for node in "${NODES[@]}"; do wait_node "$node"; done
    for node in "${NODES[@]}"; do
      source "$RIG_DIR/$node.env"
      echo "$node ${node:1:1} http://127.0.0.1:$HTTP"
    done
    log "cluster $CLUSTER: 2 shards x 2 replicas in $RIG_DIR"
    ;;
  stop-node) stop_pid_file "$RIG_DIR/${2:?node}.pid" ;;
  start-node) launch_node "${2:?node}"; wait_node "$2" ;;
  stop)
    for node in "${NODES[@]}"; do stop_pid_file "$RIG_DIR/$node.pid"; done
    stop_pid_file "$RIG_DIR/zookeeper.pid"
    ;;
  *) echo "usage: $0 start|stop-node NODE|start-node NODE|stop" >&2; exit 2 ;;
esac
