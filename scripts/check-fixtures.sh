#!/usr/bin/env bash
# Regenerates every committed test fixture into a temporary directory and diffs the result
# with what is committed: a fixture that no generator writes any more, or that its generator
# now writes differently (a new pin, an edited script), fails CI.
#
# Each crates/<crate>/tests/fixtures/generate.py writes next to itself (paths come from
# __file__), so the scripts alone (*.py, *.sh) are copied into an empty tree of the same
# layout and run there, next to the vendored inputs listed below; the cli generator reads the
# dataset crate's stores, which the tree holds by then (the generators run in dependency order).
#
#   scripts/check-fixtures.sh            # uses $GRIDFLOW_FIXTURES_VENV or target/fixtures-venv
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${GRIDFLOW_FIXTURES_VENV:-$root/target/fixtures-venv}"
python="$venv/bin/python"
[[ -x "$python" ]] || { echo "check-fixtures: no venv python at $python" >&2; exit 1; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gridflow-fixtures.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# generators in the order their inputs need (cli reads the dataset fixtures)
crates=(gridflow-store gridflow-dataset gridflow-cftime gridflow-catalog gridflow-expr gridflow-cli)
for c in "${crates[@]}"; do
  src="$root/crates/$c/tests/fixtures"
  mkdir -p "$tmp/crates/$c/tests/fixtures"
  find "$src" -maxdepth 1 -type f \( -name '*.py' -o -name '*.sh' \) -exec cp {} "$tmp/crates/$c/tests/fixtures/" \;
done
# fixtures copied from other projects (inputs of the generators, written by none of them):
# copied into the tree as they are, and compared like the rest
vendored=(crates/gridflow-catalog/tests/fixtures/intake-esm)
for v in "${vendored[@]}"; do
  mkdir -p "$tmp/$v"
  cp -R "$root/$v/." "$tmp/$v/"
done
for c in "${crates[@]}"; do
  start=$(date +%s)
  (cd "$tmp" && "$python" "crates/$c/tests/fixtures/generate.py" >"$tmp/$c.log" 2>&1) || {
    cat "$tmp/$c.log" >&2
    echo "check-fixtures: crates/$c/tests/fixtures/generate.py failed" >&2
    exit 1
  }
  echo "check-fixtures: $c regenerated in $(( $(date +%s) - start )) s"
done

# byte-for-byte, except the modification time numcodecs' GZip writes into each gzip header
# (bytes 4-7): the gzip-compressed chunks differ only there from run to run
"$python" - "$root" "$tmp" "${crates[@]}" <<'PY'
import os, sys
root, tmp, crates = sys.argv[1], sys.argv[2], sys.argv[3:]

def files(top):
    out = {}
    for d, dirs, names in os.walk(top):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, top)] = p
    return out

def normalized(data):
    if data[:2] == b"\x1f\x8b" and len(data) >= 10:
        return data[:4] + b"\0\0\0\0" + data[8:]
    return data

bad, n = [], 0
for c in crates:
    rel = os.path.join("crates", c, "tests", "fixtures")
    committed, fresh = files(os.path.join(root, rel)), files(os.path.join(tmp, rel))
    for k in sorted(committed.keys() - fresh.keys()):
        bad.append(f"{rel}/{k}: committed, but no generator writes it")
    for k in sorted(fresh.keys() - committed.keys()):
        bad.append(f"{rel}/{k}: written by the generator, not committed")
    for k in sorted(committed.keys() & fresh.keys()):
        n += 1
        with open(committed[k], "rb") as a, open(fresh[k], "rb") as b:
            if normalized(a.read()) != normalized(b.read()):
                bad.append(f"{rel}/{k}: differs")
for line in bad:
    print("check-fixtures:", line, file=sys.stderr)
if bad:
    sys.exit(f"check-fixtures: {len(bad)} fixture files differ from what their generators "
             "write; rerun the generators and commit, or fix the generator")
print(f"check-fixtures: {n} files regenerated, identical to the committed ones")
PY
