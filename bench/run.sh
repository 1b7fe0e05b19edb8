#!/usr/bin/env bash
# Benchmark gatehouse against Distribution 2.8 (Debian's docker-registry) and nginx,
# all on loopback, measured in the same run. Prints figures side by side with ratios.
# The store is measured direct (`gatehouse store`); the gateway (`gatehouse serve`, token
# auth, policies, in-process store) is measured against the store direct.
#
#   bench/run.sh                     # defaults: 512 MiB blob, 2 GiB blob for RSS, 10 s wrk runs
#   BIG_MB=128 HUGE_MB=512 DURATION=5 SYNC_MB=256 bench/run.sh    # a quicker pass
#
# Needs (installed when missing, as root): docker-registry nginx-light libnginx-mod-stream
# wrk curl skopeo postgresql valgrind; builds the S3 test server (s3s-fs) once, as scripts/test does.
set -euo pipefail
cd "$(dirname "$0")/.."

BIG_MB=${BIG_MB:-512}
HUGE_MB=${HUGE_MB:-2048}
DURATION=${DURATION:-10}
SMALL_PUSHES=${SMALL_PUSHES:-3000}
SYNC_MB=${SYNC_MB:-1024}
GH_PORT=5201 DR_PORT=5202 NG_PORT=5203 GW_PORT=5204
GW_ADMIN_PASSWORD=bench-admin-password

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v nginx >/dev/null || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v skopeo >/dev/null || need+=(skopeo)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v bc >/dev/null || need+=(bc)
command -v callgrind_control >/dev/null || need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "building release binaries..." >&2
cargo build --release --quiet --bin gatehouse --example loadgen --example hookbench --example syncbench --example consolebench
TARGET=${CARGO_TARGET_DIR:-target}
GH_BIN=$TARGET/release/gatehouse
LOADGEN=$TARGET/release/examples/loadgen
HOOKBENCH=$TARGET/release/examples/hookbench
SYNCBENCH=$TARGET/release/examples/syncbench
CONSOLEBENCH=$TARGET/release/examples/consolebench

work=$(mktemp -d /var/tmp/gatehouse-bench.XXXXXX)
chmod 755 "$work"  # nginx workers run unprivileged
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$work/scale/s3" ] && scripts/s3-server stop "$work/scale/s3"
  [ -d "$work/scale/pg" ] && scripts/pg-cluster stop "$work/scale/pg"
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; exit 1; }

start_gatehouse() {
  rm -rf "$work/gh"
  # The bare store, plain HTTP like the Distribution and nginx it is compared with.
  "$GH_BIN" store --listen 127.0.0.1:$GH_PORT --data-dir "$work/gh" >"$work/gh.log" 2>&1 &
  GH_PID=$!; pids+=($GH_PID); wait_port $GH_PORT
}

start_distribution() {
  rm -rf "$work/dr"
  cat >"$work/dr.yml" <<YML
version: 0.1
log: { level: warn, accesslog: { disabled: false } }
storage:
  filesystem: { rootdirectory: $work/dr }
  delete: { enabled: true }
  cache: { blobdescriptor: inmemory }
http: { addr: 127.0.0.1:$DR_PORT }
YML
  docker-registry serve "$work/dr.yml" >"$work/dr.log" 2>&1 &
  DR_PID=$!; pids+=($DR_PID); wait_port $DR_PORT
}

mkdir -p "$work/www"
cat >"$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:$NG_PORT; root $work/www; }
}
NGX

echo "making test data..." >&2
head -c $((BIG_MB * 1024 * 1024)) /dev/urandom >"$work/www/big.bin"
BIG_DIGEST="sha256:$(sha256sum "$work/www/big.bin" | cut -d' ' -f1)"
BIG_BYTES=$((BIG_MB * 1024 * 1024))

nginx -c "$work/nginx.conf"
pids+=($(cat "$work/nginx.pid"))

# Extra curl/wrk arguments: the bearer token when measuring the gateway.
AUTH=()

# push_blob BASE REPO FILE DIGEST -> seconds taken by the upload (POST + single PUT)
push_blob() {
  local base=$1 repo=$2 file=$3 digest=$4 loc
  sync  # no writeback of earlier runs' dirty pages competes with this push's fsync
  loc=$(curl -s "${AUTH[@]}" -D - -o /dev/null -X POST "$base/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) ;; *) loc="$base$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
  curl -s -f "${AUTH[@]}" -o /dev/null -w '%{time_total}' -X PUT -H 'content-type: application/octet-stream' -T "$file" "$loc"
}

pull_secs() { curl -s -f "${AUTH[@]}" -o /dev/null -w '%{time_total}' "$1"; }

parallel_pull_secs() {
  local url=$1 start end kids=()
  start=$(date +%s.%N)
  for _ in 1 2 3 4 5 6 7 8; do curl -s -f -o /dev/null "$url" & kids+=($!); done
  wait "${kids[@]}"
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

mbps() { echo "scale=0; $1 / 1048576 / $2" | bc -l; }

# put_image BASE: a small image with 50 tags, for manifest GET and tag list
put_image() {
  local base=$1 cfg layer m d
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}' >"$work/cfg.json"
  head -c 4096 /dev/urandom >"$work/layer.bin"
  cfg="sha256:$(sha256sum "$work/cfg.json" | cut -d' ' -f1)"
  layer="sha256:$(sha256sum "$work/layer.bin" | cut -d' ' -f1)"
  push_blob "$base" bench/app "$work/cfg.json" "$cfg" >/dev/null
  push_blob "$base" bench/app "$work/layer.bin" "$layer" >/dev/null
  m=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":4096}]}' "$cfg" "$(stat -c %s "$work/cfg.json")" "$layer")
  for i in $(seq 1 50); do
    curl -s -f "${AUTH[@]}" -o /dev/null -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' --data-binary "$m" "$base/v2/bench/app/manifests/v$i"
  done
}

# wrk_rps URL [HEADER] -> "requests/s p99_ms"
wrk_rps() {
  local out rps p99 extra=()
  [ -n "${2:-}" ] && extra=(-H "$2")
  out=$(wrk -t2 -c64 -d"${DURATION}s" --latency -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${extra[@]}" "$1")
  rps=$(echo "$out" | awk '/Requests\/sec/{print int($2)}')
  p99=$(echo "$out" | awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}')
  echo "$rps $p99"
}

declare -A R
# Server CPU time of processes and their reaped children (user + system, seconds).
cpu_secs() {
  local total=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{print t + ($14 + $15 + $16 + $17) / hz}' "/proc/$p/stat")
  done
  echo "$total"
}

# run_suite NAME BASE PIDS_FN [OWN_PIDS_FN]: throughput figures, and what they cost the
# servers (the processes PIDS_FN prints, asked again at each step as database backends
# come and go; OWN_PIDS_FN: gatehouse's own among them): CPU-seconds per GiB moved (one
# push, one pull, 8 parallel pulls), per 1,000 small pushes, and per 1,000 GETs
# (manifest GET and tag list runs).
run_suite() {
  local name=$1 base=$2 pids=$3 own=${4:-$3} t gets
  local -a c o
  c[0]=$(cpu_secs $($pids)); o[0]=$(cpu_secs $($own))
  t=$(push_blob "$base" bench/big "$work/www/big.bin" "$BIG_DIGEST"); R[$name.push]=$(mbps $BIG_BYTES "$t")
  t=$(pull_secs "$base/v2/bench/big/blobs/$BIG_DIGEST"); R[$name.pull]=$(mbps $BIG_BYTES "$t")
  t=$(parallel_pull_secs "$base/v2/bench/big/blobs/$BIG_DIGEST"); R[$name.pull8]=$(mbps $((BIG_BYTES * 8)) "$t")
  c[1]=$(cpu_secs $($pids)); o[1]=$(cpu_secs $($own))
  R[$name.small]=$("$LOADGEN" small-push "$base" bench/small "$SMALL_PUSHES" 16 | sed -E 's/.*pushes_per_s=([0-9]+).*/\1/')
  c[2]=$(cpu_secs $($pids)); o[2]=$(cpu_secs $($own))
  put_image "$base"
  read -r R[$name.mget] R[$name.mp99] < <(wrk_rps "$base/v2/bench/app/manifests/v1")
  read -r R[$name.tags] _ < <(wrk_rps "$base/v2/bench/app/tags/list")
  c[3]=$(cpu_secs $($pids)); o[3]=$(cpu_secs $($own))
  gets=$(( (${R[$name.mget]} + ${R[$name.tags]}) * DURATION ))
  R[$name.cpu]=$(echo "${c[3]} - ${c[0]}" | bc -l)
  per() { printf "%.${4}f" "$(echo "($2 - $1) * $3" | bc -l)"; }
  R[$name.cpu_gib]=$(per "${c[0]}" "${c[1]}" "1024 / ($BIG_MB * 10)" 2)
  R[$name.cpu_push]=$(per "${c[1]}" "${c[2]}" "1000 / $SMALL_PUSHES" 2)
  R[$name.cpu_get]=$(per "${c[2]}" "${c[3]}" "1000 / $gets" 3)
  R[$name.own_gib]=$(per "${o[0]}" "${o[1]}" "1024 / ($BIG_MB * 10)" 2)
  R[$name.own_push]=$(per "${o[1]}" "${o[2]}" "1000 / $SMALL_PUSHES" 2)
  R[$name.own_get]=$(per "${o[2]}" "${o[3]}" "1000 / $gets" 3)
}

echo "gatehouse store..." >&2
start_gatehouse
gh_pids() { echo "$GH_PID"; }
run_suite gh "http://127.0.0.1:$GH_PORT" gh_pids

# The same store on what replicas share: PostgreSQL (private cluster) and S3 (s3s-fs),
# every server on this machine, their CPU time counted with gatehouse's.
echo "gatehouse store on PostgreSQL + S3..." >&2
scripts/s3-server install
mkdir -p "$work/scale" && chmod 755 "$work/scale"
PG_URL=$(scripts/pg-cluster start "$work/scale/pg")
S3_URL=$(scripts/s3-server start "$work/scale/s3")
psql "$PG_URL/postgres" -qc "CREATE DATABASE bench"
# The cluster's postmaster and its live backends (exited ones count in its cutime).
pg_pids() { local m; m=$(head -n 1 "$work/scale/pg/data/postmaster.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
start_scale() {
  GATEHOUSE_DATABASE="$PG_URL/bench" GATEHOUSE_BLOBS="s3://gatehouse/bench" GATEHOUSE_S3_ENDPOINT="$S3_URL" \
  GATEHOUSE_S3_ACCESS_KEY_ID=gatehouse-test GATEHOUSE_S3_SECRET_ACCESS_KEY=gatehouse-test-secret \
    "$GH_BIN" store --listen 127.0.0.1:$SC_PORT --data-dir "$work/scale/data" >"$work/scale.log" 2>&1 &
  SC_PID=$!; pids+=($SC_PID); wait_port $SC_PORT
}
SC_PORT=5205
start_scale
S3_PID=$(cat "$work/scale/s3/pid")
sc_pids() { echo "$SC_PID $S3_PID $(pg_pids)"; }
sc_own() { echo "$SC_PID"; }
run_suite sc "http://127.0.0.1:$SC_PORT" sc_pids sc_own

# Two replicas over one database and bucket behind nginx balancing TCP round robin, as
# docker-compose.scale.yml runs them (deploy/nginx-scale.conf); plain HTTP here.
echo "two gatehouse replicas behind nginx on PostgreSQL + S3..." >&2
psql "$PG_URL/postgres" -qc "CREATE DATABASE bench2"
R1_PORT=5206 R2_PORT=5207 LB_PORT=5208
start_replica() {  # PORT DIR
  GATEHOUSE_DATABASE="$PG_URL/bench2" GATEHOUSE_BLOBS="s3://gatehouse/bench2" GATEHOUSE_S3_ENDPOINT="$S3_URL" \
  GATEHOUSE_S3_ACCESS_KEY_ID=gatehouse-test GATEHOUSE_S3_SECRET_ACCESS_KEY=gatehouse-test-secret \
    "$GH_BIN" store --listen 127.0.0.1:$1 --data-dir "$work/scale/$2" >"$work/scale/$2.log" 2>&1 &
  pids+=($!); wait_port "$1"
}
start_replica $R1_PORT r1; R1_PID=${pids[-1]}
start_replica $R2_PORT r2; R2_PID=${pids[-1]}
sed -e "s/replica1:5000/127.0.0.1:$R1_PORT/" -e "s/replica2:5000/127.0.0.1:$R2_PORT/" \
    -e "s/listen 5000;/listen 127.0.0.1:$LB_PORT;/" -e "s/worker_processes auto;/worker_processes 1;/" \
    deploy/nginx-scale.conf >"$work/scale/lb.body"
{ echo "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"; echo "pid $work/scale/lb.pid;"
  echo "error_log $work/scale/lb.err;"; cat "$work/scale/lb.body"; } >"$work/scale/lb.conf"
nginx -e "$work/scale/lb.err" -c "$work/scale/lb.conf"
LB_PID=$(cat "$work/scale/lb.pid"); pids+=("$LB_PID")
wait_port $LB_PORT
lb_pids() { echo "$R1_PID $R2_PID $LB_PID $(pgrep -P "$LB_PID" | tr '\n' ' ') $S3_PID $(pg_pids)"; }
lb_own() { echo "$R1_PID $R2_PID"; }
run_suite lb "http://127.0.0.1:$LB_PORT" lb_pids lb_own
kill "$R1_PID" "$R2_PID" "$LB_PID" 2>/dev/null || true

echo "post-push hook on PostgreSQL + S3..." >&2
psql "$PG_URL/postgres" -qc "CREATE DATABASE hook"
hook_sc=$(GATEHOUSE_DATABASE="$PG_URL/hook" GATEHOUSE_BLOBS="s3://gatehouse/hook" GATEHOUSE_S3_ENDPOINT="$S3_URL" \
  GATEHOUSE_S3_ACCESS_KEY_ID=gatehouse-test GATEHOUSE_S3_SECRET_ACCESS_KEY=gatehouse-test-secret \
  "$HOOKBENCH" "$work/scale/hook")

# The gateway: token auth + policies in front of the in-process store.
token_of() {  # CREDS SCOPE... -> token
  local creds=$1 q="service=gatehouse"; shift
  for sc in "$@"; do q="$q&scope=$sc"; done
  curl -s -f -u "$creds" "http://127.0.0.1:$GW_PORT/v2/token?$q" | sed -E 's/.*"token":"([^"]+)".*/\1/'
}
echo "gatehouse gateway..." >&2
rm -rf "$work/gw"
GATEHOUSE_ADMIN_PASSWORD=$GW_ADMIN_PASSWORD "$GH_BIN" serve --insecure-http --listen 127.0.0.1:$GW_PORT --data-dir "$work/gw" >"$work/gw.log" 2>&1 &
GW_PID=$!; pids+=($GW_PID); wait_port $GW_PORT
GW="http://127.0.0.1:$GW_PORT"
curl -s -f -u "admin:$GW_ADMIN_PASSWORD" -H 'content-type: application/json' -d '{"label":"bench"}' "$GW/api/v1/orgs" >/dev/null
ps_json=$(curl -s -f -u "admin:$GW_ADMIN_PASSWORD" -H 'content-type: application/json' -d '{"name":"ci"}' "$GW/api/v1/orgs/bench/pull-secrets")
PS_USER=$(echo "$ps_json" | sed -E 's/.*"username":"([^"]+)".*/\1/')
PS_SECRET=$(echo "$ps_json" | sed -E 's/.*"secret":"([^"]+)".*/\1/')
AUTH=(-H "Authorization: Bearer $(token_of "admin:$GW_ADMIN_PASSWORD" repository:bench/big:pull,push repository:bench/app:pull,push)")
push_blob "$GW" bench/big "$work/www/big.bin" "$BIG_DIGEST" >/dev/null
put_image "$GW"
# Reads with the pull secret's token, as a CI machine would.
AUTH=(-H "Authorization: Bearer $(token_of "$PS_USER:$PS_SECRET" repository:bench/big:pull repository:bench/app:pull)")
t=$(pull_secs "$GW/v2/bench/big/blobs/$BIG_DIGEST"); R[gw.pull]=$(mbps $BIG_BYTES "$t")
t=$(pull_secs "http://127.0.0.1:$GH_PORT/v2/bench/big/blobs/$BIG_DIGEST"); R[gh.pull_again]=$(mbps $BIG_BYTES "$t")
read -r R[gw.mget] R[gw.mp99] < <(wrk_rps "$GW/v2/bench/app/manifests/v1" "${AUTH[1]}")
AUTH=()
read -r R[gh.mget_again] R[gh.mp99_again] < <(wrk_rps "http://127.0.0.1:$GH_PORT/v2/bench/app/manifests/v1")
basic=$(printf '%s:%s' "$PS_USER" "$PS_SECRET" | base64 -w0)
read -r R[gw.tokens] R[gw.tp99] < <(wrk_rps "$GW/v2/token?service=gatehouse&scope=repository:bench/app:pull" "Authorization: Basic $basic")
# The same manifest GET in a product that requires a signature by the org's key: the
# signature is verified once, then the signers are cached. Measured alternately with the
# requirement off and on (two rounds, the best of each), so that both see the same
# machine state.
adm() { curl -s -f -u "admin:$GW_ADMIN_PASSWORD" -H 'content-type: application/json' "$@" >/dev/null; }
adm -d '{"name":"release"}' "$GW/api/v1/orgs/bench/signing-keys"
adm -d "{\"tags\":[\"v1\"],\"key\":\"release\",\"registry\":\"127.0.0.1:$GW_PORT\"}" "$GW/api/v1/repositories/bench/app/sign"
AUTH=(-H "Authorization: Bearer $(token_of "$PS_USER:$PS_SECRET" repository:bench/app:pull)")
R[gw.mget_unsigned]=0; R[gw.mget_signed]=0
for _ in 1 2; do
  for required in '[]' '["release"]'; do
    adm -X PATCH -d "{\"require_signed_by\":$required}" "$GW/api/v1/orgs/bench/products/containers"
    read -r rps p99 < <(wrk_rps "$GW/v2/bench/app/manifests/v1" "${AUTH[1]}")
    k=unsigned; [ "$required" = '[]' ] || k=signed
    if [ "$rps" -gt "${R[gw.mget_$k]}" ]; then R[gw.mget_$k]=$rps; R[gw.mp99_$k]=$p99; fi
  done
done
# Metrics on vs off: the same gateway restarted with GATEHOUSE_METRICS=false and =true
# alternately on its data (two rounds, the best of each).
adm -X PATCH -d '{"require_signed_by":[]}' "$GW/api/v1/orgs/bench/products/containers"
R[gw.mget_metrics_on]=0; R[gw.mget_metrics_off]=0
for _ in 1 2; do
  for m in false true; do
    kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true
    GATEHOUSE_METRICS=$m "$GH_BIN" serve --insecure-http --listen 127.0.0.1:$GW_PORT --data-dir "$work/gw" >>"$work/gw.log" 2>&1 &
    GW_PID=$!; pids+=($GW_PID); wait_port $GW_PORT
    read -r rps p99 < <(wrk_rps "$GW/v2/bench/app/manifests/v1" "${AUTH[1]}")
    k=off; [ "$m" = true ] && k=on
    if [ "$rps" -gt "${R[gw.mget_metrics_$k]}" ]; then R[gw.mget_metrics_$k]=$rps; R[gw.mp99_metrics_$k]=$p99; fi
  done
done
kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true
# The same two comparisons in instructions (callgrind), which a noisy machine does not
# move: the server's instructions for CG_N manifest GETs on one connection, counted only
# while they run, per request.
CG_N=${CG_N:-1000}
cg_urls=(); for _ in $(seq "$CG_N"); do cg_urls+=("$GW/v2/bench/app/manifests/v1"); done
cg_per_get() {  # METRICS REQUIRED -> instructions per manifest GET
  local out="$work/cg.out" total=0 f t
  rm -f "$out"*
  GATEHOUSE_METRICS=$1 GATEHOUSE_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$GH_BIN" serve --insecure-http --listen 127.0.0.1:$GW_PORT --data-dir "$work/gw" >>"$work/cg.log" 2>&1 &
  GW_PID=$!; pids+=($GW_PID)
  for _ in $(seq 600); do curl -s -o /dev/null "$GW/" && break; sleep 0.2; done
  adm -X PATCH -d "{\"require_signed_by\":$2}" "$GW/api/v1/orgs/bench/products/containers"
  local auth="Authorization: Bearer $(token_of "$PS_USER:$PS_SECRET" repository:bench/app:pull)"
  curl -s -H "$auth" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${cg_urls[@]:0:20}" >/dev/null
  callgrind_control -i on "$GW_PID" >/dev/null
  curl -s -H "$auth" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "${cg_urls[@]}" >/dev/null
  callgrind_control -i off "$GW_PID" >/dev/null
  kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  for f in "$out"*; do t=$(awk '/^totals:/{print $2; exit}' "$f"); total=$((total + ${t:-0})); done
  echo $((total / CG_N))
}
echo "instructions per manifest GET (callgrind)..." >&2
R[cg.off]=$(cg_per_get false '[]')
R[cg.on]=$(cg_per_get true '[]')
R[cg.signed]=$(cg_per_get true '["release"]')
# Pulls over TLS: the gateway with its development certificate (TLS is its default)
# against nginx serving the same file with the same certificate and key.
echo "pulls over TLS..." >&2
NGS_PORT=5209
GATEHOUSE_LOG=warn "$GH_BIN" serve --listen 127.0.0.1:$GW_PORT --data-dir "$work/gw" --tls-dir "$work/certs" >>"$work/gw.log" 2>&1 &
GW_PID=$!; pids+=($GW_PID)
for _ in $(seq 100); do curl -s -o /dev/null --cacert "$work/certs/ca.crt" "https://127.0.0.1:$GW_PORT/" && break; sleep 0.1; done
cat >"$work/nginx-tls.conf" <<NGX
worker_processes 1;
pid $work/nginx-tls.pid;
error_log $work/nginx-tls.err;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  server {
    listen 127.0.0.1:$NGS_PORT ssl; root $work/www;
    ssl_certificate $work/certs/server.crt; ssl_certificate_key $work/certs/server.key;
  }
}
NGX
nginx -c "$work/nginx-tls.conf"
pids+=($(cat "$work/nginx-tls.pid"))
TLS=(--cacert "$work/certs/ca.crt")
tls_token=$(curl -s -f "${TLS[@]}" -u "$PS_USER:$PS_SECRET" "https://127.0.0.1:$GW_PORT/v2/token?service=gatehouse&scope=repository:bench/big:pull" | sed -E 's/.*"token":"([^"]+)".*/\1/')
R[gw.tls_pull]=0; R[ng.tls_pull]=0
for _ in 1 2; do  # alternately, the best of two each
  t=$(curl -s -f "${TLS[@]}" -H "Authorization: Bearer $tls_token" -o /dev/null -w '%{time_total}' "https://127.0.0.1:$GW_PORT/v2/bench/big/blobs/$BIG_DIGEST")
  v=$(mbps $BIG_BYTES "$t"); [ "$v" -gt "${R[gw.tls_pull]}" ] && R[gw.tls_pull]=$v
  t=$(curl -s -f "${TLS[@]}" -o /dev/null -w '%{time_total}' "https://127.0.0.1:$NGS_PORT/big.bin")
  v=$(mbps $BIG_BYTES "$t"); [ "$v" -gt "${R[ng.tls_pull]}" ] && R[ng.tls_pull]=$v
done
kill "$GW_PID" "$(cat "$work/nginx-tls.pid")" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true
AUTH=()
echo "distribution..." >&2
dr_pids() { echo "$DR_PID"; }
start_distribution; run_suite dr "http://127.0.0.1:$DR_PORT" dr_pids
echo "nginx..." >&2
t=$(pull_secs "http://127.0.0.1:$NG_PORT/big.bin"); R[ng.pull]=$(mbps $BIG_BYTES "$t")
t=$(parallel_pull_secs "http://127.0.0.1:$NG_PORT/big.bin"); R[ng.pull8]=$(mbps $((BIG_BYTES * 8)) "$t")

# Peak RSS while a HUGE_MB blob is pushed, each server freshly started.
echo "peak RSS with a ${HUGE_MB} MiB push..." >&2
head -c $((HUGE_MB * 1024 * 1024)) /dev/urandom >"$work/huge.bin"
rm -f "$work/www/big.bin"
HUGE_DIGEST="sha256:$(sha256sum "$work/huge.bin" | cut -d' ' -f1)"
kill "$GH_PID" "$DR_PID"; sleep 0.5
start_gatehouse; push_blob "http://127.0.0.1:$GH_PORT" bench/huge "$work/huge.bin" "$HUGE_DIGEST" >/dev/null
R[gh.rss]=$(awk '/VmHWM/{print int($2/1024)}' /proc/$GH_PID/status)
start_distribution; push_blob "http://127.0.0.1:$DR_PORT" bench/huge "$work/huge.bin" "$HUGE_DIGEST" >/dev/null
R[dr.rss]=$(awk '/VmHWM/{print int($2/1024)}' /proc/$DR_PID/status)
kill "$SC_PID" 2>/dev/null || true; sleep 0.5
start_scale; push_blob "http://127.0.0.1:$SC_PORT" bench/huge "$work/huge.bin" "$HUGE_DIGEST" >/dev/null
R[sc.rss]=$(awk '/VmHWM/{print int($2/1024)}' /proc/$SC_PID/status)
kill "$SC_PID" 2>/dev/null || true
scripts/s3-server stop "$work/scale/s3"; scripts/pg-cluster stop "$work/scale/pg"

# At scale: a catalog of SCALE_REPOS repositories walked page by page, and IDLE_CONNS
# connections that send nothing (past max_connections = 8192 they are let go), with the
# store's RSS and open files while they are held.
SCALE_REPOS=${SCALE_REPOS:-100000}
IDLE_CONNS=${IDLE_CONNS:-10000}
echo "at scale: ${SCALE_REPOS} repositories, ${IDLE_CONNS} idle connections..." >&2
kill "$GH_PID" 2>/dev/null || true; sleep 0.5
start_gatehouse
read -r R[scale.rps] < <("$LOADGEN" many-repos "http://127.0.0.1:$GH_PORT" scale "$SCALE_REPOS" 16 | sed -E 's/.*repos_per_s=([0-9]+).*/\1/')
cat_out=$("$LOADGEN" catalog "http://127.0.0.1:$GH_PORT")
R[scale.cat_ms]=$(echo "$cat_out" | sed -E 's/.*total_ms=([0-9]+).*/\1/')
R[scale.cat_page_ms]=$(echo "$cat_out" | sed -E 's/.*slowest_page_ms=([0-9.]+).*/\1/')
R[scale.cat_pages]=$(echo "$cat_out" | sed -E 's/.*pages=([0-9]+).*/\1/')
R[scale.rss_before]=$(awk '/VmRSS/{print int($2/1024)}' /proc/$GH_PID/status)
{ sleep 6; awk '/VmRSS/{print int($2/1024)}' /proc/$GH_PID/status; ls /proc/$GH_PID/fd | wc -l; } >"$work/idle.sample" &
idle_out=$("$LOADGEN" idle-conns "127.0.0.1:$GH_PORT" "$IDLE_CONNS" 8)
wait $!
R[scale.idle_open]=$(echo "$idle_out" | sed -E 's/.* open=([0-9]+).*/\1/')
R[scale.idle_closed]=$(echo "$idle_out" | sed -E 's/.* closed=([0-9]+).*/\1/')
{ read -r R[scale.rss_idle]; read -r R[scale.fds_idle]; } <"$work/idle.sample"
kill "$GH_PID" 2>/dev/null || true

echo "post-push hook..." >&2
hook=$("$HOOKBENCH" "$work/hook")
hv() { echo "${2:-$hook}" | tr ' ' '\n' | awk -F= -v k="$1" '$1==k{print $2}'; }

echo "sync and edge (main + edge processes, Distribution upstream)..." >&2
kill "$GH_PID" 2>/dev/null || true
start_distribution
mkdir -p "$work/sync"
sync=$("$SYNCBENCH" "$GH_BIN" "http://127.0.0.1:$DR_PORT" "$work/sync" "$SYNC_MB")
echo "web console (1,000 repositories, 10,000 tags)..." >&2
console=$("$CONSOLEBENCH" "$GH_BIN" "$work")
cv() { echo "$console" | awk -F= -v k="$1" '$1==k{print $2}'; }
sv() { echo "$sync" | awk -F= -v k="$1" '$1==k{print $2}'; }

ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf '\n%-44s %12s %12s %10s %10s  %s\n' "metric" "gatehouse" "distribution" "nginx" "ratio" "target"
row() { printf '%-44s %12s %12s %10s %10s  %s\n' "$@"; }
row "blob push ${BIG_MB} MiB (MiB/s, digest+fsync)" "${R[gh.push]}" "${R[dr.push]}" "-" "$(ratio "${R[gh.push]}" "${R[dr.push]}")x dr" ">= 2.5x dr"
row "blob pull ${BIG_MB} MiB (MiB/s)" "${R[gh.pull]}" "${R[dr.pull]}" "${R[ng.pull]}" "$(ratio "${R[gh.pull]}" "${R[ng.pull]}")x ng" ">= 0.8x nginx"
row "8 parallel pulls (MiB/s total)" "${R[gh.pull8]}" "${R[dr.pull8]}" "${R[ng.pull8]}" "$(ratio "${R[gh.pull8]}" "${R[ng.pull8]}")x ng" ""
row "4 KiB blob pushes/s (16 clients)" "${R[gh.small]}" "${R[dr.small]}" "-" "$(ratio "${R[gh.small]}" "${R[dr.small]}")x dr" ">= 5x dr"
row "manifest GET req/s (64 conns)" "${R[gh.mget]}" "${R[dr.mget]}" "-" "$(ratio "${R[gh.mget]}" "${R[dr.mget]}")x dr" ">= 8x dr"
row "manifest GET p99 (ms)" "${R[gh.mp99]}" "${R[dr.mp99]}" "-" "" "< 20 ms"
row "tag list req/s (64 conns, 50 tags)" "${R[gh.tags]}" "${R[dr.tags]}" "-" "$(ratio "${R[gh.tags]}" "${R[dr.tags]}")x dr" ""
row "peak RSS pushing ${HUGE_MB} MiB (MiB)" "${R[gh.rss]}" "${R[dr.rss]}" "-" "" "< 64 MiB"

printf '\n%-44s %12s %12s %10s  %s\n' "gateway (token auth) vs store direct" "gateway" "direct" "ratio" "target"
grow() { printf '%-44s %12s %12s %10s  %s\n' "$@"; }
grow "manifest GET req/s (64 conns)" "${R[gw.mget]}" "${R[gh.mget_again]}" "$(ratio "${R[gw.mget]}" "${R[gh.mget_again]}")x" ">= 0.8x"
grow "manifest GET p99 (ms)" "${R[gw.mp99]}" "${R[gh.mp99_again]}" "" ""
grow "blob pull ${BIG_MB} MiB (MiB/s)" "${R[gw.pull]}" "${R[gh.pull_again]}" "$(ratio "${R[gw.pull]}" "${R[gh.pull_again]}")x" ">= 0.9x"
grow "blob pull over TLS (MiB/s), vs nginx TLS" "${R[gw.tls_pull]}" "${R[ng.tls_pull]}" "$(ratio "${R[gw.tls_pull]}" "${R[ng.tls_pull]}")x" ">= 1.0x nginx"
grow "manifest GET req/s, signature required vs not" "${R[gw.mget_signed]}" "${R[gw.mget_unsigned]}" "$(ratio "${R[gw.mget_signed]}" "${R[gw.mget_unsigned]}")x" ">= 0.91x (<= 1.1x time)"
grow "  p99 (ms), required vs not" "${R[gw.mp99_signed]}" "${R[gw.mp99_unsigned]}" "" ""
grow "manifest GET req/s, metrics on vs off" "${R[gw.mget_metrics_on]}" "${R[gw.mget_metrics_off]}" "$(ratio "${R[gw.mget_metrics_on]}" "${R[gw.mget_metrics_off]}")x" ">= 0.95x"
grow "  p99 (ms), metrics on vs off" "${R[gw.mp99_metrics_on]}" "${R[gw.mp99_metrics_off]}" "" ""
grow "instructions per manifest GET, metrics on/off" "${R[cg.on]}" "${R[cg.off]}" "$(ratio "${R[cg.on]}" "${R[cg.off]}")x" "<= 1.05x"
grow "instructions, signature required/not" "${R[cg.signed]}" "${R[cg.on]}" "$(ratio "${R[cg.signed]}" "${R[cg.on]}")x" "<= 1.1x"
grow "tokens/s, pull-secret Basic auth (64 conns)" "${R[gw.tokens]}" "-" "" ">= 5000"
grow "token issuance p99 (ms)" "${R[gw.tp99]}" "-" "" ""

printf '\n%-44s %12s %12s %12s %10s %10s\n' "PostgreSQL + S3 vs SQLite + files (store)" "sqlite+files" "pg+s3" "2 replicas" "pg+s3" "2 replicas"
srow() {  # METRIC KEY: both ratios against SQLite + files
  printf '%-44s %12s %12s %12s %10s %10s\n' "$1" "${R[gh.$2]}" "${R[sc.$2]}" "${R[lb.$2]}" \
    "$(ratio "${R[sc.$2]}" "${R[gh.$2]}")x" "$(ratio "${R[lb.$2]}" "${R[gh.$2]}")x"
}
srow "blob push ${BIG_MB} MiB (MiB/s)" push
srow "blob pull ${BIG_MB} MiB (MiB/s)" pull
srow "8 parallel pulls (MiB/s total)" pull8
srow "4 KiB blob pushes/s (16 clients)" small
srow "manifest GET req/s (64 conns)" mget
srow "manifest GET p99 (ms)" mp99
srow "tag list req/s (64 conns, 50 tags)" tags
printf '%-44s %12s %12s %12s\n' "peak RSS pushing ${HUGE_MB} MiB (MiB)" "${R[gh.rss]}" "${R[sc.rss]}" "-"
printf '%-44s %12s %12s %12s %10s\n' "200 hooked tags, mean PUT latency (ms)" "$(hv tags_hook_mean_ms)" "$(hv tags_hook_mean_ms "$hook_sc")" "-" \
  "$(ratio "$(hv tags_hook_mean_ms "$hook_sc")" "$(hv tags_hook_mean_ms)")x"
printf '%-44s %12s %12s %12s %10s\n' "  hooked / unhooked PUT latency" "$(hv ratio)x" "$(hv ratio "$hook_sc")x" "-" ""

printf '\n%-44s %12s %12s %12s %12s\n' "server CPU-s (all server processes)" "sqlite+files" "pg+s3" "2 replicas" "distribution"
crow() { printf '%-44s %12s %12s %12s %12s\n' "$1" "${R[gh.$2]}" "${R[sc.$2]}" "${R[lb.$2]}" "${R[dr.$2]}"; }
crow "per GiB moved (push, pull, 8 pulls)" cpu_gib
crow "per 1,000 4 KiB pushes" cpu_push
crow "per 1,000 GETs (manifest, tag list)" cpu_get
crow "whole suite" cpu
crow "  gatehouse's own, per GiB moved" own_gib
crow "  gatehouse's own, per 1,000 4 KiB pushes" own_push
crow "  gatehouse's own, per 1,000 GETs" own_get
echo "(pg+s3 counts gatehouse, PostgreSQL and the S3 server (s3s-fs); 2 replicas adds the second"
echo " replica and nginx; \"gatehouse's own\" counts only the gatehouse processes)"

printf '\n%-44s %12s  %s\n' "at scale (store, SQLite + files)" "gatehouse" "target"
arow() { printf '%-44s %12s  %s\n' "$@"; }
arow "repositories made/s (one blob each, 16 clients)" "${R[scale.rps]}" ""
arow "catalog of ${SCALE_REPOS}: whole walk (ms)" "${R[scale.cat_ms]}" "pages of <= 10,000"
arow "  pages, slowest page (ms)" "${R[scale.cat_pages]}, ${R[scale.cat_page_ms]}" ""
arow "${IDLE_CONNS} idle connections: kept open" "${R[scale.idle_open]}" "<= max_connections (8192)"
arow "  let go (past the limit, silent)" "${R[scale.idle_closed]}" ""
arow "  RSS before / while held (MiB)" "${R[scale.rss_before]} / ${R[scale.rss_idle]}" "bounded"
arow "  open files while held" "${R[scale.fds_idle]}" ""

printf '\n%-44s %12s %12s %10s  %s\n' "post-push hook (store API, in-process)" "with hook" "without" "ratio" "target"
grow "copy: 10-arch index of 50-layer images (ms)" "$(hv index_copy_ms)" "-" "" "< 50 ms"
grow "200 tags in a row, mean PUT latency (ms)" "$(hv tags_hook_mean_ms)" "$(hv tags_plain_mean_ms)" "$(hv ratio)x" "<= 1.2x"
grow "200 tags in a row, p99 PUT latency (ms)" "$(hv tags_hook_p99_ms)" "$(hv tags_plain_p99_ms)" "" ""

printf '\n%-44s %12s %12s %10s  %s\n' "sync and edge sites" "gatehouse" "skopeo" "ratio" "target"
grow "push -> pullable at the edge, median (ms)" "$(sv edge_latency_median_ms)" "-" "" "< 2000 ms"
grow "push -> pullable at the edge, worst of 10 (ms)" "$(sv edge_latency_max_ms)" "-" "" ""
grow "first sync, 500 tags (ms)" "$(sv sync500_first_ms)" "-" "" ""
grow "re-sync, 500 tags, nothing new, from gatehouse" "$(sv resync500_gatehouse_ms)" "-" "" "< 200 ms"
grow "  the same from Distribution (500 HEADs) (ms)" "$(sv resync500_ms)" "-" "" ""
grow "sync of a ${SYNC_MB} MiB image (ms; skopeo copy)" "$(sv sync_big_ms)" "$(sv skopeo_big_ms)" "$(ratio "$(sv skopeo_big_ms)" "$(sv sync_big_ms)")x" ">= 0.8x skopeo"

printf '\n%-44s %12s %12s %12s  %s\n' "web console (1,000 repos, 10,000 tags)" "p50 (ms)" "p99 (ms)" "page (KiB)" "target"
printf '%-44s %12s %12s %12s  %s\n' "repository list (first 100)" "$(cv list_p50_ms)" "$(cv list_p99_ms)" "$(cv list_kib)" "p99 < 50 ms, < 100 KiB"
printf '%-44s %12s %12s %12s  %s\n' "repository page (10 tags, signatures)" "$(cv detail_p50_ms)" "$(cv detail_p99_ms)" "$(cv detail_kib)" "p99 < 50 ms, < 100 KiB"
