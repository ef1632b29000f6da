#!/usr/bin/env bash
# ab.sh - sluice against HAProxy, taking turns within the same minute:
# the steadier comparison on a noisy machine, where two proxies measured
# minutes apart see different neighbours. Each round runs HAProxy, then
# sluice, each a fresh process alone on core 0, under wrk -t1 -c64 on
# core 1 with the Go raw backend of ../../../shared/bench.
#
#   bash examples/httplb/ab.sh                 # HTTP/1.1 keep-alive, 4 rounds
#   MODE=tcp ROUNDS=6 bash examples/httplb/ab.sh
#
# Per run: requests per second, requests per proxy CPU-second, and the
# proxy's kernel and user time per request (from /proc/PID/stat), which
# tell a system-call bound (both proxies pay the kernel the same) from
# the proxy's own work; then the median ratio over the rounds.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
MODE=${MODE:-http} # http | tcp
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-6}
CONNS=${CONNS:-64}
BASE=${BASE_PORT:-18280}
OUT=${OUT:-/tmp/ab-$(date +%Y%m%d-%H%M%S)}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
HZ=$(getconf CLK_TCK)

for t in taskset wrk haproxy timeout; do
	command -v "$t" >/dev/null || { echo "ab: $t is missing (bash ../shared/bench/setup.sh installs the tools)" >&2; exit 1; }
done
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

(cd "$SHARED" && "$GO" build -o "$OUT/backend" ./backend)
case $MODE in
http) (cd "$ROOT" && "$GO" build -o "$OUT/sluice" ./examples/httplb) ;;
tcp) (cd "$ROOT" && "$GO" build -o "$OUT/sluice" ./examples/tcpproxy) ;;
*) echo "ab: MODE is http or tcp" >&2; exit 1 ;;
esac
cat >"$OUT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 2000
defaults
    mode $MODE
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$((BASE + 1))
    default_backend be
backend be
    server s1 127.0.0.1:$BASE
EOF
taskset -c 1 "$OUT/backend" -listen "127.0.0.1:$BASE" >"$OUT/backend.log" 2>&1 &
PIDS+=($!)
sleep 0.5

stat() { awk '{print $14, $15}' "/proc/$1/stat"; } # user and system ticks
run() {                                              # name pid port: one measured run
	local u0 s0 u1 s1 out reqs p99
	taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$3/" >/dev/null # warm up
	read -r u0 s0 < <(stat "$2")
	out=$(timeout $((DURATION + 20)) taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$3/")
	read -r u1 s1 < <(stat "$2")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	awk -v n="$1" -v r="$reqs" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v d="$DURATION" -v p="$p99" 'BEGIN {
		cpu = (u + s) / hz
		printf "%s %.0f %.0f %.2f %.2f %s\n", n, r / d, r / cpu, 1e6 * s / hz / r, 1e6 * u / hz / r, p }'
}

echo "# sluice vs HAProxy, $MODE, alternating ($ROUNDS rounds of ${DURATION}s, wrk -t1 -c$CONNS)"
echo
echo "| round | proxy | req/s | req per CPU-s | kernel µs/req | user µs/req | p99 |"
echo "|---|---|---:|---:|---:|---:|---:|"
ratios=()
for round in $(seq "$ROUNDS"); do
	taskset -c 0 haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
	h=$!
	sleep 0.5
	read -r _ hr he hk hu hp < <(run haproxy "$h" $((BASE + 1)))
	kill "$h"; wait "$h" 2>/dev/null || true
	taskset -c 0 "$OUT/sluice" -listen "127.0.0.1:$((BASE + 2))" -backend "127.0.0.1:$BASE" -workers 1 >"$OUT/sluice.log" 2>&1 &
	s=$!
	sleep 0.5
	read -r _ sr se sk su sp < <(run sluice "$s" $((BASE + 2)))
	kill "$s"; wait "$s" 2>/dev/null || true
	echo "| $round | haproxy | $hr | $he | $hk | $hu | $hp |"
	echo "| $round | sluice | $sr | $se | $sk | $su | $sp |"
	ratios+=("$(awk -v a="$se" -v b="$he" 'BEGIN {printf "%.3f", a / b}')")
done
echo
echo "sluice/HAProxy requests per CPU-second, by round: ${ratios[*]}; median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
