"""Tiny tasks on clusters: what one task costs end to end, gridflow beside Dask in one run.

    python tiny_tasks.py --gridflow target/release/gridflow [--n 100000] [--dask-n 10000]
                         [--repeat 3] [--out results.jsonl]

The graph is the issue's `(da.arange(N, chunks=1) * 2).sum()`: N one-element chunks, whose
multiply survives fusion into the chunk tasks but whose tree reduction does not. Runs, each a
whole process measured from outside (wall time, peak RSS of the process tree):

- `gridflow eval --threads 2` (the local executor) and `gridflow eval --cluster local:2x1`
  (a scheduler and two single-threaded worker processes, started and stopped inside the run);
- Dask's `LocalCluster(n_workers=2, threads_per_worker=1)` with `dask.array`, which also
  prints its in-process compute time (without imports and cluster start-up).

Dask costs milliseconds per task here, so it runs a smaller N by default (`--dask-n`); the
table compares time per task and tasks per second, which flatters Dask (its per-task cost
grows with the graph). Every result is checked against the exact sum N·(N-1); a wrong or
missing result exits 1.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import json_line, measure  # noqa: E402  (same directory)

DASK = r"""
import json, sys, time
n = int(sys.argv[1])
import dask.array as da
from dask.distributed import Client, LocalCluster
t0 = time.perf_counter()
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, Client(c):
    t1 = time.perf_counter()
    x = (da.arange(n, chunks=1) * 2).sum()
    v = int(x.compute())
    t2 = time.perf_counter()
print(json.dumps({"value": v, "cluster_s": t1 - t0, "compute_s": t2 - t1}))
"""


def expr(n):
    return f"(da.arange({n}, chunks=1) * 2).sum()"


def runs(args):
    gf = [args.gridflow, "eval", "--json"]
    return [
        ("gridflow --threads 2", args.n, gf + ["--threads", "2", expr(args.n)]),
        ("gridflow --cluster local:2x1", args.n, gf + ["--cluster", "local:2x1", expr(args.n)]),
        ("Dask LocalCluster(2x1)", args.dask_n, [args.python, "-c", DASK, str(args.dask_n)]),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gridflow", required=True, help="the gridflow binary")
    ap.add_argument("--python", default=sys.executable, help="a python with dask.distributed")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dask-n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="JSON lines, appended")
    args = ap.parse_args()
    plan = runs(args)
    results = {name: [] for name, _, _ in plan}
    bad = 0
    out = open(args.out, "a") if args.out else None
    for rep in range(args.repeat):
        k = rep % len(plan)
        for name, n, argv in plan[k:] + plan[:k]:  # rotate, so no tool always goes first
            m = measure(argv)
            doc = json_line(m["stdout"])
            # `gridflow eval --json` prints a 0-d result as one-element "values"
            value = None if doc is None else doc.get("value", (doc.get("values") or [None])[0])
            want = n * (n - 1)
            ok = m["rc"] == 0 and value is not None and int(value) == want
            bad += not ok
            rec = {"rep": rep, "run": name, "n": n, "value": value, "want": want, "ok": ok,
                   **{k2: v for k2, v in m.items() if k2 != "stdout"},
                   "compute_s": None if doc is None else doc.get("compute_s")}
            results[name].append(rec)
            if out:
                out.write(json.dumps(rec) + "\n")
            print(f"rep {rep} {name:30} n={n:7} {m['wall_s']:8.3f} s {m['peak_rss_mib']:6.0f} MiB "
                  f"load {m['load1']:.2f}" + ("" if ok else f"  FAILED rc={m['rc']} value={value} want={want}: "
                                              + m["stderr_tail"][-400:]), file=sys.stderr)
    print("| run | tasks (chunks) | wall, median (min–max) | per task | tasks/s | peak RSS | in-process compute |")
    print("|---|---|---|---|---|---|---|")
    per_task = {}
    for name, n, _ in plan:
        rs = [r for r in results[name] if r["ok"]]
        if not rs:
            print(f"| {name} | {n} | failed | | | | |")
            continue
        walls = [r["wall_s"] for r in rs]
        w = statistics.median(walls)
        per_task[name] = w / n
        comp = [r["compute_s"] for r in rs if r["compute_s"] is not None]
        c = f"{statistics.median(comp):.2f} s ({statistics.median(comp) / n * 1e6:.0f} µs/task)" if comp else "–"
        print(f"| {name} | {n:,} | {w:.2f} s ({min(walls):.2f}–{max(walls):.2f}) | {w / n * 1e6:.1f} µs | "
              f"{n / w:,.0f} | {statistics.median(r['peak_rss_mib'] for r in rs):.0f} MiB | {c} |")
    g, d = per_task.get("gridflow --cluster local:2x1"), per_task.get("Dask LocalCluster(2x1)")
    if g and d:
        print(f"\nPer task, whole processes: Dask LocalCluster ÷ gridflow cluster = {d / g:.0f}× "
              f"(target ≥ 50×); gridflow cluster: {1 / g:,.0f} tasks/s (target ≥ 50,000).")
    if bad:
        print(f"{bad} run(s) failed or gave a wrong sum", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
