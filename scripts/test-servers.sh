#!/usr/bin/env bash
# Real servers for the remote store tests (crates/gridflow-store/tests/remote.rs):
#   * npm http-server@14.1.1 serving the Zarr fixture stores directory;
#   * the same with HTTP basic auth (every request answers 401, for the auth-failure test);
#   * npm s3rver@3.7.1 (path-style S3, bucket configured at start) holding the same stores,
#     uploaded through the S3 API (unsigned PUTs).
# All listen on 127.0.0.1 only, on free ports picked at start.
#
#   scripts/test-servers.sh start   # installs the npm packages if needed, starts, uploads,
#                                   # writes the variables to target/test-servers/env
#   scripts/test-servers.sh stop    # stops the servers this script started (by pid)
#   scripts/test-servers.sh env     # prints the env file (for `source <(...)` or eval)
#
# `source target/test-servers/env` exports GRIDFLOW_TEST_HTTP_URL,
# GRIDFLOW_TEST_HTTP_AUTH_URL, GRIDFLOW_TEST_S3_ENDPOINT and GRIDFLOW_TEST_S3_BUCKET.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${GRIDFLOW_TEST_SERVERS_DIR:-$root/target/test-servers}"
fixtures="$root/crates/gridflow-store/tests/fixtures"
bucket="gridflow-test"
http_server_version="14.1.1"
s3rver_version="3.7.1"
envfile="$dir/env"

log() { printf 'test-servers: %s\n' "$*" >&2; }

installed_version() { # package -> version installed under $dir, or nothing
  local pj="$dir/node_modules/$1/package.json"
  [[ -f "$pj" ]] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pj"
}

install() {
  if [[ "$(installed_version http-server || true)" == "$http_server_version" &&
        "$(installed_version s3rver || true)" == "$s3rver_version" ]]; then
    return
  fi
  command -v node >/dev/null || { log "node is required (node 20)"; exit 1; }
  command -v npm >/dev/null || { log "npm is required"; exit 1; }
  log "installing http-server@$http_server_version s3rver@$s3rver_version into $dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error \
    "http-server@$http_server_version" "s3rver@$s3rver_version" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url: waits up to 20 s for any HTTP answer (python3 only; no curl needed)
  python3 - "$1" <<'EOF2' || { log "no answer from $1"; return 1; }
import sys, time, urllib.error, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # any status is an answer
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF2
}

start_bg() { # name command...: starts a server in the background, records its pid
  local name=$1; shift
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

upload() { # uploads every fixture store to s3://$bucket/<store>.zarr/... with unsigned PUTs
  python3 - "$1" "$bucket" "$fixtures" <<'EOF'
import os, sys, urllib.parse, urllib.request
endpoint, bucket, fixtures = sys.argv[1:]
n = 0
for store in sorted(os.listdir(fixtures)):
    top = os.path.join(fixtures, store)
    if not (store.endswith(".zarr") and os.path.isdir(top)):
        continue
    for d, _, files in os.walk(top):
        for f in files:
            path = os.path.join(d, f)
            key = os.path.relpath(path, fixtures).replace(os.sep, "/")
            with open(path, "rb") as fh:
                body = fh.read()
            url = f"{endpoint}/{bucket}/{urllib.parse.quote(key)}"
            req = urllib.request.Request(url, data=body, method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status != 200:
                    sys.exit(f"PUT {url}: HTTP {r.status}")
            n += 1
print(f"test-servers: uploaded {n} objects to {endpoint}/{bucket}", file=sys.stderr)
EOF
}

stop() {
  local name pid
  for name in http http-auth s3rver; do
    [[ -f "$dir/$name.pid" ]] || continue
    pid="$(cat "$dir/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
  rm -f "$envfile"
  rm -rf "$dir/s3data"
}

start() {
  install
  stop # a previous run's leftovers
  local bin="$dir/node_modules" http_port auth_port s3_port
  http_port="$(free_port)"; auth_port="$(free_port)"; s3_port="$(free_port)"
  mkdir -p "$dir/s3data"
  start_bg http node "$bin/http-server/bin/http-server" "$fixtures" \
    -a 127.0.0.1 -p "$http_port" -c-1 -d false -s
  start_bg http-auth node "$bin/http-server/bin/http-server" "$fixtures" \
    -a 127.0.0.1 -p "$auth_port" -c-1 -d false -s --username gridflow --password secret
  start_bg s3rver node "$bin/s3rver/bin/s3rver.js" -d "$dir/s3data" \
    -a 127.0.0.1 -p "$s3_port" --silent --no-vhost-buckets --configure-bucket "$bucket"
  local http="http://127.0.0.1:$http_port" auth="http://127.0.0.1:$auth_port"
  local s3="http://127.0.0.1:$s3_port"
  wait_http "$http/cmip6_mini.zarr/.zmetadata"
  wait_http "$auth/"
  wait_http "$s3/$bucket"
  upload "$s3"
  cat >"$envfile" <<EOF
export GRIDFLOW_TEST_HTTP_URL=$http
export GRIDFLOW_TEST_HTTP_AUTH_URL=$auth
export GRIDFLOW_TEST_S3_ENDPOINT=$s3
export GRIDFLOW_TEST_S3_BUCKET=$bucket
EOF
  log "http-server $http (auth: $auth), s3rver $s3 bucket $bucket; variables in $envfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) cat "$envfile" ;;
  install) install ;;
  *) echo "usage: $0 start|stop|env|install" >&2; exit 2 ;;
esac
