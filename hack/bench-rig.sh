# shellcheck shell=bash
# Sourced by the bench scripts (hack/bench-proxy.sh, hack/bench-policies.sh): the rig they stand
# on. Where each process runs, the portcullis build under test, the work directory and its
# cleanup, and wrk rounds measured with the CPU time the processes under load spent.
#
# The script sets ROUNDS (its own default) before sourcing this; DURATION, CONNECTIONS, PIN,
# THREADS, ADMIN_PORT, PORTCULLIS_BIN and PGO come from the environment.
# shellcheck disable=SC2034 # NGINX_WORKERS, BUILD_KIND and others are for those scripts

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-50}"
PIN="${PIN:-1}"
[ "$(nproc)" -ge 2 ] || PIN=0
if [ "$PIN" = 1 ]; then
  LOAD_CPU=(taskset -c 0); PROXY_CPU=(taskset -c 1); NGINX_WORKERS=1; THREADS="${THREADS:-1}"
else
  LOAD_CPU=(); PROXY_CPU=(); NGINX_WORKERS=auto; THREADS="${THREADS:-2}"
fi
ADMIN="127.0.0.1:${ADMIN_PORT:-18090}"
HZ=$(getconf CLK_TCK)

require_tools() { # tool... (each the name of its Debian package too)
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)" >&2; exit 1; }
  done
}

# Sets BIN (the serve_snapshot binary to measure) and BUILD_KIND (what it is, for the report).
build_portcullis() {
  if [ -n "${PORTCULLIS_BIN:-}" ]; then
    BIN="$PORTCULLIS_BIN"
    BUILD_KIND="$BIN"
  elif [ "${PGO:-0}" = 1 ]; then
    echo "== building portcullis (release, profile-guided: hack/build-pgo.sh)"
    BIN="$("$ROOT/hack/build-pgo.sh" serve_snapshot | tail -n 1)"
    BUILD_KIND="release, profile-guided (hack/build-pgo.sh)"
  else
    echo "== building portcullis (release)"
    (cd "$ROOT" && cargo build --quiet --release -p portcullis-proxy --example serve_snapshot)
    BIN="$ROOT/target/release/examples/serve_snapshot"
    BUILD_KIND="release"
  fi
}

# Processes started in the background go into PIDS; nginx instances leave their $WORK/NAME.pid.
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid file
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for file in "$WORK"/*.pid; do
    if [ -f "$file" ]; then kill "$(cat "$file")" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Serves CONFIG with $ADMIN as the admin address; sets PORTCULLIS_PID and waits until ready.
# In a session of its own, as nginx is (it daemonizes): the kernel schedules each session as a
# group (autogroup), and a proxy left in this script's session would share wrk's group: its load
# on CPU 1 would shrink wrk's share of CPU 0 against the upstream's, and wrk would be preempted
# more often. Measured so, Portcullis's rounds woke the upstream 2.5 times as often as nginx's.
start_portcullis() { # config
  setsid "${PROXY_CPU[@]}" "$BIN" serve "$1" "$ADMIN" > "$WORK/portcullis.log" 2>&1 &
  PORTCULLIS_PID=$!
  PIDS+=("$PORTCULLIS_PID")
  for _ in $(seq 100); do
    curl -sf "http://$ADMIN/ready" >/dev/null && break
    sleep 0.1
  done
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PORTCULLIS_PID/status"; }

# CPU ticks of the processes: "user kernel".
ticks() { local u=0 k=0 p; for p in "$@"; do read -r pu pk < <(awk '{print $14, $15}' "/proc/$p/stat"); u=$((u + pu)); k=$((k + pk)); done; echo "$u $k"; }

# One wrk round against URL, appended to $WORK/NAME.rounds as "rps p99 us errors user kernel"
# (us: CPU per request of PIDS, a space-separated list) and printed.
run_round() { # name url pids [wrk args...]
  local name=$1 url=$2 pids=$3; shift 3
  local user0 kernel0 user1 kernel1
  # shellcheck disable=SC2086 # the pids are words
  read -r user0 kernel0 <<<"$(ticks $pids)"
  "${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" > "$WORK/$name.wrk"
  # shellcheck disable=SC2086
  read -r user1 kernel1 <<<"$(ticks $pids)"
  local rps p99 requests errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/$name.wrk")
  requests=$(awk '/requests in/ {print $1}' "$WORK/$name.wrk")
  errors=$(awk '/Non-2xx|Socket errors/' "$WORK/$name.wrk" | tr -d '\n' | tr ' ' '_')
  per_request() { awk -v t="$1" -v hz="$HZ" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
  local us user kernel
  us=$(per_request $((user1 - user0 + kernel1 - kernel0)))
  user=$(per_request $((user1 - user0)))
  kernel=$(per_request $((kernel1 - kernel0)))
  echo "$rps $p99 $us ${errors:-none} $user $kernel" >> "$WORK/$name.rounds"
  echo "   $name: $rps req/s, p99 $p99, $us us CPU/request ($user user + $kernel kernel), errors: ${errors:-none}"
}

# The median round of NAME by requests/s, as run_round wrote it.
median() { sort -n -k1 "$WORK/$1.rounds" | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)'; }
# wrk's latency ("950.00us", "1.12ms", "1.01s") in milliseconds.
ms() { awk -v t="$1" 'BEGIN { v = t + 0; if (t ~ /us$/) v /= 1000; else if (t ~ /[0-9]s$/ && t !~ /ms$/) v *= 1000; print v }'; }
# Round by round, A against the B round run next to it: "rps-ratio p99-ratio" per line. Paired,
# the ratios cancel the machine's slow swings that the medians still feel.
paired() { # a b
  paste -d' ' "$WORK/$1.rounds" "$WORK/$2.rounds" | while read -r arps ap99 _ _ _ _ brps bp99 _; do
    awk -v a="$arps" -v b="$brps" -v c="$(ms "$ap99")" -v d="$(ms "$bp99")" 'BEGIN { printf "%.3f %.3f\n", a / b, c / d }'
  done
}
column_median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }
column_range() { sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }

# The machine, the peer and the load generator, for the report's header.
machine() {
  echo "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $(nginx -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
}
