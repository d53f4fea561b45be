#!/usr/bin/env bash
# Benchmark of the data plane against nginx, side by side in one run on this machine.
#
# - Upstream: an nginx instance (1 worker) answering a small static body on 127.0.0.1.
# - Peers: nginx (Debian package, worker_processes auto, keep-alive upstream pool, no access
#   log, Host kept and X-Forwarded-For/-Proto/-Host set as portcullis does) and portcullis
#   (release build, no access log), both proxying that same upstream.
# - Load: wrk, 50 keep-alive connections, GET /, $ROUNDS alternating rounds of $DURATION each
#   (which goes first swaps every round); the median round is reported, with the CPU time each
#   proxy spent per request (utime+stime from /proc), which stays meaningful when the machine is
#   noisy or the load generator limits. It is also shown split: user time is the proxy's own code,
#   kernel time mostly the sockets. On a shared machine whose speed swings from minute to minute,
#   the paired ratios (each round against the other proxy's round next to it) are the steadier
#   figure.
# - Scheduling: each proxy runs in a session of its own (nginx daemonizes; portcullis is started
#   with setsid), so the kernel's per-session group scheduling treats them alike.
# - Placement: with 2+ CPUs the proxy under test gets CPU 1 to itself (nginx with one worker,
#   portcullis with one connection worker: a per-core comparison) and wrk and the upstream share
#   CPU 0. PIN=0 runs everything unpinned (nginx worker_processes auto, portcullis one worker per
#   core).
# - Memory: portcullis RSS idle, then with 1,000 routes loaded.
# - Reload: time to compile and swap in 5,000 routes while wrk keeps sending (non-2xx counted).
# - Build: the plain release build; PGO=1 measures the profile-guided one (hack/build-pgo.sh),
#   PORTCULLIS_BIN=path a serve_snapshot binary built before.
#
# Needs: wrk, nginx, curl, jq (apt-get install wrk nginx curl jq). Run from anywhere:
#   hack/bench-proxy.sh            # DURATION=5s ROUNDS=9 CONNECTIONS=50 PIN=1 by default
set -euo pipefail

ROUNDS="${ROUNDS:-9}"
# shellcheck source=hack/bench-rig.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-rig.sh"
UPSTREAM_PORT="${UPSTREAM_PORT:-18081}"
NGINX_PORT="${NGINX_PORT:-18082}"
PORTCULLIS_PORT="${PORTCULLIS_PORT:-18083}"

require_tools wrk nginx curl jq
build_portcullis

# shellcheck source=hack/bench-nginx.sh
. "$ROOT/hack/bench-nginx.sh"
nginx_conf upstream "worker_processes 1;" "$(upstream_http "$UPSTREAM_PORT")"
start_nginx upstream "$([ "$PIN" = 1 ] && echo 0)"
nginx_conf nginx "worker_processes $NGINX_WORKERS;" "$(proxy_http "$NGINX_PORT" "$UPSTREAM_PORT")"
start_nginx nginx "$([ "$PIN" = 1 ] && echo 1)"

# Snapshots as the operator stores them in a Gateway's ConfigMap (JSON, which is YAML too).
"$BIN" generate 1 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/config.yaml"
"$BIN" generate 1000 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/routes-1000.yaml"
"$BIN" generate 5000 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" > "$WORK/routes-5000.yaml"
start_portcullis "$WORK/config.yaml"
curl -sf "http://127.0.0.1:$PORTCULLIS_PORT/" >/dev/null
curl -sf "http://127.0.0.1:$NGINX_PORT/" >/dev/null

revision() { curl -sf "http://$ADMIN/config" | jq -r .revision; }
wait_revision() { # expected
  for _ in $(seq 1000); do [ "$(revision)" = "$1" ] && return 0; sleep 0.01; done
  echo "bench: revision $1 never loaded" >&2; curl -s "http://$ADMIN/config" | jq .lastReloadError >&2; exit 1
}
file_revision() { jq -r .revision "$1"; }

IDLE_RSS=$(rss_kb)

mapfile -t NGINX_PIDS < <(pgrep -P "$(cat "$WORK/nginx.pid")")

echo "== load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, GET /, $ROUNDS alternating rounds (pinned: $PIN)"
"${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORTCULLIS_PORT/" >/dev/null
"${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$NGINX_PORT/" >/dev/null
# Alternating, and the order swapped every round (portcullis first in odd rounds), so that
# neither always runs right after the other.
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    run_round portcullis "http://127.0.0.1:$PORTCULLIS_PORT/" "$PORTCULLIS_PID"
    run_round nginx "http://127.0.0.1:$NGINX_PORT/" "${NGINX_PIDS[*]}"
  else
    run_round nginx "http://127.0.0.1:$NGINX_PORT/" "${NGINX_PIDS[*]}"
    run_round portcullis "http://127.0.0.1:$PORTCULLIS_PORT/" "$PORTCULLIS_PID"
  fi
done
PAIRED_RPS=$(paired portcullis nginx | cut -d' ' -f1 | column_median)
PAIRED_RPS_RANGE=$(paired portcullis nginx | cut -d' ' -f1 | column_range)
PAIRED_P99=$(paired portcullis nginx | cut -d' ' -f2 | column_median)
P_P99_MEDIAN=$(cut -d' ' -f2 "$WORK/portcullis.rounds" | while read -r t; do ms "$t"; done | column_median)
N_P99_MEDIAN=$(cut -d' ' -f2 "$WORK/nginx.rounds" | while read -r t; do ms "$t"; done | column_median)
read -r P_RPS P_P99 P_US P_ERR P_USER P_KERNEL <<<"$(median portcullis)"
read -r N_RPS N_P99 N_US N_ERR N_USER N_KERNEL <<<"$(median nginx)"

echo "== memory: 1,000 routes"
cp "$WORK/routes-1000.yaml" "$WORK/config.yaml"
wait_revision "$(file_revision "$WORK/routes-1000.yaml")"
sleep 1
RSS_1000=$(rss_kb)

echo "== reload: 5,000 routes swapped in under load"
"${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d5s "http://127.0.0.1:$PORTCULLIS_PORT/r4999x/" > "$WORK/swap.wrk" &
WRK_PID=$!
sleep 1
cp "$WORK/routes-5000.yaml" "$WORK/config.yaml"
wait_revision "$(file_revision "$WORK/routes-5000.yaml")"
wait "$WRK_PID"
SWAP_MS=$(curl -sf "http://$ADMIN/config" | jq .lastSwapMillis)
RELOAD_MS=$(curl -sf "http://$ADMIN/config" | jq .lastReloadMillis)
SWAP_REQS=$(awk '/requests in/ {print $1}' "$WORK/swap.wrk")
SWAP_ERR=$(awk '/Non-2xx|Socket errors/' "$WORK/swap.wrk" | tr '\n' ' ')
RSS_5000=$(rss_kb)
PARSE=$("$BIN" parse "$WORK/routes-5000.yaml")

RATIO=$(awk -v p="$P_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", p / n }')
CPU_RATIO=$(awk -v p="$P_US" -v n="$N_US" 'BEGIN { printf "%.2f", p / n }')
cat <<REPORT

Portcullis data-plane benchmark ($(date -u +%Y-%m-%dT%H:%MZ))
machine: $(machine)
portcullis build: $BUILD_KIND
load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, GET /, static upstream (nginx, 1 worker);
      median of $ROUNDS alternating rounds (the median round by requests/s below); pinned: $PIN
      (1 = proxy alone on CPU 1, wrk + upstream on CPU 0)

                 requests/s     p99        CPU/request (user + kernel)   errors
  portcullis     $P_RPS      $P_P99    ${P_US} us (${P_USER} + ${P_KERNEL})          $P_ERR
  nginx          $N_RPS      $N_P99    ${N_US} us (${N_USER} + ${N_KERNEL})          $N_ERR
  portcullis / nginx, paired rounds (each round against the other's next to it; median ratio):
      requests/s $PAIRED_RPS (rounds $PAIRED_RPS_RANGE), p99 $PAIRED_P99
  portcullis / nginx, the median rounds above: requests/s $RATIO, CPU per request $CPU_RATIO
  p99 over all rounds (median): portcullis ${P_P99_MEDIAN} ms, nginx ${N_P99_MEDIAN} ms

memory (RSS): idle $((IDLE_RSS / 1024)) MB; 1,000 routes $((RSS_1000 / 1024)) MB; 5,000 routes $((RSS_5000 / 1024)) MB
reload of 5,000 routes: compile + swap ${SWAP_MS} ms; read + parse + compile + swap ${RELOAD_MS} ms
  under load meanwhile: ${SWAP_REQS} requests, errors: ${SWAP_ERR:-none}
  parsing the 5,000-route snapshot alone (idle): $PARSE
REPORT
