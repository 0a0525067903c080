#!/usr/bin/env bash
# Known side by side with the reference peer (../shared/peers/apollo: Apollo Server + DataLoader
# + the MongoDB Node driver) and the floor (../shared/peers/gofloor: a hand-written Go handler),
# on one external FerretDB, loopback only (issue 10's "Targets").
#
#   bench/peer/run.sh                      # 3 rounds × 10 s per workload and server
#   ROUNDS=5 DURATION=20 bench/peer/run.sh # longer
#   FLOOR=0 bench/peer/run.sh              # without the floor
#   OUT=bench/peer/results-$(date +%F).txt bench/peer/run.sh   # also keep the output
#
# It builds Known (`go build ./server`) and the helpers of this folder, copies the peers into a
# temporary directory (`npm ci` for the Apollo peer, `go build` for the floor), starts an external
# FerretDB as a process of its own (so that the store's CPU counts for neither server), a fake
# customer user API, Known and the peers, each server in its own database; seeds each the same
# way (USERS users, each with a conversation holding a message, linked to one of 7 companies and
# to one organization; Known through its public GraphQL API only); warms profiles (max age 1 h on
# every server, so that the dashboard fetches none while measuring; Known's identify fetches the
# new user's profile in the background) and checks that every server answers the same page; then drives each with wrk (CONNS connections) in alternation, Known, peer, floor, Known, …,
# for the dashboard query at first: PAGE and for identify of a new user with a new company. Each
# server's CPU time (utime + stime from /proc/<pid>/stat) and the store's is read before and after
# every round. Every process it starts is stopped on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-3}     # rounds per workload, each server once per round
DURATION=${DURATION:-10} # seconds per round and server
USERS=${USERS:-100}     # seeded users (a conversation each)
PAGE=${PAGE:-100}       # the dashboard page size
CONNS=${CONNS:-8}       # wrk connections
FLOOR=${FLOOR:-1}       # 1: also measure ../shared/peers/gofloor
OUT=${OUT:-}            # a file that also receives the output
KEEP=${KEEP:-0}         # 1: keep the temporary directory (logs, pages) and say where

REPO=$(cd "$(dirname "$0")/../.." && pwd)
PEERS=${PEERS:-$REPO/../shared/peers}
HERE=$REPO/bench/peer

if [[ -n $OUT ]]; then
	exec > >(tee "$OUT") 2>&1
fi

need() { command -v "$1" >/dev/null || { echo "run.sh: $1 is required ($2)" >&2; exit 1; }; }
need go "the Go toolchain"
need node "Node.js, for the Apollo peer"
need npm "npm, for the Apollo peer"
need curl "curl"
if ! command -v wrk >/dev/null; then
	echo "installing wrk (apt-get)"
	if [[ $(id -u) == 0 ]]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/known-bench.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# wait_line FILE PATTERN PID: waits (60 s at most) until FILE has a line matching PATTERN, and
# prints its last word.
wait_line() {
	for _ in $(seq 600); do
		if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1" | awk '{print $NF}'; return; fi
		kill -0 "$3" 2>/dev/null || { echo "run.sh: process $3 ended; its log $1:" >&2; tail -20 "$1" >&2; exit 1; }
		sleep 0.1
	done
	echo "run.sh: no '$2' in $1 after 60 s" >&2; tail -20 "$1" >&2; exit 1
}
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # utime + stime of a pid
HZ=$(getconf CLK_TCK)

# ---- build ----
log "building Known and the helpers"
(cd "$REPO" && go build -o "$TMP/known" ./server && go build -o "$TMP/ferretdb" ./bench/peer/ferretdb &&
	go build -o "$TMP/userapi" ./bench/peer/userapi && go build -o "$TMP/seedknown" ./bench/peer/seedknown)
log "npm ci for the Apollo peer"
cp -r "$PEERS/apollo" "$TMP/apollo" && chmod -R u+w "$TMP/apollo"
(cd "$TMP/apollo" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
if [[ $FLOOR == 1 ]]; then
	log "building the floor"
	cp -r "$PEERS/gofloor" "$TMP/gofloor" && chmod -R u+w "$TMP/gofloor"
	(cd "$TMP/gofloor" && go build -o gofloor .)
fi

# ---- start ----
"$TMP/ferretdb" -dir "$TMP/store" -addr 127.0.0.1:0 >"$TMP/ferretdb.log" 2>&1 &
STORE_PID=$!; PIDS+=("$STORE_PID")
MONGO=$(wait_line "$TMP/ferretdb.log" '^ready' "$STORE_PID")
"$TMP/userapi" -addr 127.0.0.1:0 >"$TMP/userapi.log" 2>&1 &
PIDS+=($!)
USERAPI=$(wait_line "$TMP/userapi.log" '^ready' "$!")
PROFILES="${USERAPI}users/{id}"
log "FerretDB at $MONGO (pid $STORE_PID), user API at $USERAPI"

KPORT=$(free_port)
ADMIN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(
	export KNOWN_ADDR=127.0.0.1:$KPORT KNOWN_MONGODB_URI=$MONGO KNOWN_DATABASE=known_bench \
		KNOWN_DATA_DIR=$TMP/known-data KNOWN_SECRET=$(head -c 48 /dev/urandom | base64 -w0) \
		KNOWN_ADMIN_TOKEN=$ADMIN KNOWN_ALLOW_PRIVATE_NETWORKS=true KNOWN_WIDGET_RATE_LIMIT=0 \
		KNOWN_LOG_LEVEL=warn KNOWN_PROFILE_MAX_AGE=1h KNOWN_FERRETDB_SHARED=${KNOWN_FERRETDB_SHARED:-}
	exec "$TMP/known"
) >"$TMP/known.log" 2>&1 &
KNOWN_PID=$!; PIDS+=("$KNOWN_PID")
for i in $(seq 600); do
	curl -sf "http://127.0.0.1:$KPORT/readyz" >/dev/null 2>&1 && break
	kill -0 "$KNOWN_PID" 2>/dev/null || { echo "run.sh: Known ended:" >&2; tail -20 "$TMP/known.log" >&2; exit 1; }
	[[ $i == 600 ]] && { echo "run.sh: Known not ready after 60 s" >&2; exit 1; }
	sleep 0.1
done
KNOWN_URL=http://127.0.0.1:$KPORT/graphql

log "seeding $USERS users into the peers' databases (seed.mjs) and Known's (its GraphQL API)"
(cd "$TMP/apollo" && node seed.mjs --mongo "$MONGO" --n "$USERS" --db peer >/dev/null)
[[ $FLOOR == 1 ]] && (cd "$TMP/apollo" && node seed.mjs --mongo "$MONGO" --n "$USERS" --db floor >/dev/null)
eval "$(KNOWN_ADMIN_TOKEN=$ADMIN "$TMP/seedknown" -url "$KNOWN_URL" -n "$USERS" -profiles "$PROFILES")"

PPORT=$(free_port)
(cd "$TMP/apollo" && exec node server.mjs --mongo "$MONGO" --port "$PPORT" --db peer \
	--profiles "$PROFILES" --profile-max-age-ms 3600000) >"$TMP/peer.log" 2>&1 &
PEER_PID=$!; PIDS+=("$PEER_PID")
PEER_URL=$(wait_line "$TMP/peer.log" '^ready' "$PEER_PID")
NAMES=(known peer); URLS=("$KNOWN_URL" "$PEER_URL"); SPIDS=("$KNOWN_PID" "$PEER_PID")
if [[ $FLOOR == 1 ]]; then
	FPORT=$(free_port)
	"$TMP/gofloor/gofloor" --mongo "$MONGO" --port "$FPORT" --db floor \
		--profiles "$PROFILES" --profile-max-age-ms 3600000 >"$TMP/floor.log" 2>&1 &
	FLOOR_PID=$!; PIDS+=("$FLOOR_PID")
	FLOOR_URL=$(wait_line "$TMP/floor.log" '^ready' "$FLOOR_PID")
	NAMES+=(floor); URLS+=("$FLOOR_URL"); SPIDS+=("$FLOOR_PID")
fi

QUERY="{ conversations(first: $PAGE) { nodes { id user { name companies(first: 10) { nodes { name } } organizations(first: 10) { nodes { name } } externalProfile { status firstName } } messages(first: 1) { nodes { body } } } } }"
DASH_BODY=$(printf '{"query":"%s"}' "$QUERY")
header_of() { [[ $1 == known ]] && echo "Agent-Secret-Key: $SECRET_KEY" || true; }
app_of() { [[ $1 == known ]] && echo "$APP_ID" || echo bench; }

# ---- warm and check ----
log "warming profiles and checking that every server answers the same page"
for i in "${!NAMES[@]}"; do
	for pass in 1 2; do # the first fetches every profile; the second reads them fresh
		H=(-H 'Content-Type: application/json')
		[[ ${NAMES[$i]} == known ]] && H+=(-H "Agent-Secret-Key: $SECRET_KEY")
		curl -sf "${URLS[$i]}" "${H[@]}" -d "$DASH_BODY" >"$TMP/page-${NAMES[$i]}.json"
	done
	BODY=$(printf '{"query":"mutation($input: IdentifyInput!) { identify(input: $input) { session { userId } } }","variables":{"input":{"appId":"%s","userId":"warm","email":"warm@example.com","name":"Warm","company":{"id":"cwarm","name":"Warm Co"}}}}' "$(app_of "${NAMES[$i]}")")
	ANSWER=$(curl -s "${URLS[$i]}" -H 'Content-Type: application/json' -d "$BODY")
	if ! grep -q '"userId":"[^"]' <<<"$ANSWER"; then echo "run.sh: ${NAMES[$i]}'s identify answered $ANSWER" >&2; exit 1; fi
done
PAGES=(); for n in "${NAMES[@]}"; do PAGES+=("page-$n.json"); done
(cd "$TMP" && node "$HERE/same.mjs" "${PAGES[@]}") ||
	{ echo "run.sh: the servers' pages differ: they would not do the same work" >&2; exit 1; }
FETCHED_BEFORE=$(curl -s "${USERAPI}served")

# ---- measure ----
# round WORKLOAD R I: one wrk run against server I; appends a line to $TMP/rounds.
: >"$TMP/rounds"
round() {
	local w=$1 r=$2 i=$3 name=${NAMES[$3]} pid=${SPIDS[$3]} out s0 t0 s1 t1 n secs rps failed non2xx sockerr
	s0=$(ticks "$STORE_PID"); t0=$(ticks "$pid")
	out=$(BENCH_HEADER=$(header_of "$name") BENCH_BODY=$DASH_BODY \
		BENCH_APP_ID=$([[ $w == identify ]] && app_of "$name" || true) BENCH_PREFIX="b$r$name$RANDOM" \
		wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$HERE/post.lua" "${URLS[$i]}")
	t1=$(ticks "$pid"); s1=$(ticks "$STORE_PID")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	secs=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' <<<"$out")
	failed=$(awk '/failed_answers/ {print $2}' <<<"$out")
	non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' <<<"$out")
	echo "$w $r $name $n $secs $((t1 - t0)) $((s1 - s0)) ${failed:-0} ${non2xx:-0} ${sockerr:-0}" >>"$TMP/rounds"
	awk -v hz="$HZ" '{ printf "  %-9s round %s %-6s %6d requests %7.1f req/s  %7.2f ms CPU/req  store %7.2f ms/req  failed %d\n",
		$1, $2, $3, $4, $4 / $5, $6 * 1000 / hz / ($4 ? $4 : 1), $7 * 1000 / hz / ($4 ? $4 : 1), $8 + $10 }' <<<"$(tail -1 "$TMP/rounds")"
}

echo
echo "== Known vs peer, $(date -u +'%F %TZ'), commit $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- . ':!bench' || echo '+changes')"
echo "   $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "   $USERS users, dashboard first: $PAGE, wrk $CONNS connections, $ROUNDS rounds × ${DURATION} s per server, in alternation: ${NAMES[*]}"
for w in dashboard identify; do
	for r in $(seq "$ROUNDS"); do
		for i in "${!NAMES[@]}"; do round "$w" "$r" "$i"; done
	done
done
FETCHED_AFTER=$(curl -s "${USERAPI}served")
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) at end; profiles fetched from the user API while measuring: $((FETCHED_AFTER - FETCHED_BEFORE)) (Known fetches a new identified user's profile in the background)"
# wrk cuts the requests in flight when a round ends; Known logs those too
CUT=$(grep -c 'context canceled' "$TMP/known.log" || true)
OTHER=$(grep -v 'context canceled' "$TMP/known.log" | grep -vc '"message":"request"' || true)
echo "   Known's log at warn level or above: $(wc -l <"$TMP/known.log") lines, $CUT of them on requests cut off by the end of a round (context canceled), $OTHER other ones$( ((OTHER > 0)) && printf ', the first:\n%s' "$(grep -v 'context canceled' "$TMP/known.log" | grep -v '"message":"request"' | head -3 | cut -c1-300)")"

# ---- summary ----
echo
awk -v hz="$HZ" '
# the ratio in each round (Known and the peer measured one after the other), to see the spread
function rounds(x, what,    r, out, a, b) {
	out = ""
	for (r = 1; (x SUBSEP r SUBSEP "known") in R4; r++) {
		a = x SUBSEP r SUBSEP "known"; b = x SUBSEP r SUBSEP "peer"
		out = out sprintf("%s%.2f", (r > 1 ? " " : ""), what == "rps" ? (R4[a] / R5[a]) / (R4[b] / R5[b]) : (R6[b] / R4[b]) / (R6[a] / R4[a]))
	}
	return out
}
{ R4[$1, $2, $3] = $4; R5[$1, $2, $3] = $5; R6[$1, $2, $3] = $6 }
{ k = $1 SUBSEP $3; req[k] += $4; sec[k] += $5; cpu[k] += $6; st[k] += $7; bad[k] += $8 + $10; seen[$3] = 1; w[$1] = 1 }
END {
	for (x in w) order[x == "dashboard" ? 1 : 2] = x
	for (o = 1; o <= 2; o++) {
		x = order[o]; if (x == "") continue
		printf "%s\n", (x == "dashboard" ? "dashboard page" : "identify (a new user and company per request)")
		for (j = 1; j <= 3; j++) {
			s = (j == 1 ? "known" : j == 2 ? "peer" : "floor"); if (!(s in seen)) continue
			k = x SUBSEP s
			rps[s] = req[k] / sec[k]; ms[s] = cpu[k] * 1000 / hz / req[k]; sms[s] = st[k] * 1000 / hz / req[k]
			printf "  %-6s %8.1f req/s  %7.2f ms CPU/req  (store %6.2f ms/req)  %d requests, %d failed\n", s, rps[s], ms[s], sms[s], req[k], bad[k]
		}
		printf "  requests/s  Known/peer  %.2f   (target >= 1; rounds: %s)\n", rps["known"] / rps["peer"], rounds(x, "rps")
		printf "  CPU/request peer/Known  %.2f   (target >= 3; rounds: %s)\n", ms["peer"] / ms["known"], rounds(x, "cpu")
		if ("floor" in seen) printf "  CPU/request Known/floor %.2f   (the floor: hand-written Go)\n", ms["known"] / ms["floor"]
	}
}' "$TMP/rounds"
