#!/usr/bin/env bash
# Benchmark of the data plane's policies (issue 14): what authentication, rate limiting and
# caching cost per request, and what their state costs in memory, side by side in one run.
#
# - One portcullis process (release build, no access log) serves every rule below, each on a path
#   of its own, all forwarding to one upstream: nginx (1 worker) answering a small static body,
#   and a 64 KiB one under /fill.
#     /plain   no policy: the reference.
#     /jwt     JWT auth, RS256 (key pair and a ten-year token made here with openssl, the JWKS
#              in a Secret file), and a Local rate limit by client IP that never triggers
#              (1,000,000,000 per second).
#     /cached  cache (Local, ttl 10 min): every measured request is a hit.
#     /global  a Global rate limit that never triggers, counted in a redis-server started here. A
#              build that does not serve scope Global answers 503 with `portcullis-unserved`; the
#              scenario is then reported as skipped.
#     /keyed   a Local rate limit keyed by the X-Client header (memory only).
#     /fill    cache (Local), 64 KiB answers (memory only).
#   Beside it, nginx with proxy_cache (in a temporary directory, proxy_cache_valid 200 10m, one
#   worker when pinned) in front of the same upstream: its hits are the reference for /cached.
#   Every cache is checked to answer hits (X-Cache, X-Cache-Status) before anything is measured.
# - Load: wrk, 50 keep-alive connections, GET; $ROUNDS rounds of $DURATION for each scenario, the
#   scenarios' order rotating every round; the median round of each is reported with the CPU time
#   per request of the proxy under test, and each ratio is the median of paired rounds (the
#   scenario's round against the other one's round of the same rotation), the steadier figure on
#   a noisy machine. The targets of issue 14 are printed beside the ratios: they are figures to
#   read, nothing fails on speed.
# - Placement, sessions and build as hack/bench-proxy.sh: the proxy under test alone on CPU 1,
#   wrk, the upstream and redis on CPU 0 (PIN=0: unpinned); PGO=1 or PORTCULLIS_BIN=path.
# - Memory (portcullis RSS, VmRSS): idle with these rules loaded; after the measurements; after
#   100,000 distinct X-Client values on /keyed; after distinct 64 KiB answers worth at least twice the
#   cache's bound (64 MiB) went through /fill.
#
# Needs: wrk, nginx, redis-server, openssl, curl, jq
#   (apt-get install wrk nginx redis-server openssl jq curl). Run from anywhere:
#   hack/bench-policies.sh         # DURATION=5s ROUNDS=5 CONNECTIONS=50 PIN=1 by default
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
# shellcheck source=hack/bench-rig.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-rig.sh"
# The first port from $1 on that nothing listens on.
free_port() { local port=$1; while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done; echo "$port"; }
UPSTREAM_PORT="${UPSTREAM_PORT:-18081}"
PORTCULLIS_PORT="${PORTCULLIS_PORT:-18083}"
NGINX_CACHE_PORT="${NGINX_CACHE_PORT:-18084}"
REDIS_PORT="${REDIS_PORT:-$(free_port 18086)}"
FILL_BYTES=65536
CACHE_BOUND=$((64 * 1024 * 1024)) # CACHE_BYTES in crates/proxy/src/compile/policy.rs
KEYS=100000

require_tools wrk nginx redis-server openssl curl jq
build_portcullis

# shellcheck source=hack/bench-nginx.sh
. "$ROOT/hack/bench-nginx.sh"
# nginx's workers (not root) must reach the file it serves and the cache folder it makes.
chmod o+x "$WORK"
mkdir -p "$WORK/www"
head -c $((FILL_BYTES * 3 / 4)) /dev/urandom | base64 -w0 > "$WORK/www/fill.bin"
nginx_conf upstream "worker_processes 1;" "$(upstream_http "$UPSTREAM_PORT" \
  "location /fill { root $WORK/www; try_files /fill.bin =404; }")"
start_nginx upstream "$([ "$PIN" = 1 ] && echo 0)"
nginx_conf nginx-cache "worker_processes $NGINX_WORKERS;" \
  "proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=bench:10m max_size=256m;
  $(proxy_http "$NGINX_CACHE_PORT" "$UPSTREAM_PORT" \
    "proxy_cache bench; proxy_cache_valid 200 10m; add_header X-Cache-Status \$upstream_cache_status;")"
start_nginx nginx-cache "$([ "$PIN" = 1 ] && echo 1)"

# Redis beside the upstream, in a session of its own as the upstream nginx is; nothing on disk.
setsid "${LOAD_CPU[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  --daemonize no > "$WORK/redis.log" 2>&1 &
PIDS+=("$!")
redis() { # command: its one-line reply
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"
  printf '%s\r\n' "$1" >&3
  read -r reply <&3
  exec 3<&-
  echo "${reply%$'\r'}"
}
for _ in $(seq 100); do [ "$(redis PING 2>/dev/null)" = +PONG ] && break; sleep 0.1; done
[ "$(redis PING)" = +PONG ] || { echo "bench: redis-server did not start:" >&2; cat "$WORK/redis.log" >&2; exit 1; }

# The JWT key pair, its JWKS and a token valid for ten years. serve_snapshot reads Secrets under
# the config file's name with the extension .secrets.
SECRETS="$WORK/config.secrets"
ISSUER="https://issuer.bench.portcullis.dev"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
mkdir -p "$SECRETS/bench/jwks"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:65537 \
  -out "$WORK/jwt.key" 2>/dev/null
MODULUS=$(openssl rsa -in "$WORK/jwt.key" -noout -modulus | cut -d= -f2)
# shellcheck disable=SC2001 # bash's own replacement has no & for the match
jq -n --arg n "$(printf '%b' "$(sed 's/../\\x&/g' <<<"$MODULUS")" | b64url)" \
  '{keys: [{kty: "RSA", kid: "bench", alg: "RS256", use: "sig", n: $n, e: "AQAB"}]}' \
  > "$SECRETS/bench/jwks/jwks.json"
JWT_HEAD=$(printf '{"alg":"RS256","typ":"JWT","kid":"bench"}' | b64url)
JWT_CLAIMS=$(jq -cjn --arg iss "$ISSUER" --argjson exp $(($(date +%s) + 10 * 365 * 86400)) \
  '{iss: $iss, sub: "bench", exp: $exp}' | b64url)
JWT_SIGNATURE=$(printf '%s' "$JWT_HEAD.$JWT_CLAIMS" | openssl dgst -sha256 -binary -sign "$WORK/jwt.key" | b64url)
TOKEN="$JWT_HEAD.$JWT_CLAIMS.$JWT_SIGNATURE"

# The snapshot: serve_snapshot's one-rule snapshot (listener, upstream backend), its rule repeated
# with each path's policies. None of the paths is a prefix of another, so their order is free.
NEVER="\"requests\": 1000000000, \"periodMs\": 1000, \"burst\": 0"
cat > "$WORK/policies.json" <<JSON
{
  "plain": {},
  "jwt": {
    "auth": {"type": "JWT", "issuer": "$ISSUER", "algorithms": ["RS256"],
      "jwks": {"secret": {"namespace": "bench", "name": "jwks", "key": "jwks.json", "path": "bench/jwks/jwks.json"}}},
    "rateLimit": {$NEVER, "key": {"type": "ClientIP"}, "scope": "Local"}
  },
  "cached": {"cache": {"ttlMs": 600000, "backend": "Local"}},
  "global": {"rateLimit": {$NEVER, "key": {"type": "ClientIP"}, "scope": "Global"}},
  "keyed": {"rateLimit": {$NEVER, "key": {"type": "Header", "name": "x-client"}, "scope": "Local"}},
  "fill": {"cache": {"ttlMs": 600000, "backend": "Local"}}
}
JSON
"$BIN" generate 0 "$PORTCULLIS_PORT" "127.0.0.1:$UPSTREAM_PORT" \
  | jq --slurpfile policies "$WORK/policies.json" --arg redis "127.0.0.1:$REDIS_PORT" '
    ($policies[0] | to_entries) as $paths
    | .rules[0] as $rule
    | .revision = "bench-policies"
    | .rules = [$paths[] | $rule + {route: {namespace: "bench", name: .key}, policies: .value}]
    | .listeners[0].virtualHosts[0].routes = [$paths | keys[] as $i
        | {rule: $i, matchIndex: 0, match: {path: {type: "PathPrefix", value: "/\($paths[$i].key)"}}}]
    | .sharedState = {redis: {address: $redis}}' > "$WORK/config.yaml"

start_portcullis "$WORK/config.yaml"
curl -sf "http://$ADMIN/ready" >/dev/null || { echo "bench: portcullis is not ready:" >&2; cat "$WORK/portcullis.log" >&2; exit 1; }
UNSERVED=$(curl -sf "http://$ADMIN/config" | jq -c '[.unservedRules[] | select(.route != "bench/global")]')
[ "$UNSERVED" = "[]" ] || { echo "bench: this build does not serve rules it must: $UNSERVED" >&2; exit 1; }
sleep 1
IDLE_RSS=$(rss_kb)

P="http://127.0.0.1:$PORTCULLIS_PORT"
N="http://127.0.0.1:$NGINX_CACHE_PORT"
# The head of a GET's response (CR removed), and one field of it (":status" for the status).
response_head() { curl -s -o /dev/null -D - "$@" | tr -d '\r'; }
field() { # name url [curl args...]
  local name=$1; shift
  response_head "$@" | awk -v name="$name" -F': ' '
    NR == 1 && name == ":status" { split($0, line, " "); print line[2]; exit }
    tolower($1) == tolower(name) { print $2; exit }'
}
expect() { # what got wanted
  [ "$2" = "$3" ] || { echo "bench: $1: got ${2:-nothing}, expected $3" >&2; exit 1; }
}
echo "== checks"
expect "GET /plain" "$(field :status "$P/plain")" 200
expect "GET /jwt without a token" "$(field :status "$P/jwt")" 401
expect "GET /jwt with the token" "$(field :status "$P/jwt" -H "Authorization: Bearer $TOKEN")" 200
# The first GET of each is answered by the upstream and stored, the second must be a hit.
hit() { # url field
  expect "GET ${1#http://}" "$(field :status "$1")" 200
  expect "$2 of a second GET ${1#http://}" "$(field "$2" "$1")" HIT
}
hit "$P/cached" X-Cache
hit "$P/fill/probe" X-Cache
expect "Content-Length of GET /fill/probe" "$(field Content-Length "$P/fill/probe")" "$FILL_BYTES"
hit "$N/cached" X-Cache-Status
SCENARIOS=(plain jwt cached nginx-hit)
GLOBAL_HEAD=$(response_head "$P/global")
GLOBAL_STATUS=$(awk 'NR == 1 {print $2}' <<<"$GLOBAL_HEAD")
GLOBAL_SKIPPED=""
if [ "$GLOBAL_STATUS" = 200 ]; then
  SCENARIOS+=(global)
elif [ "$GLOBAL_STATUS" = 503 ] && grep -qi '^portcullis-unserved:' <<<"$GLOBAL_HEAD"; then
  GLOBAL_SKIPPED="skipped: scope Global not served by this build"
  echo "   global rate limit: $GLOBAL_SKIPPED ($(awk -F': ' 'tolower($1) == "portcullis-unserved" {print $2}' <<<"$GLOBAL_HEAD"))"
else
  echo "bench: GET /global answered $GLOBAL_STATUS:" >&2; echo "$GLOBAL_HEAD" >&2; exit 1
fi

mapfile -t NGINX_PIDS < <(pgrep -P "$(cat "$WORK/nginx-cache.pid")" -f 'worker process')
measure() { # scenario
  case $1 in
    plain) run_round plain "$P/plain" "$PORTCULLIS_PID" ;;
    jwt) run_round jwt "$P/jwt" "$PORTCULLIS_PID" -H "Authorization: Bearer $TOKEN" ;;
    cached) run_round cached "$P/cached" "$PORTCULLIS_PID" ;;
    nginx-hit) run_round nginx-hit "$N/cached" "${NGINX_PIDS[*]}" ;;
    global) run_round global "$P/global" "$PORTCULLIS_PID" ;;
  esac
}

echo "== load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, GET, $ROUNDS rounds of: ${SCENARIOS[*]} (pinned: $PIN)"
for scenario in "${SCENARIOS[@]}"; do # warm-up, not kept
  DURATION=2s measure "$scenario" >/dev/null
  rm "$WORK/$scenario.rounds"
done
# Every round runs each scenario once, in the list's order but starting one further along each
# time: each takes every place in a round in turn (none is always first, or last), and the rounds
# compared (jwt and plain, the two hits) stay next to each other.
for round in $(seq "$ROUNDS"); do
  for i in "${!SCENARIOS[@]}"; do
    measure "${SCENARIOS[$(((round - 1 + i) % ${#SCENARIOS[@]}))]}"
  done
done
GLOBAL_KEYS_LINE=""
[ -n "$GLOBAL_SKIPPED" ] || GLOBAL_KEYS_LINE=$'\n'"  (keys in Redis after the Global rounds: $(redis DBSIZE | tr -d :))"
LOADED_RSS=$(rss_kb)

# Drives distinct requests at PATH until COUNT answers came back: the X-Client header (IN=header)
# or the query string (IN=query) of each carries a value of its own. Prints the answers counted
# and the errors wrk reported.
cat > "$WORK/distinct.lua" <<'LUA'
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local prefix, query, n
function init()
  prefix = os.getenv("BENCH_OFFSET") .. "-" .. id .. "-"
  query = os.getenv("BENCH_IN") == "query"
  n = 0
end
function request()
  n = n + 1
  if query then
    return wrk.format(nil, wrk.path .. "?k=" .. prefix .. n)
  end
  return wrk.format(nil, nil, { ["X-Client"] = prefix .. n })
end
LUA
drive() { # path in count
  local answered=0 errors="" n
  while [ "$answered" -lt "$3" ]; do
    BENCH_OFFSET=$answered BENCH_IN=$2 "${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d1s \
      -s "$WORK/distinct.lua" "$P$1" > "$WORK/drive.wrk"
    n=$(awk '/requests in/ {print $1}' "$WORK/drive.wrk")
    [ "$n" -gt 0 ] || { echo "bench: no answer from $1:" >&2; cat "$WORK/drive.wrk" >&2; exit 1; }
    answered=$((answered + n))
    errors+=$(awk '/Non-2xx|Socket errors/' "$WORK/drive.wrk" | tr '\n' ' ')
  done
  echo "$answered ${errors:-none}"
}
echo "== memory: $KEYS distinct rate-limit keys (/keyed)"
read -r KEYS_SENT KEYS_ERRORS <<<"$(drive /keyed header "$KEYS")"
sleep 1
KEYS_RSS=$(rss_kb)
echo "== memory: the Local cache filled (/fill, $((FILL_BYTES / 1024)) KiB answers)"
read -r FILLS FILL_ERRORS <<<"$(drive /fill query $((2 * CACHE_BOUND / FILL_BYTES)))"
sleep 1
FILL_RSS=$(rss_kb)

row() { # scenario label
  local rps p99 us errors user kernel
  if [ ! -f "$WORK/$1.rounds" ]; then printf '  %-40s %s\n' "$2" "$GLOBAL_SKIPPED"; return; fi
  read -r rps p99 us errors user kernel <<<"$(median "$1")"
  printf '  %-40s %10s  %9s  %-28s %s\n' "$2" "$rps" "$p99" "$us us ($user + $kernel)" "$errors"
}
ratio() { # a b label target
  if [ ! -f "$WORK/$1.rounds" ]; then printf '  %-34s %s\n' "$3" "$GLOBAL_SKIPPED"; return; fi
  local paired_median range medians
  paired_median=$(paired "$1" "$2" | cut -d' ' -f1 | column_median)
  range=$(paired "$1" "$2" | cut -d' ' -f1 | column_range)
  medians=$(awk -v a="$(median "$1" | cut -d' ' -f1)" -v b="$(median "$2" | cut -d' ' -f1)" 'BEGIN { printf "%.2f", a / b }')
  printf '  %-34s %5s (rounds %s; medians %s)   target >= %s: %s\n' "$3" "$paired_median" "$range" "$medians" "$4" \
    "$(awk -v m="$paired_median" -v t="$4" 'BEGIN { print (m >= t ? "met" : "below") }')"
}
memory() { # label rss [previous rss]
  awk -v label="$1" -v kb="$2" -v before="${3:-}" 'BEGIN {
    printf "  %-62s %8.1f MB", label, kb / 1024
    if (before != "") printf "  %+7.1f MB", (kb - before) / 1024
    printf "\n" }'
}
cat <<REPORT

Portcullis policy benchmark ($(date -u +%Y-%m-%dT%H:%MZ))
machine: $(machine); $(redis-server --version | cut -d' ' -f1-3)
portcullis build: $BUILD_KIND
load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, GET; $ROUNDS rounds, the scenarios' order rotating
      every round; the median round of each below; pinned: $PIN (1 = proxy under test alone on
      CPU 1, wrk + upstream + redis on CPU 0). One portcullis process serves every path; all go
      to the same upstream (nginx, 1 worker, small static body).

  scenario                                  requests/s        p99  CPU/request (user + kernel) errors
$(row plain "plain rule (/plain)")
$(row jwt "JWT RS256 + Local rate limit (/jwt)")
$(row cached "portcullis cache hit (/cached)")
$(row nginx-hit "nginx proxy_cache hit (/cached)")
$(row global "Global rate limit, Redis (/global)")

  ratios of requests/s: the median of the paired rounds (their range; the medians' ratio)
$(ratio jwt plain "JWT + rate limit / plain" 0.85)
$(ratio cached plain "cache hit / proxied (plain)" 2.0)
$(ratio cached nginx-hit "portcullis hit / nginx hit" 1.0)
$(ratio global plain "Global rate limit / plain" 0.80)${GLOBAL_KEYS_LINE}

memory (portcullis RSS; and its change since the line above)
$(memory "idle, these rules loaded" "$IDLE_RSS")
$(memory "after the measurements above" "$LOADED_RSS")
$(memory "after $KEYS_SENT distinct X-Client keys on /keyed" "$KEYS_RSS" "$LOADED_RSS")
$(memory "after $FILLS distinct $((FILL_BYTES / 1024)) KiB answers on /fill ($((FILLS * FILL_BYTES / 1048576)) MiB)" "$FILL_RSS" "$KEYS_RSS")
  (the cache is bounded at $((CACHE_BOUND / 1048576)) MiB; errors while driving keys: $KEYS_ERRORS; answers: $FILL_ERRORS)
REPORT
