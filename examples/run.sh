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
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=${AIRFLOW_PORT:-8080}
export AIRFLOW__API__WORKERS=1
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=15
export AIRFLOW__CORE__DEFAULT_TASK_RETRIES=2          # an unreachable application: try the task again
export AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY=60
SHOP_PORT=${SHOP_PORT:-8765}
DEMO=$FLOWLINK_HOME/demo
mkdir -p "$DEMO"

# The example workflow's applications, as Airflow connections (credentials never live in specs).
export AIRFLOW_CONN_DEMO_ERP="{\"conn_type\": \"sqlite\", \"host\": \"$DEMO/erp.db\"}"
export AIRFLOW_CONN_DEMO_SHOP="{\"conn_type\": \"http\", \"host\": \"http://127.0.0.1:$SHOP_PORT\"}"

[ -f "$DEMO/erp.db" ] || "$BIN/python" examples/demo_erp.py "$DEMO/erp.db"
"$BIN/python" examples/demo_shop.py --host 127.0.0.1 --port "$SHOP_PORT" --data "$DEMO/shop.json" &
SHOP_PID=$!
trap 'kill $SHOP_PID 2>/dev/null || true; kill $AIRFLOW_PID 2>/dev/null || true; wait 2>/dev/null' EXIT INT TERM

"$BIN/flowlink" publish examples/erp_to_shop.yaml

"$BIN/airflow" standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
AIRFLOW_PID=$!
echo "Starting Airflow (log: $AIRFLOW_HOME/standalone.log) ..."
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  kill -0 $AIRFLOW_PID 2>/dev/null || { echo "Airflow stopped; see $AIRFLOW_HOME/standalone.log" >&2; exit 1; }
  sleep 1
done
PASSWORDS=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
cat <<MSG

  Airflow:   http://127.0.0.1:$AIRFLOW__API__PORT   login: $(cat "$PASSWORDS" 2>/dev/null || echo "see $PASSWORDS")
  Demo shop: http://127.0.0.1:$SHOP_PORT/customers   (records arrive every minute)
  CLI:       export AIRFLOW_HOME=$AIRFLOW_HOME; .venv/bin/flowlink bucket erp_to_shop
  Stop:      Ctrl-C

MSG
wait $AIRFLOW_PID
