"""Runs the workload suite (issue 7): gridflow against Dask + Xarray, each run in its own
process, tools alternating, and writes one JSON line per run (see bench/suite/README.md).

Every run is measured from outside as a whole process: wall time from spawn to exit, and the
peak RSS of its whole process tree (the process and all its descendants, e.g. the worker
processes of Dask's LocalCluster), sampled from /proc every ~20 ms. The process itself prints
one JSON line (phase times, task counts, checksum), which is kept under "result".

Standard library only; run it with any Python 3.
"""

import argparse
import json
import os
import sys
import tempfile
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
STORE_PATH = "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r1i1p1f1/3hr/tas/gr/v20191125"

# The xarray-style expressions of `gridflow eval` (the user's CLI) for each workload.
EVAL_EXPR = {
    "W1": 'ds.tas.sel(lat=45.5, lon=9.4, method="nearest")',
    "W2": 'ds.tas.mean("time")',
    "W3": 'ds.tas.groupby("time.month").mean()',
    "W4": 'ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon"))',
    "W5": "da.ones(({n}, {n}), chunks=({c}, {c})).sum()",
    "W6": 'ds.tas.mean("time")',
    "W7": 'ds.tas.sel(time=slice("1851-01", "1851-03")).mean("time")',
}


def tree_pids(root):
    """The pid and all its descendants (through /proc/PID/task/TID/children)."""
    pids, i = [root], 0
    while i < len(pids):
        pid = pids[i]
        i += 1
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return pids


def tree_rss(root):
    """Summed RSS of the process tree in bytes, and how many processes it holds."""
    total, n = 0, 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
                n += 1
        except (OSError, IndexError, ValueError):
            pass
    return total, n


def measure(argv, interval=0.02, env=None):
    """Runs argv to completion; wall time, peak tree RSS, the child's JSON line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, env or os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        peak, procs, samples = 0, 0, 0
        while True:
            done, status, ru = os.wait4(pid, os.WNOHANG)
            if done:
                break
            rss, n = tree_rss(pid)
            peak, procs, samples = max(peak, rss), max(procs, n), samples + 1
            time.sleep(interval)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    rc = os.waitstatus_to_exitcode(status)
    root = ru.ru_maxrss / 1024  # exact for the root process (and its largest reaped child)
    # a process shorter than one interval can exit before any sample: the root's own peak is
    # then the best lower bound of the tree's
    return {"wall_s": wall, "peak_rss_mib": max(peak / 2**20, root), "sampled_peak_rss_mib": peak / 2**20,
            "root_maxrss_mib": root,
            "max_procs": procs, "samples": samples, "load1": load, "rc": rc,
            "stdout": stdout, "stderr_tail": stderr[-2000:]}


def json_line(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def eval_checksum(doc):
    """The float64 sum of `gridflow eval --json` values (a scalar or a flat list), NaNs
    left out; NaN and infinities come as the strings "NaN", "Infinity", "-Infinity"."""
    if doc is None:
        return None
    if "value" in doc:
        return float(doc["value"])
    return float(sum(float(v) for v in doc.get("values", []) if v is not None and v != "NaN"))


def plan(args):
    """(workload, impl, argv, memory limit) for every run of one repetition."""
    y5 = os.path.join(args.data, "y5")
    y10 = os.path.join(args.data, "y10")
    if args.quick:
        y5 = y10 = os.path.join(args.data, "tiny")
    store5, store10 = os.path.join(y5, STORE_PATH), os.path.join(y10, STORE_PATH)
    catalog = os.path.join(y5, "pangeo-cmip6.json")
    py = [args.python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "dask_workload.py")]
    gf = [args.bench_bin, "workload"]
    n, c = (2000, 200) if args.quick else (20000, 200)
    limit = args.memory_limit
    runs = {}
    for w in args.workloads:
        store = store10 if w == "W6" else store5
        src = ["--catalog", catalog] if w == "W0" else ([] if w == "W5" else ["--store", store])
        size = ["--n", str(n), "--chunk", str(c)] if w == "W5" else []
        lim = ["--memory-limit", limit] if w == "W6" else []
        r = {"gridflow": gf + [w] + src + size + lim + ["--threads", "2"]}
        if w in EVAL_EXPR and args.gridflow_bin:
            expr = EVAL_EXPR[w].format(n=n, c=c)
            r["gridflow-eval"] = ([args.gridflow_bin, "eval"] + ([] if w == "W5" else ["--store", store])
                                  + ["--threads", "2", "--json"] + lim + [expr])
            # the same CLI on a local cluster of 2 single-threaded worker processes, as
            # Dask's LocalCluster(n_workers=2, threads_per_worker=1); includes its start-up
            r["gridflow-cluster"] = ([args.gridflow_bin, "eval"] + ([] if w == "W5" else ["--store", store])
                                     + ["--cluster", "local:2x1", "--json"] + lim + [expr])
        r["dask-threads"] = py + [w] + src + size + ["--scheduler", "threads"]
        r["dask-cluster"] = py + [w] + src + size + ["--scheduler", "cluster"] + lim
        if w == "W3":
            r["dask-threads-flox"] = r["dask-threads"] + ["--flox"]
            r["dask-cluster-flox"] = r["dask-cluster"] + ["--flox"]
        if w in ("W1", "W2", "W3", "W4", "W6"):  # W7 reads only 3 of the 24 chunks
            r["floor"] = py + ["floor", "--store", store]
        keep = {k: v for k, v in r.items() if k in args.impls or (args.quick and k in quick_impls(w))}
        if args.quick and w != "W0":
            # the smoke run compares every value of the result, not only the checksums
            for k in keep:
                if k == "gridflow" or k.startswith("dask-"):
                    keep[k] = keep[k] + ["--values-out", values_path(args, w, k)]
        runs[w] = keep
    return runs


def values_path(args, w, impl):
    return os.path.join(args.data, "values", f"{w}-{impl}.json")


def compare_values(args, runs, rel=1e-6):
    """Every value each Dask run wrote against gridflow's, at `rel` relative difference (NaN
    only against NaN); a missing file, a length mismatch or a differing value fails."""
    bad = compared = 0
    for w, impls in runs.items():
        if w == "W0":
            continue
        try:
            with open(values_path(args, w, "gridflow")) as f:
                ref = json.load(f)
        except (OSError, ValueError) as e:
            print(f"values {w}: gridflow wrote no values ({e})", file=sys.stderr)
            bad += 1
            continue
        for impl in impls:
            if not impl.startswith("dask-"):
                continue
            try:
                with open(values_path(args, w, impl)) as f:
                    got = json.load(f)
            except (OSError, ValueError) as e:
                print(f"values {w} {impl}: missing ({e})", file=sys.stderr)
                bad += 1
                continue
            if len(got) != len(ref):
                print(f"values {w} {impl}: {len(got)} values, gridflow {len(ref)}", file=sys.stderr)
                bad += 1
                continue
            for i, (a, b) in enumerate(zip(got, ref)):
                same = (a is None and b is None) or (
                    a is not None and b is not None and abs(a - b) <= rel * max(abs(a), abs(b), 1e-300))
                if not same:
                    print(f"values {w} {impl}[{i}]: {a} vs gridflow {b}", file=sys.stderr)
                    bad += 1
                    break
            compared += len(ref)
    print(f"every value compared: {compared} values, {bad} problem(s)", file=sys.stderr)
    return bad


def quick_impls(w):
    """The smoke run's subset: every workload's checksum is checked against Dask once, and
    every kind of run (eval CLI, gridflow's and Dask's local clusters, flox, floor) runs once, in about a minute."""
    return {"W0": ["gridflow", "dask-threads"],
            "W1": ["gridflow", "gridflow-eval", "dask-threads", "floor"],
            "W2": ["gridflow", "gridflow-cluster", "dask-threads"],
            "W3": ["gridflow", "dask-threads", "dask-threads-flox"],
            "W4": ["gridflow", "dask-threads"],
            "W5": ["gridflow", "dask-threads"],
            "W6": ["gridflow", "dask-cluster", "floor"],
            "W7": ["gridflow", "gridflow-eval", "dask-threads"]}[w]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="holds y5/ and y10/ (or tiny/ with --quick)")
    ap.add_argument("--bench-bin", required=True, help="the gridflow-bench binary")
    ap.add_argument("--gridflow-bin", help="the gridflow binary (adds `gridflow eval` runs)")
    ap.add_argument("--python", required=True, help="the bench venv's python")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workloads", default="W0,W1,W2,W3,W4,W5,W6,W7")
    ap.add_argument("--impls", default="gridflow,gridflow-eval,gridflow-cluster,dask-threads,dask-threads-flox,"
                                        "dask-cluster,dask-cluster-flox,floor")
    ap.add_argument("--memory-limit", default="1.5GB", help="W6's limit for both tools")
    ap.add_argument("--out", required=True, help="JSON lines, appended")
    args = ap.parse_args()
    args.workloads = args.workloads.split(",")
    args.impls = [] if args.quick else args.impls.split(",")
    runs = plan(args)
    if args.quick:
        os.makedirs(os.path.join(args.data, "values"), exist_ok=True)
    failed = 0
    with open(args.out, "a") as out:
        for rep in range(args.repeat):
            for w, impls in runs.items():
                names = list(impls)
                k = rep % len(names)
                for impl in names[k:] + names[:k]:  # rotate, so no tool always goes first
                    m = measure(impls[impl])
                    result = json_line(m["stdout"])
                    if impl in ("gridflow-eval", "gridflow-cluster"):
                        result = {"checksum": eval_checksum(result)} if m["rc"] == 0 else None
                    rec = {"rep": rep, "workload": w, "impl": impl, "argv": impls[impl],
                           "memory_limit": args.memory_limit if w == "W6" else None,
                           **{k2: v for k2, v in m.items() if k2 != "stdout"}, "result": result}
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    ok = m["rc"] == 0 and result is not None
                    failed += not ok
                    print(f"rep {rep} {w:3} {impl:18} {m['wall_s']:8.3f} s {m['peak_rss_mib']:8.0f} MiB "
                          f"load {m['load1']:.2f}" + ("" if ok else f"  FAILED rc={m['rc']}: "
                                                      + m["stderr_tail"][-600:]), file=sys.stderr)
    if args.quick:
        failed += compare_values(args, runs)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
