#!/usr/bin/env bash
# The long fuzz run (test/93-fuzz.test.ts is the bounded one): test/c/fuzz.c
# against `qbipc serve` in SHM and SOCKET, in-thread and with 2 workers, for
# SECONDS per configuration, PARALLEL fuzzers at once, while a libqb client
# (test/c/qbclient.c load mode) is served alongside. Checks after each: the
# server is alive, answers, and leaves nothing in /dev/shm when it stops.
#
#   bench/fuzz.sh [SECONDS=60] [SEED=random] [PARALLEL=2]
#
# Prints one line per configuration and a total; exit 1 if any check failed.
# Replay a case a fuzzer reported: build/test-c/fuzz NAME SEED -f CASE -n 1
# (fuzzer k of a configuration uses SEED + k).
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
SEED=${2:-$(( (RANDOM << 15) | RANDOM ))}
PARALLEL=${3:-2}
OUT=$(mktemp -d /tmp/qbipc-fuzz.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

[ -f dist/src/cli/main.js ] || { echo "build first: npm install (or npx tsc -p tsconfig.json)"; exit 2; }
mkdir -p build/test-c
cc -std=c11 -O2 -Wall -Wextra -Werror -o build/test-c/fuzz test/c/fuzz.c || exit 2
# shellcheck disable=SC2046
cc -std=c11 -O2 -Wall -Wextra -Werror $(pkg-config --cflags libqb) -o build/test-c/qbclient test/c/qbclient.c $(pkg-config --libs libqb) || exit 2

echo "seed=$SEED seconds=$SECONDS_EACH parallel=$PARALLEL"
failed=0 total_cases=0 total_crashes=0
for config in "shm 0" "socket 0" "shm 2" "socket 2"; do
  set -- $config
  type=$1 workers=$2 name="qbfuzz-$$-$type-$workers"
  node dist/src/cli/main.js serve "$name" --type "$type" --workers "$workers" --max-buffer 1048576 >"$OUT/serve.out" 2>"$OUT/serve.err" &
  server=$!
  for _ in $(seq 200); do grep -q '^ready' "$OUT/serve.out" && break; kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
  if ! grep -q '^ready' "$OUT/serve.out"; then echo "$type workers=$workers: the server did not start"; failed=1; continue; fi

  pids=()
  for k in $(seq 0 $((PARALLEL - 1))); do
    build/test-c/fuzz "$name" $((SEED + k)) -t "$SECONDS_EACH" >"$OUT/fuzz.$k" 2>&1 &
    pids+=($!)
  done
  healthy_runs=0 healthy_failures=0
  while kill -0 "${pids[0]}" 2>/dev/null; do
    if build/test-c/qbclient -n "$name" -k 2000 -s 700 -t 10000 >"$OUT/healthy" 2>&1; then
      healthy_runs=$((healthy_runs + 1))
    else
      healthy_failures=$((healthy_failures + 1)); echo "  healthy client: $(tail -1 "$OUT/healthy")"
    fi
  done
  cases=0 crashes=0
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}"; rc=$?
    line=$(grep '^result=' "$OUT/fuzz.$k" | tail -1)
    n=$(sed -n 's/.* cases=\([0-9]*\).*/\1/p' <<<"$line"); cases=$((cases + ${n:-0}))
    [ "$rc" -eq 0 ] || { crashes=$((crashes + 1)); echo "  fuzzer $k (seed $((SEED + k))) exit $rc: $line"; }
    grep '^note=' "$OUT/fuzz.$k" | head -3 | sed 's/^/  /'
  done
  alive=yes; kill -0 "$server" 2>/dev/null || alive=no
  after=fail; build/test-c/qbclient -n "$name" -k 1000 -s 4000 -t 10000 >/dev/null 2>&1 && after=ok
  kill -TERM "$server" 2>/dev/null; wait "$server"; exit_code=$?
  left=$(ls /dev/shm | grep -c "^qb-$server-")
  errors=$(wc -l <"$OUT/serve.err")
  echo "$type workers=$workers: cases=$cases fuzzer-failures=$crashes server-alive=$alive served-after=$after server-exit=$exit_code" \
       "server-errors=$errors healthy-runs=$healthy_runs healthy-failures=$healthy_failures dirs-left=$left"
  [ "$errors" -eq 0 ] || head -3 "$OUT/serve.err" | sed 's/^/  /'
  total_cases=$((total_cases + cases)); total_crashes=$((total_crashes + crashes))
  if [ "$alive" != yes ] || [ "$after" != ok ] || [ "$exit_code" -ne 0 ] || [ "$crashes" -ne 0 ] || [ "$healthy_failures" -ne 0 ] || [ "$left" -ne 0 ]; then
    failed=1
  fi
done
echo "total: cases=$total_cases fuzzer-failures=$total_crashes result=$([ $failed -eq 0 ] && echo ok || echo FAILED)"
exit $failed
