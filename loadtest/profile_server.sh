#!/usr/bin/env bash
# py-spy on the production server under the throughput benchmark's load: starts bin/throughput for
# one target and caller count, waits for its timed window, then samples every gunicorn worker for
# 20 s twice at once (wall clock with --idle, and on-CPU), and prints where the workers' main
# threads were, by stage (loadtest/profile_paths.py --collapsed). py-spy is not a dependency of
# the project: install it apart (python -m venv /tmp/spy && /tmp/spy/bin/pip install py-spy) and
# name it in PY_SPY. Needs ptrace (root, or CAP_SYS_PTRACE).
#
#   PY_SPY=/tmp/spy/bin/py-spy bash loadtest/profile_server.sh search 4 [--torch-threads 1]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=$1; callers=$2; shift 2
spy=${PY_SPY:-py-spy}
out=$(mktemp -d /tmp/kp-profile-XXXXXX)
port=8791
bash bin/throughput --targets "$target" --concurrency "$callers" --duration 30 --warmup 5 --port "$port" \
  --output "$out/run.md" --json "$out/run.json" "$@" >"$out/run.log" 2>&1 &
bench=$!
for _ in $(seq 600); do
  grep -q "timed window open" "$out/run.log" && break
  kill -0 "$bench" 2>/dev/null || { cat "$out/run.log" >&2; exit 1; }
  sleep 0.5
done
master=$(pgrep -f "knowledge_platform.wsgi:application --bind 127.0.0.1:$port" | head -1)
sleep 2
"$spy" record --pid "$master" --subprocesses --idle --nonblocking --rate 50 --duration 20 --format raw -o "$out/wall.txt" >"$out/spy-wall.log" 2>&1 &
"$spy" record --pid "$master" --subprocesses --nonblocking --rate 50 --duration 20 --format raw -o "$out/cpu.txt" >"$out/spy-cpu.log" 2>&1 &
wait
venv=$(bash bin/venv)
# Requests served while sampled: the cell's rate × the 20 s sampled.
served=$("$venv/bin/python" -c "import json,sys; c=json.load(open(sys.argv[1]))[0]; print(round(len(c['latencies_ms']) / c['seconds'] * 20))" "$out/run.json")
grep '^| /' "$out/run.md" | head -1
echo; echo "wall clock (py-spy --idle), $served requests while sampled:"
"$venv/bin/python" loadtest/profile_paths.py --collapsed "$out/wall.txt" --served "$served"
echo; echo "on CPU or runnable (py-spy without --idle):"
"$venv/bin/python" loadtest/profile_paths.py --collapsed "$out/cpu.txt" --served "$served"
echo; echo "raw stacks and the run's report: $out"
