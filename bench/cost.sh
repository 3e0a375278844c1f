#!/bin/bash
# Per-message cost of a server's threads under one ping-pong cell, for the cost
# table in docs/benchmark.md: user and system µs per message (from /proc, every
# thread), context switches and syscalls per message (perf stat), and where the
# CPU time goes (perf record, split by bench/cost-split.py).
#
#   bench/cost.sh SERVER CLIENTS CPUS [SIZE] [SECONDS]
#     SERVER  libqb | qbipc | qbipc-w2     (libqb: bench/c/qb-echo-server.c)
#     CLIENTS qbload clients (ping-pong, one request in flight each)
#     CPUS    0: server and clients pinned to CPU 0 | all
#   QBIPC_TREE=DIR measures the qbipc of another checkout (built), e.g. the one before a change.
#
# Three runs of SECONDS (default 4) after 1 s of warm-up each: the plain one gives
# the rate and CPU per message; perf stat and perf record each slow the server a
# little, so their figures are per message of their own run. Needs linux-perf and root
# (or perf_event_paranoid <= 0). Prints one line of key=value pairs and the split.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
tree=${QBIPC_TREE:-$root}
server=$1 clients=$2 cpus=$3 size=${4:-64} secs=${5:-4}
bin=$root/build/bench-c
mkdir -p "$bin"
for prog in qbload qb-echo-server; do
  [ "$bin/$prog" -nt "$here/c/$prog.c" ] ||
    cc -O2 $(pkg-config --cflags libqb) -o "$bin/$prog" "$here/c/$prog.c" $(pkg-config --libs libqb) -lpthread -lm
done
pin=()
[ "$cpus" = 0 ] && pin=(taskset -c 0)
work=$(mktemp -d)
spid=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# One server for the three runs.
name=qbcost-$$
case $server in
  libqb) cmd=("$bin/qb-echo-server" -n "$name" -t shm) ;;
  qbipc) cmd=(node --perf-basic-prof "$tree/dist/src/cli/main.js" serve "$name" --workers 0) ;;
  qbipc-w2) cmd=(node --perf-basic-prof "$tree/dist/src/cli/main.js" serve "$name" --workers 2) ;;
  *) echo "unknown server $server" >&2; exit 2 ;;
esac
"${pin[@]}" "${cmd[@]}" >"$work/server.out" 2>&1 &
spid=$!
for _ in $(seq 100); do grep -q ready "$work/server.out" && break; sleep 0.1; done

load() { "${pin[@]}" "$bin/qbload" -n "$name" -c "$clients" -s "$size" -T "$1"; }
messages() { grep -o '"messages":[0-9]*' | cut -d: -f2; }
cpu_ticks() { cat /proc/$spid/task/*/stat | awk '{u += $14; s += $15} END {print u, s}'; }

load 1 >/dev/null
read -r u0 s0 < <(cpu_ticks)
plain=$(load "$secs")
read -r u1 s1 < <(cpu_ticks)
msgs=$(messages <<<"$plain")
hz=$(getconf CLK_TCK)

load 1 >/dev/null
perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -p "$spid" -o "$work/stat" -- sleep $((secs - 1)) &
statpid=$!
statmsgs=$(load "$secs" | messages)
wait $statpid

load 1 >/dev/null
perf record -F 4999 -p "$spid" -o "$work/perf.data" -- sleep $((secs - 1)) >/dev/null 2>&1 &
recpid=$!
recmsgs=$(load "$secs" | messages)
wait $recpid

# perf stat counts over secs-1 s of a secs-s load: scale messages to that window.
window=$(awk -v m="$statmsgs" -v s="$secs" 'BEGIN {print m * (s - 1) / s}')
stat_of() { awk -F, -v ev="$1" '$3 == ev {print $1}' "$work/stat"; }
awk -v kind="$server" -v c="$clients" -v cpus="$cpus" -v size="$size" -v msgs="$msgs" -v secs="$secs" -v hz="$hz" \
  -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v cs="$(stat_of context-switches)" -v sc="$(stat_of raw_syscalls:sys_enter)" -v w="$window" \
  'BEGIN {
    printf "server=%s clients=%d cpus=%s size=%d rate=%.0f user_us/msg=%.2f sys_us/msg=%.2f ctxsw/msg=%.2f syscalls/msg=%.2f\n",
      kind, c, cpus, size, msgs / secs, u * 1e6 / hz / msgs, s * 1e6 / hz / msgs, cs / w, sc / w
  }'
perf report -i "$work/perf.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null | python3 "$here/cost-split.py"
