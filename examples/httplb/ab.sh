#!/usr/bin/env bash
# ab.sh - sluice against HAProxy (and, with BASELINE, against sluice at
# another commit) in short alternating runs: the comparison that still
# resolves a 1 % change on a machine whose neighbours move the numbers of
# runs minutes apart by 10 %. All proxies run at once, warm, each with
# one worker on core 0; each round loads them in turn (wrk -t1 -c64, or
# h2load -c64 -m10 for h2) from core 1, in an order that gives each
# proxy each place equally often (every 6 rounds with three), with the Go
# backend of ../../../shared/bench on core 1 too.
#
#   bash examples/httplb/ab.sh                      # HTTP/1.1, 24 rounds of 2 s
#   MODE=tcp bash examples/httplb/ab.sh             # the TCP proxy
#   MODE=https bash examples/httplb/ab.sh           # HTTPS/1.1 keep-alive (httpslb)
#   MODE=h2 bash examples/httplb/ab.sh              # HTTP/2 over TLS (httpslb)
#   BASELINE=HEAD~1 bash examples/httplb/ab.sh      # this tree against a commit
#   BASELINE=HEAD SLUICE_ARGS=-no-forwarding bash examples/httplb/ab.sh
#                                                   # the same build, like HAProxy's config: no forwarding fields
#
# Per run: the proxy's CPU time per request, from the run time the kernel
# keeps for each of its threads (/proc/PID/task/*/schedstat, in ns), and
# its kernel and user share (/proc/PID/stat). The summary gives medians
# over the rounds and, for each pair, the median of the per-round ratios
# and how many rounds the second one used less CPU in. An A/A run (two
# identical builds: BASELINE=HEAD on a clean tree) shows the noise floor:
# on a quiet 2-core machine, a median ratio within 0.3 % and about half
# the rounds each way; on a noisy one, 1-2 %, so repeat a run before
# trusting a difference that small.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
MODE=${MODE:-http} # http | tcp | https | h2
ROUNDS=${ROUNDS:-24} # a multiple of 6: every order of three proxies 4 times
DURATION=${DURATION:-2}
CONNS=${CONNS:-64}
BASE=${BASE_PORT:-18280}
BASELINE=${BASELINE:-}
SLUICE_ARGS=${SLUICE_ARGS:-} # more flags for this tree's build only, e.g. -no-forwarding
SLUICE_ENV=${SLUICE_ENV:-}   # and its environment, e.g. GOMAXPROCS=2
OUT=${OUT:-/tmp/ab-$(date +%Y%m%d-%H%M%S)}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
HZ=$(getconf CLK_TCK)

tools="taskset haproxy timeout"
case $MODE in
http | tcp | https) tools+=" wrk" ;;
h2) tools+=" h2load" ;;
*) echo "ab: MODE is http, tcp, https or h2" >&2; exit 1 ;;
esac
[[ $MODE == https || $MODE == h2 ]] && tools+=" openssl"
for t in $tools; do
	command -v "$t" >/dev/null || { echo "ab: $t is missing (bash ../shared/bench/setup.sh installs the tools)" >&2; exit 1; }
done
mkdir -p "$OUT"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[[ -n $BASELINE ]] && git -C "$ROOT" worktree remove --force "$OUT/baseline-src" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

case $MODE in
http) pkg=./examples/httplb ;;
tcp) pkg=./examples/tcpproxy ;;
*) pkg=./examples/httpslb ;;
esac
(cd "$SHARED" && "$GO" build -o "$OUT/backend" ./backend)
(cd "$ROOT" && "$GO" build -o "$OUT/sluice" "$pkg")
names="haproxy sluice"
if [[ -n $BASELINE ]]; then
	git -C "$ROOT" worktree add --detach -q "$OUT/baseline-src" "$BASELINE"
	(cd "$OUT/baseline-src" && "$GO" build -o "$OUT/baseline" "$pkg")
	names="haproxy baseline sluice"
fi

scheme=http bind="" args=()
if [[ $MODE == https || $MODE == h2 ]]; then
	scheme=https
	openssl ecparam -name prime256v1 -genkey -noout -out "$OUT/key.pem" 2>/dev/null
	openssl req -new -x509 -key "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
	cat "$OUT/cert.pem" "$OUT/key.pem" >"$OUT/haproxy.pem"
	bind=" ssl crt $OUT/haproxy.pem alpn h2,http/1.1"
	args=(-cert "$OUT/cert.pem" -key "$OUT/key.pem")
fi
cat >"$OUT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 2000
defaults
    mode $([[ $MODE == tcp ]] && echo tcp || echo http)
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:$((BASE + 1))$bind
    default_backend be
backend be
    server s1 127.0.0.1:$BASE
EOF

taskset -c 1 "$OUT/backend" -listen "127.0.0.1:$BASE" >"$OUT/backend.log" 2>&1 &
PIDS+=($!)
declare -A PID PORT
port=$((BASE + 1))
for n in $names; do
	PORT[$n]=$port
	case $n in
	haproxy) taskset -c 0 haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/$n.log" 2>&1 & ;;
	sluice) taskset -c 0 env $SLUICE_ENV "$OUT/$n" -listen "127.0.0.1:$port" -backend "127.0.0.1:$BASE" -workers 1 "${args[@]}" $SLUICE_ARGS >"$OUT/$n.log" 2>&1 & ;;
	*) taskset -c 0 "$OUT/$n" -listen "127.0.0.1:$port" -backend "127.0.0.1:$BASE" -workers 1 "${args[@]}" >"$OUT/$n.log" 2>&1 & ;;
	esac
	PID[$n]=$!
	PIDS+=($!)
	port=$((port + 1))
done
for n in $names; do
	for _ in $(seq 100); do
		(echo >/dev/tcp/127.0.0.1/"${PORT[$n]}") 2>/dev/null && break
		sleep 0.1
	done
done

runtime_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'; }
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # user and system
load() { # url seconds -> requests completed
	local raw
	case $MODE in
	h2)
		raw=$(timeout $(($2 + 20)) taskset -c 1 h2load -t1 -c"$CONNS" -m10 -D"$2" "$1")
		awk '/^requests:/ {print $4}' <<<"$raw"
		;;
	*)
		raw=$(timeout $(($2 + 20)) taskset -c 1 wrk -t1 -c"$CONNS" -d"$2s" "$1")
		awk '/requests in/ {print $1}' <<<"$raw"
		;;
	esac
}
run() { # name: one measured run -> "ns-per-request req/s kernel-share"
	local p=${PID[$1]} url="$scheme://127.0.0.1:${PORT[$1]}/" c0 c1 u0 s0 u1 s1 n
	c0=$(runtime_ns "$p")
	read -r u0 s0 < <(ticks "$p")
	n=$(load "$url" "$DURATION")
	c1=$(runtime_ns "$p")
	read -r u1 s1 < <(ticks "$p")
	awk -v c=$((c1 - c0)) -v n="${n:-0}" -v d="$DURATION" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
		'BEGIN { if (n == 0) { print "0 0 0"; exit } printf "%.0f %.0f %.2f\n", c / n, n / d, (u + s > 0 ? s / (u + s) : 0) }'
}

for n in $names; do load "$scheme://127.0.0.1:${PORT[$n]}/" 1 >/dev/null; done # warm up

echo "# $MODE: $names, $ROUNDS alternating rounds of ${DURATION}s ($(date -u +%F), $(nproc) cores)"
echo
echo "| round | $(sed 's/ / ns\/req | /g' <<<"$names") ns/req | $(sed 's/ / req\/s | /g' <<<"$names") req/s |"
echo "|---$(for _ in $names $names; do printf '|---:'; done)|"
: >"$OUT/rounds.txt"
for round in $(seq "$ROUNDS"); do
	# Rotate by one every two rounds and reverse every other round: with
	# three proxies that walks all six orders, so no proxy keeps a place
	# (the one in the middle always ran right after another's load).
	read -ra order <<<"$names"
	rot=$(((round - 1) / 2 % ${#order[@]}))
	order=("${order[@]:rot}" "${order[@]:0:rot}")
	((round % 2 == 0)) && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
	declare -A NS=() RPS=() SYS=()
	for n in "${order[@]}"; do
		read -r NS[$n] RPS[$n] SYS[$n] < <(run "$n")
	done
	line="$round"
	for n in $names; do line+=" ${NS[$n]}"; done
	for n in $names; do line+=" ${SYS[$n]}"; done
	echo "$line" >>"$OUT/rounds.txt"
	echo "| $round | $(for n in $names; do printf '%s | ' "${NS[$n]}"; done)$(for n in $names; do printf '%s | ' "${RPS[$n]}"; done)"
done

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
k=$(wc -w <<<"$names")
echo
echo "| proxy | CPU ns per request (median) | kernel share (median) |"
echo "|---|---:|---:|"
i=2
for n in $names; do
	echo "| $n | $(awk -v i=$i '{print $i}' "$OUT/rounds.txt" | median) | $(awk -v i=$((i + k)) '{print $i}' "$OUT/rounds.txt" | median) |"
	i=$((i + 1))
done
echo
echo "| pair | per-round CPU ratio (median) | rounds the second used less CPU |"
echo "|---|---:|---:|"
pair() { # name1 col1 name2 col2
	echo "| $1 / $3 | $(awk -v a="$2" -v b="$4" '{printf "%.4f\n", $a / $b}' "$OUT/rounds.txt" | median) | $(awk -v a="$2" -v b="$4" '$b < $a' "$OUT/rounds.txt" | wc -l) of $ROUNDS |"
}
if [[ -n $BASELINE ]]; then
	pair haproxy 2 sluice 4
	pair baseline 3 sluice 4
else
	pair haproxy 2 sluice 3
fi
echo
echo "A ratio above 1 means the second proxy used less CPU per request. Raw rounds: $OUT/rounds.txt"
