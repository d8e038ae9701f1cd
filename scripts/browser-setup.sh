#!/usr/bin/env bash
# The headless browser for the dashboard tests (crates/gridflow-distributed/tests/dashboard.rs):
#   * Debian's chromium (apt-get, as root, only when `chromium` is missing);
#   * npm playwright-core@$playwright_version into target/browser (its own driver only: no
#     browser download, no `npx playwright install`; the tests launch /usr/bin/chromium).
# Prints `export GRIDFLOW_BROWSER_DIR=...` and `export GRIDFLOW_CHROMIUM=...` for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
playwright_version=1.65.1
dir="$PWD/target/browser"
log() { printf '%s\n' "$*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" != 0 ]]; then
    log "chromium is missing; install it as root: apt-get install -y --no-install-recommends chromium"
    exit 1
  fi
  log "installing Debian's chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >&2; }
fi
pj="$dir/node_modules/playwright-core/package.json"
have="$( [[ -f "$pj" ]] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pj" || true)"
if [[ "$have" != "$playwright_version" ]]; then
  command -v npm >/dev/null || { log "npm is required (node 20)"; exit 1; }
  log "installing playwright-core@$playwright_version into $dir"
  mkdir -p "$dir"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$dir" --no-audit --no-fund \
    --save-exact --loglevel=error "playwright-core@$playwright_version" >&2
fi
echo "export GRIDFLOW_BROWSER_DIR=$dir"
echo "export GRIDFLOW_CHROMIUM=$(command -v chromium)"
