#!/usr/bin/env bash
# A real client against kqring's examples/http_server (polling thread and
# inline), its async/await twin examples/async_http_server (inline), and
# against the same minimal keep-alive server on tokio's
# current-thread runtime (bench/examples/http_tokio.rs): wrk -t1 -d5s at 100
# and 1,000 connections, rounds interleaved across servers, each figure the
# median of the rounds. It also reads each server's CPU time (user + system,
# /proc/PID/stat) around each run: µs of server CPU per request.
#
#   bash bench/wrk.sh                     # 3 rounds
#   ROUNDS=5 DURATION=10s CONNS="100 1000 5000" bash bench/wrk.sh
#
# Needs wrk (Debian: apt-get install -y wrk). Everything runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-"100 1000"}
target=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk not found (Debian: apt-get install -y wrk)" >&2; exit 1; }

cargo build --release --example http_server --example async_http_server
cargo build --release -p kqring-bench --example http_tokio
# 1,000 connections need as many descriptors in wrk and in each server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

servers=(kqring-poller kqring-inline kqring-async tokio-ct)
declare -A url pid_of
start() { # name, command...
    local name=$1; shift
    "$@" >"$work/$name.out" 2>&1 &
    local pid=$!
    pids+=("$pid")
    pid_of[$name]=$pid
    # The server prints its address once it listens.
    for _ in $(seq 1 100); do
        if grep -q "listening on" "$work/$name.out"; then break; fi
        kill -0 "$pid" 2>/dev/null || { cat "$work/$name.out" >&2; exit 1; }
        sleep 0.1
    done
    url[$name]=$(grep -o 'http://[^ ]*' "$work/$name.out" | head -1)
    [ -n "${url[$name]}" ] || { echo "$name did not start" >&2; exit 1; }
}
start kqring-poller "$target/release/examples/http_server"
start kqring-inline "$target/release/examples/http_server" --inline
# The same server written with kqring's futures, on an inline ring under
# kqring's block_on.
start kqring-async "$target/release/examples/async_http_server" --inline
start tokio-ct "$target/release/examples/http_tokio"

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "wrk -t1 -d$DURATION, $ROUNDS interleaved rounds; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    for c in $CONNS; do
        for s in "${servers[@]}"; do
            before=$(cpu_ticks "${pid_of[$s]}")
            wrk -t1 -c"$c" -d"$DURATION" --latency "${url[$s]}" >"$work/wrk.out"
            after=$(cpu_ticks "${pid_of[$s]}")
            rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out")
            total=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
            p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk.out")
            p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.out")
            errors=$(awk '/Socket errors|Non-2xx/ { print }' "$work/wrk.out" | tr '\n' ' ')
            cpu_us=$(awk -v t=$((after - before)) -v hz="$tck" -v n="$total" \
                'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }')
            echo "$round $c $s $rps $p50 $p99 $cpu_us $errors" >>"$work/results"
            printf '  round %s, %5s conn, %-13s %10s req/s  p50 %8s  p99 %8s  %6s µs CPU/req %s\n' \
                "$round" "$c" "$s" "$rps" "$p50" "$p99" "$cpu_us" "$errors"
        done
    done
done

echo
echo "| connections | server | req/s (median) | p50 | p99 | server CPU µs/req | req/s / tokio ct |"
echo "|--:|---|--:|--:|--:|--:|--:|"
for c in $CONNS; do
    median() { # server, column
        awk -v c="$c" -v s="$1" -v k="$2" '$2 == c && $3 == s { print $k }' "$work/results" |
            sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
    }
    base=$(median tokio-ct 4)
    for s in "${servers[@]}"; do
        rps=$(median "$s" 4)
        ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2fx", a / b }')
        # Latency medians are of wrk's own strings (e.g. 1.23ms); sorted as
        # numbers they are only comparable within one unit, so the median
        # run by throughput gives them instead.
        line=$(awk -v c="$c" -v s="$s" -v r="$rps" '$2 == c && $3 == s && $4 == r { print; exit }' "$work/results")
        read -r _ _ _ _ p50 p99 cpu _ <<<"$line"
        echo "| $c | $s | $rps | $p50 | $p99 | $cpu | $ratio |"
    done
done
