#!/usr/bin/env bash
# `make run`: the demo ERP and shop, the example workflow published, and Airflow standalone on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
export PATH="$BIN:$PATH"  # airflow standalone starts its components as `airflow ...`

export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
export FLOWLINK_HOME=${FLOWLINK_HOME:-$AIRFLOW_HOME/flowlink}
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$AIRFLOW_HOME/plugins  # Flowlink's plugin comes from its entry point
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# Tasks at once: 16 keeps the idle runs of 100 every-minute workflows on time (bench/schedule.py, docs/benchmarks.md)
export AIRFLOW__CORE__PARALLELISM=16
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=${AIRFLOW_PORT:-8080}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW__API__PORT/execution/
export AIRFLOW__API__WORKERS=1
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=15
export AIRFLOW__CORE__DEFAULT_TASK_RETRIES=2          # a killed worker, the store briefly away: try again
export AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY=60
SHOP_PORT=${SHOP_PORT:-8765}
DEMO=$FLOWLINK_HOME/demo
mkdir -p "$DEMO"

# The example workflow's applications, as Airflow connections (credentials never live in specs).
export AIRFLOW_CONN_DEMO_ERP="{\"conn_type\": \"sqlite\", \"host\": \"$DEMO/erp.db\"}"
export AIRFLOW_CONN_DEMO_SHOP="{\"conn_type\": \"http\", \"host\": \"http://127.0.0.1:$SHOP_PORT\"}"

# The same environment for `airflow` and `flowlink` commands in another shell (the DAGs and plugins folders
# included: without them `airflow dags next-execution` fails with TimetableNotRegistered): source this file.
ENV_FILE=$AIRFLOW_HOME/flowlink.env
(umask 077; { echo "# source $ENV_FILE: the environment of \`make run\` for airflow and flowlink commands"
  export -p | grep -E '^declare -x (AIRFLOW|FLOWLINK)[A-Za-z0-9_]*='
  echo "export PATH=\"$BIN:\$PATH\""; } > "$ENV_FILE")
echo "For airflow and flowlink commands in another shell: source $ENV_FILE"

[ -f "$DEMO/erp.db" ] || "$BIN/python" examples/demo_erp.py "$DEMO/erp.db"
"$BIN/python" examples/demo_shop.py --host 127.0.0.1 --port "$SHOP_PORT" --data "$DEMO/shop.json" &
SHOP_PID=$!
AIRFLOW_PID= AGENT_PID=
trap 'kill $AGENT_PID $SHOP_PID $AIRFLOW_PID 2>/dev/null || true; wait 2>/dev/null' EXIT INT TERM

"$BIN/flowlink" publish examples/erp_to_shop.yaml

# A cloud environment (primary) and a token for its agent, once.
TOKEN_FILE=$FLOWLINK_HOME/agent-cloud.token
if [ ! -s "$TOKEN_FILE" ]; then
  "$BIN/flowlink" env list --json | grep -q '"name": "cloud"' || "$BIN/flowlink" env add cloud --kind cloud
  (umask 077; "$BIN/flowlink" env token cloud 2>/dev/null > "$TOKEN_FILE")
fi

"$BIN/airflow" standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
AIRFLOW_PID=$!
echo "Starting Airflow (log: $AIRFLOW_HOME/standalone.log) ..."
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  kill -0 $AIRFLOW_PID 2>/dev/null || { echo "Airflow stopped; see $AIRFLOW_HOME/standalone.log" >&2; exit 1; }
  sleep 1
done
# The agent of the cloud environment, beside Airflow; then deploy the example through it.
"$BIN/flowlink" agent --environment cloud --server "http://127.0.0.1:$AIRFLOW__API__PORT/flowlink" \
  --token-file "$TOKEN_FILE" --interval 2 >> "$AIRFLOW_HOME/agent.log" 2>&1 &
AGENT_PID=$!
echo "Waiting for Airflow to read the deployment tracker DAG ..."
for _ in $(seq 1 60); do
  "$BIN/flowlink" deploy erp_to_shop 2>/dev/null && break
  sleep 2
done
for _ in $(seq 1 30); do
  "$BIN/flowlink" deployments | grep -qE "successful|unsuccessful" && break
  sleep 1
done
"$BIN/flowlink" deployments

PASSWORDS=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
cat <<MSG

  Airflow:   http://127.0.0.1:$AIRFLOW__API__PORT   login: $(cat "$PASSWORDS" 2>/dev/null || echo "see $PASSWORDS")
  Demo shop: http://127.0.0.1:$SHOP_PORT/customers   (records arrive every minute)
  Agent log: $AIRFLOW_HOME/agent.log
  CLI:       source $ENV_FILE; flowlink deployment-log erp_to_shop   (airflow commands too)
  Stop:      Ctrl-C

MSG
wait $AIRFLOW_PID
