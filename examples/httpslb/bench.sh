#!/usr/bin/env bash
# bench.sh - HTTPS and HTTP/2 through sluice's httpslb and HAProxy, side by
# side on loopback, in the layout of ../../../shared/bench (which measures
# cleartext only): the proxy alone on core 0, the load and the backend on
# core 1, one ECDSA P-256 certificate for both proxies.
#
#   bash examples/httpslb/bench.sh            # about 2.5 minutes
#   SLUICE_ARGS=-no-forwarding bash examples/httpslb/bench.sh  # no forwarding fields, like HAProxy here
#
# Phases, each run REPS times per proxy, interleaved:
#   keepalive   wrk -c64 over HTTPS/1.1 keep-alive, GET / (1 KiB)
#   h2          h2load -c64 -m10 over HTTP/2 (ALPN h2), GET /
#   handshake   wrk -c64 with "Connection: close": a full handshake per request
#               (wrk does not resume sessions; sluice's log confirms resumed=0)
#   idle        RSS per idle TLS connection: IDLE_CONNS HTTPS/1.1 connections
#               (then as many HTTP/2 ones), one GET each, held idle
# Numbers: req/s (median), p99 latency (wrk --latency; h2load --log-file),
# proxy CPU % and requests per proxy CPU-second, the
# figure to compare when the load side is the bottleneck.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
DURATION=${DURATION:-8}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
IDLE_CONNS=${IDLE_CONNS:-4000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE=${BASE_PORT:-18180}
MODES=${MODES:-keepalive h2 handshake idle}
OUT=${OUT:-/tmp/tlsbench-$(date +%Y%m%d-%H%M%S)}
SLUICE_ARGS=${SLUICE_ARGS:-} # more flags for httpslb, e.g. -no-forwarding (like the HAProxy config here)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
BACKEND_PORT=$BASE
declare -A PORT=([haproxy]=$((BASE + 1)) [sluice]=$((BASE + 2)))
TARGETS=${TARGETS:-haproxy sluice}

for t in taskset wrk h2load haproxy openssl timeout; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing (bash ../shared/bench/setup.sh installs the tools)" >&2; exit 1; }
done
mkdir -p "$OUT"/{logs,raw,conf}
declare -A PID=()
cleanup() {
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

echo "building into $OUT" >&2
(cd "$SHARED" && "$GO" build -o "$OUT/backend" ./backend)
(cd "$ROOT" && "$GO" build -o "$OUT/httpslb" ./examples/httpslb && "$GO" build -o "$OUT/idletls" ./examples/httpslb/idletls)

openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/conf/key.pem" 2>/dev/null
openssl req -new -x509 -key "$OUT/conf/key.pem" -out "$OUT/conf/cert.pem" -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat "$OUT/conf/cert.pem" "$OUT/conf/key.pem" >"$OUT/conf/haproxy.pem"
cat >"$OUT/conf/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((IDLE_CONNS * 2 + 500))
    no strict-limits
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
    timeout http-request 30s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $OUT/conf/haproxy.pem alpn h2,http/1.1
    default_backend be
backend be
    server s1 127.0.0.1:$BACKEND_PORT
EOF

start() { # name cpu cmd...
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$OUT/logs/$name.log" 2>&1 &
	PID[$name]=$!
}
wait_port() {
	for _ in $(seq 100); do
		(echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: nothing listens on $1" >&2
	return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

start backend "$LOAD_CPU" "$OUT/backend" -listen "127.0.0.1:$BACKEND_PORT"
wait_port "$BACKEND_PORT"
start_proxy() {
	case $1 in
	haproxy) start haproxy "$PROXY_CPU" haproxy -db -f "$OUT/conf/haproxy.cfg" ;;
	sluice) start sluice "$PROXY_CPU" "$OUT/httpslb" -listen "127.0.0.1:${PORT[sluice]}" -workers 1 \
		-cert "$OUT/conf/cert.pem" -key "$OUT/conf/key.pem" -backend "127.0.0.1:$BACKEND_PORT" -max-conns 20000 $SLUICE_ARGS ;;
	esac
	wait_port "${PORT[$1]}"
	curl -sk --http1.1 "https://127.0.0.1:${PORT[$1]}/" -o /dev/null
}
stop_proxy() {
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
	unset "PID[$1]"
}

# load PHASE TARGET REP: runs the load, prints "req/s cpu% req-per-CPU-s p99-ms"
load() {
	local phase=$1 t=$2 rep=$3 url="https://127.0.0.1:${PORT[$2]}/" raw="$OUT/raw/$1-$2-$3.txt"
	local c0 c1 t0 t1 rps
	c0=$(cpu_ticks "${PID[$t]}")
	t0=$(date +%s.%N)
	case $phase in
	keepalive) timeout $((DURATION + 20)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$raw" 2>&1 ;;
	handshake) timeout $((DURATION + 20)) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Connection: close" "$url" >"$raw" 2>&1 ;;
	h2) timeout $((DURATION + 20)) taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m10 -D"$DURATION" --log-file="$raw.log" "$url" >"$raw" 2>&1 ;;
	esac
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "${PID[$t]}")
	local p99
	case $phase in
	h2)
		rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$raw")
		# 99th percentile of the per-request times h2load logged (µs)
		p99=$(cut -f3 "$raw.log" | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%.2f", a[int(NR*0.99)]/1000; else print "-"}')
		rm -f "$raw.log"
		;;
	*)
		rps=$(awk '/^Requests\/sec:/ {print $2}' "$raw")
		p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; printf "%.2f", v}' "$raw")
		;;
	esac
	awk -v r="${rps:-0}" -v c=$((c1 - c0)) -v hz="$HZ" -v w="$(echo "$t1 - $t0" | bc)" -v p="${p99:--}" \
		'BEGIN { cpu = 100 * c / hz / w; printf "%.0f %.1f %.0f %s\n", r, cpu, (cpu > 0 ? r / (cpu / 100) : 0), p }'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "# HTTPS and HTTP/2: sluice vs HAProxy ($(date -u +%F), $(nproc) cores, REPS=$REPS, ${DURATION}s runs)"
echo
echo "haproxy: $(haproxy -v | head -1)"
if [[ -n $SLUICE_ARGS ]]; then echo "sluice flags: $SLUICE_ARGS"; fi
echo
for phase in $MODES; do
	[[ $phase == idle ]] && continue
	declare -A RPS=() CPU=() EFF=() P99=()
	for t in $TARGETS; do start_proxy "$t"; done
	for rep in $(seq "$REPS"); do
		for t in $TARGETS; do
			read -r r c e p < <(load "$phase" "$t" "$rep")
			RPS[$t]+="$r "
			CPU[$t]+="$c "
			EFF[$t]+="$e "
			P99[$t]+="$p "
			echo "$phase $t rep $rep: $r req/s, proxy CPU $c%, $e req per CPU-s, p99 $p ms" >&2
		done
	done
	for t in $TARGETS; do stop_proxy "$t"; done
	echo "## $phase"
	echo
	echo "| proxy | req/s (median) | runs | proxy CPU % | req per proxy CPU-s | req/s vs haproxy | CPU-s efficiency vs haproxy | p99 ms (median) |"
	echo "|---|---|---|---|---|---|---|---|"
	hr=$(tr ' ' '\n' <<<"${RPS[haproxy]:-}" | grep . | median)
	he=$(tr ' ' '\n' <<<"${EFF[haproxy]:-}" | grep . | median)
	for t in $TARGETS; do
		r=$(tr ' ' '\n' <<<"${RPS[$t]}" | grep . | median)
		c=$(tr ' ' '\n' <<<"${CPU[$t]}" | grep . | median)
		e=$(tr ' ' '\n' <<<"${EFF[$t]}" | grep . | median)
		p=$(tr ' ' '\n' <<<"${P99[$t]}" | grep . | median)
		echo "| $t | $r | ${RPS[$t]} | $c | $e | $(awk -v a="$r" -v b="${hr:-0}" 'BEGIN{printf (b>0?"%.2f":"-"), a/b}') | $(awk -v a="$e" -v b="${he:-0}" 'BEGIN{printf (b>0?"%.2f":"-"), a/b}') | $p |"
	done
	echo
	unset RPS CPU EFF P99
done

if [[ " $MODES " == *" idle "* ]]; then
	echo "## idle TLS connections ($IDLE_CONNS each)"
	echo
	echo "| proxy | protocol | RSS before (KiB) | RSS after (KiB) | KiB per connection |"
	echo "|---|---|---|---|---|"
	for t in $TARGETS; do
		for proto in h1 h2; do
			start_proxy "$t"
			before=$(rss_kib "${PID[$t]}")
			flag=""
			[[ $proto == h2 ]] && flag="-h2"
			taskset -c "$LOAD_CPU" "$OUT/idletls" -addr "127.0.0.1:${PORT[$t]}" -n "$IDLE_CONNS" $flag -hold 60s >"$OUT/raw/idle-$t-$proto.txt" 2>&1 &
			ipid=$!
			for _ in $(seq 600); do grep -q READY "$OUT/raw/idle-$t-$proto.txt" && break; sleep 0.1; done
			sleep 2
			after=$(rss_kib "${PID[$t]}")
			ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$OUT/raw/idle-$t-$proto.txt")
			kill "$ipid" 2>/dev/null || true
			wait "$ipid" 2>/dev/null || true
			stop_proxy "$t"
			echo "| $t | $proto | $before | $after | $(awk -v a="$after" -v b="$before" -v n="${ok:-0}" 'BEGIN{printf (n>0?"%.1f":"-"), (a-b)/n}') (${ok:-0} conns) |"
		done
	done
	echo
fi
echo "raw outputs: $OUT" >&2
