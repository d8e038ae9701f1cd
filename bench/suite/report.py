"""Summarises bench/suite results: Markdown tables (medians, ratios, peak RSS, task counts,
checksum agreement, targets) and, with --plot, the ratio chart (matplotlib).

    python report.py RESULTS.jsonl [--machine MACHINE.json] [--plot OUT.png] [--tolerance 1e-6]

Exits 1 when a checksum disagrees with gridflow's beyond the relative tolerance, when a run
has no checksum, or (--quick) when a row of the smoke run's plan (run.py's quick_impls) is
missing or failed.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict

LABEL = {
    "W0": "W0 catalog open + search + to_dataset_dict",
    "W1": 'W1 `tas.sel(lat=45.5, lon=9.4, method="nearest")`',
    "W2": 'W2 `tas.mean("time")`',
    "W3": 'W3 `tas.groupby("time.month").mean()`',
    "W4": 'W4 `tas.weighted(cos(deg2rad(lat))).mean(("lat", "lon"))`',
    "W5": "W5 `ones((20000, 20000), chunks=(200, 200)).sum()`",
    "W6": 'W6 `tas.mean("time")`, 10 years, memory limit',
    "W7": 'W7 `tas.sel(time=slice("1851-01", "1851-03")).mean("time")`',
}


def load(path):
    runs = defaultdict(list)
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            runs[(r["workload"], r["impl"])].append(r)
    return runs


def ok(rs):
    return [r for r in rs if r["rc"] == 0 and r["result"] is not None]


class Stat:
    """Medians of one (workload, impl) over its repetitions."""

    def __init__(self, rs):
        rs = ok(rs)
        self.n = len(rs)
        self.walls = [r["wall_s"] for r in rs]
        self.wall = statistics.median(self.walls) if rs else None
        self.rss = statistics.median(r["peak_rss_mib"] for r in rs) if rs else None
        self.rss_max = max((r["peak_rss_mib"] for r in rs), default=None)
        self.loads = [r["load1"] for r in rs]
        res = [r["result"] for r in rs]
        self.checksums = [x.get("checksum") for x in res]
        self.checksum = self.checksums[0] if res else None
        self.tasks = res[0].get("tasks") if res else None
        self.tasks_run = res[0].get("tasks_run") if res else None
        self.decoded = res[0].get("decoded_bytes") if res else None
        inner = []
        for x in res:
            if "open_s" in x and "import_s" in x:  # Dask: open + compute, no imports/cluster
                inner.append(x["open_s"] + x["compute_s"])
            elif "total_s" in x and x.get("tool") == "gridflow":
                inner.append(x["total_s"])
            elif "compute_s" in x:
                inner.append(x["compute_s"])
        self.inner = statistics.median(inner) if inner else None
        self.failed = len(rs) != self.n


def fmt_s(x):
    return "–" if x is None else (f"{x:.3f} s" if x < 10 else f"{x:.1f} s")


def fmt_mib(x):
    return "–" if x is None else f"{x:.0f} MiB"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


def rel(a, b):
    if a is None or b is None:
        return None
    return abs(a - b) / max(abs(b), 1e-300)


def rows(runs):
    """(label, workload, gridflow stat, Dask threads, Dask cluster, floor, eval) rows; W3 twice."""
    out = []
    for w in ["W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7"]:
        if (w, "gridflow") not in runs:
            continue
        g = Stat(runs[(w, "gridflow")])
        f = Stat(runs.get((w, "floor"), []))
        e = Stat(runs.get((w, "gridflow-eval"), []))
        variants = [("", "")] if w != "W3" else [(" (Dask without flox)", ""), (" (Dask with flox)", "-flox")]
        for suffix, fx in variants:
            t = Stat(runs.get((w, "dask-threads" + fx), []))
            c = Stat(runs.get((w, "dask-cluster" + fx), []))
            out.append((LABEL[w] + suffix, w, g, t, c, f, e))
    return out


def missing_rows(runs, workloads):
    """The (workload, impl) rows of the smoke run's plan that are absent or never succeeded."""
    from run import quick_impls  # same directory
    out = []
    for w in workloads:
        for impl in quick_impls(w):
            if not ok(runs.get((w, impl), [])):
                out.append(f"{w} {impl}")
    return out


def checks(runs, tol):
    """Per workload: every impl's checksum against gridflow's (floors excluded)."""
    lines, bad = [], 0
    for w in sorted({k[0] for k in runs}):
        ref = Stat(runs.get((w, "gridflow"), [])).checksum
        parts = []
        for (w2, impl), rs in sorted(runs.items()):
            if w2 != w or impl in ("floor", "gridflow"):
                continue
            bad += len(rs) - len(ok(rs))  # failed runs have no checksum
            for c in Stat(rs).checksums:
                d = rel(c, ref)
                if d is None or d > tol:
                    bad += 1
            diffs = [rel(c, ref) for c in Stat(rs).checksums]
            worst = max(float("inf") if d is None else d for d in diffs) if diffs else None
            parts.append(f"{impl} {'–' if worst is None else f'{worst:.1e}'}")
        lines.append(f"| {w} | {ref!r} | {'; '.join(parts)} |")
    return lines, bad


def targets(runs):
    """The issue's targets, reported (never asserted)."""
    s = {k: Stat(v) for k, v in runs.items()}
    get = lambda w, i: s.get((w, i))  # noqa: E731
    out = []

    def speed(w, impl="dask-threads"):
        g, d = get(w, "gridflow"), get(w, impl)
        return None if not g or not d or not g.wall or not d.wall else d.wall / g.wall

    def floor_ratio(w):
        g, f = get(w, "gridflow"), get(w, "floor")
        return None if not g or not f or not f.wall else g.wall / f.inner

    def line(name, value, goal, met, unit="×"):
        v = "–" if value is None else f"{value:.2f}{unit}"
        verdict = "–" if value is None else ("**met**" if met(value) else "**missed**")
        out.append(f"| {name} | {goal} | {v} | {verdict} |")

    for w, fl, sp in [("W1", 1.15, 1.3), ("W2", 1.15, 1.6)]:
        line(f"{w} gridflow ÷ floor (whole process ÷ in-process floor)", floor_ratio(w), f"≤ {fl}×",
             lambda v, fl=fl: v <= fl)
        line(f"{w} Dask threaded ÷ gridflow", speed(w), f"≥ {sp}×", lambda v, sp=sp: v >= sp)
    for w in ("W3", "W4"):
        line(f"{w} Dask threaded ÷ gridflow", speed(w), "≥ 2×", lambda v: v >= 2)
    if get("W3", "dask-threads-flox"):
        line("W3 Dask threaded with flox ÷ gridflow", speed("W3", "dask-threads-flox"), "≥ 2×",
             lambda v: v >= 2)
        faster = min(("dask-threads", "dask-threads-flox"),
                     key=lambda i: get("W3", i).wall if get("W3", i) and get("W3", i).wall else 1e99)
        g, d = get("W3", "gridflow"), get("W3", faster)
        if g and d and d.wall:
            line(f"W3 vs the faster Dask ({faster}): time", d.wall / g.wall, "≥ 2×", lambda v: v >= 2)
            line(f"W3 vs the faster Dask ({faster}): gridflow peak RSS ÷ Dask's", g.rss / d.rss, "≤ 0.33",
                 lambda v: v <= 1 / 3, unit="")
    for w in ("W1", "W2", "W3", "W4"):
        g, d = get(w, "gridflow"), get(w, "dask-threads")
        if g and d and d.rss:
            line(f"{w} gridflow peak RSS ÷ Dask threaded's", g.rss / d.rss, "≤ 0.33",
                 lambda v: v <= 1 / 3, unit="")
    # on stores written by xarray with CMIP6's 1e20 fill values (the real-stores issue)
    for w, sp in [("W1", 2.5), ("W2", 4), ("W3", 4), ("W4", 4), ("W7", 3)]:
        line(f"{w} Dask threaded ÷ gridflow (CMIP6 encodings)", speed(w), f"≥ {sp}×",
             lambda v, sp=sp: v >= sp)
    for w in ("W1", "W2", "W3", "W4", "W7"):
        g, d = get(w, "gridflow"), get(w, "dask-threads")
        if g and d and d.rss:
            line(f"{w} gridflow peak RSS ÷ Dask threaded's (CMIP6 encodings)", g.rss / d.rss, "≤ 0.25",
                 lambda v: v <= 1 / 4, unit="")
    line("W5 Dask threaded ÷ gridflow", speed("W5"), "≥ 50×", lambda v: v >= 50)
    return out


def cluster_rows(runs):
    """W1–W4 (and any other workload run on both clusters): gridflow's CLI on the local
    executor and on its local cluster, beside Dask's LocalCluster (the faster of flox or not)."""
    out = []
    for w in ["W1", "W2", "W3", "W4", "W5", "W6", "W7"]:
        gc = Stat(runs.get((w, "gridflow-cluster"), []))
        if not gc.n:
            continue
        gl = Stat(runs.get((w, "gridflow-eval"), []))
        dcs = [Stat(runs.get((w, i), [])) for i in ("dask-cluster", "dask-cluster-flox")]
        dcs = [d for d in dcs if d.wall]
        dc = min(dcs, key=lambda d: d.wall) if dcs else Stat([])
        out.append((w, gl, gc, dc))
    return out


def cluster_targets(crows):
    out = []
    for w, gl, gc, dc in crows:
        if w not in ("W1", "W2", "W3", "W4"):
            continue
        for name, value, goal, met, unit in [
            (f"{w} Dask LocalCluster ÷ gridflow cluster", dc.wall and gc.wall and dc.wall / gc.wall,
             "≥ 3×", lambda v: v >= 3, "×"),
            (f"{w} gridflow cluster ÷ gridflow local executor", gl.wall and gc.wall and gc.wall / gl.wall,
             "≤ 1.3×", lambda v: v <= 1.3, "×"),
            (f"{w} peak RSS gridflow cluster ÷ Dask LocalCluster", dc.rss and gc.rss and gc.rss / dc.rss,
             "< 1", lambda v: v < 1, ""),
        ]:
            v = "–" if not value else f"{value:.2f}{unit}"
            verdict = "–" if not value else ("**met**" if met(value) else "**missed**")
            out.append(f"| {name} | {goal} | {v} | {verdict} |")
    return out


def plot(rws, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r[1] + (" flox" if "with flox" in r[0] else "") for r in rws]
    x = range(len(rws))

    def r_(a, b):
        return (a / b) if a and b else 0

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    w = 0.27
    sp_t = [r_(r[3].wall, r[2].wall) for r in rws]
    sp_c = [r_(r[4].wall, r[2].wall) for r in rws]
    fl = [r_(r[2].wall, r[5].inner) for r in rws]
    ax1.bar([i - w for i in x], sp_t, w, label="Dask threaded ÷ gridflow")
    ax1.bar(list(x), sp_c, w, label="Dask LocalCluster ÷ gridflow")
    ax1.bar([i + w for i in x], fl, w, label="gridflow ÷ I/O+decode floor")
    goals = {"W1": 1.3, "W2": 1.6, "W3": 2, "W4": 2, "W5": 50}
    for i, r in enumerate(rws):
        if r[1] in goals:
            ax1.plot([i - 1.5 * w, i - w / 2], [goals[r[1]]] * 2, color="k", lw=2,
                     label="target vs Dask threaded" if i == 1 else None)
        if r[1] in ("W1", "W2"):
            ax1.plot([i + w / 2, i + 1.5 * w], [1.15] * 2, color="g", lw=2,
                     label="target vs floor (1.15×)" if r[1] == "W1" else None)
    ax1.axhline(1, color="k", lw=0.8)
    ax1.set_yscale("log")
    ax1.set_xticks(list(x), labels)
    ax1.set_ylabel("ratio of median wall times (log)")
    ax1.set_title("Time (whole processes; > 1: gridflow faster)")
    ax1.legend(fontsize=8)
    rs_t = [r_(r[2].rss, r[3].rss) for r in rws]
    rs_c = [r_(r[2].rss, r[4].rss) for r in rws]
    ax2.bar([i - w / 2 for i in x], rs_t, w, label="gridflow ÷ Dask threaded")
    ax2.bar([i + w / 2 for i in x], rs_c, w, label="gridflow ÷ Dask LocalCluster")
    ax2.axhline(1 / 3, color="r", lw=0.8, ls="--", label="target 1/3 (W1–W4)")
    ax2.set_xticks(list(x), labels)
    ax2.set_ylabel("ratio of peak RSS (process tree)")
    ax2.set_title("Peak memory (< 1: gridflow smaller)")
    ax2.legend(fontsize=8)
    fig.suptitle("gridflow vs Dask + Xarray, 2 threads (bench/suite)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--machine")
    ap.add_argument("--plot")
    ap.add_argument("--tolerance", type=float, default=1e-6)
    ap.add_argument("--workloads", default="W0,W1,W2,W3,W4,W5,W6,W7",
                    help="with --quick: the workloads whose smoke-run rows must all be present")
    ap.add_argument("--quick", action="store_true", help="say that the timings mean nothing")
    args = ap.parse_args()
    runs = load(args.results)
    rws = rows(runs)
    p = print
    if args.quick:
        p("Smoke run on a tiny store (--quick): only the harness, the checksums and every value (against gridflow's, at 1e-6) are checked; "
          "the timings and ratios mean nothing.")
        p()
    if args.machine:
        m = json.load(open(args.machine))
        p("Machine: " + m.get("machine", "?"))
        p("Versions: " + m.get("versions", "?"))
        p("Load (uptime) at start: " + m.get("uptime_start", "?") + "; at end: " + m.get("uptime_end", "?"))
        p()
    p("Median wall time of whole processes (startup, imports, opening, graph, compute), "
      "repetitions alternating between tools; floor = in-process read + decode + float64 sum on 2 threads.")
    p()
    p("| workload | gridflow | gridflow eval CLI | Dask threaded | Dask LocalCluster | floor | "
      "gridflow ÷ floor | Dask threaded ÷ gridflow | Dask cluster ÷ gridflow |")
    p("|---|---|---|---|---|---|---|---|---|")
    for label, w, g, t, c, f, e in rws:
        p(f"| {label} | {fmt_s(g.wall)} | {fmt_s(e.wall)} | {fmt_s(t.wall)} | {fmt_s(c.wall)} | "
          f"{fmt_s(f.inner)} | {ratio(g.wall, f.inner)} | {ratio(t.wall, g.wall, 1)} | {ratio(c.wall, g.wall, 1)} |")
    p()
    p("Peak RSS of the whole process tree (median over repetitions), task counts (as built / as run: "
      "gridflow after cull + fusion, Dask after `dask.optimize`), in-process time (gridflow: open + graph + "
      "compute; Dask: open + compute, without imports and cluster start-up).")
    p()
    p("| workload | gridflow RSS | Dask threaded RSS | Dask cluster RSS | gridflow ÷ Dask threaded RSS | "
      "gridflow tasks | Dask tasks | gridflow in-process | Dask threaded in-process |")
    p("|---|---|---|---|---|---|---|---|---|")
    for label, w, g, t, c, f, e in rws:
        p(f"| {label} | {fmt_mib(g.rss)} | {fmt_mib(t.rss)} | {fmt_mib(c.rss)} | {ratio(g.rss, t.rss)} | "
          f"{g.tasks or '–'} / {g.tasks_run or '–'} | {t.tasks or '–'} / {t.tasks_run or '–'} | "
          f"{fmt_s(g.inner)} | {fmt_s(t.inner)} |")
    p()
    p("What gridflow decodes: chunk bytes decoded from the store (whole chunks and streamed blosc blocks), "
      "against the raw size of the 5-year `tas` (1.593 GB; the 10-year store for W6). The decode limit is the "
      "floor's time for decoding every chunk once; a workload that decodes a fraction of the store can beat it.")
    p()
    p("| workload | gridflow decoded | of the store | gridflow ÷ floor |")
    p("|---|---|---|---|")
    raw = {"W6": 14400 * 2 * 144 * 192 * 4}
    for label, w, g, t, c, f, e in rws:
        if g.decoded is None:
            continue
        size = raw.get(w, 14400 * 144 * 192 * 4)
        p(f"| {label} | {g.decoded / 1e6:.1f} MB | {100 * g.decoded / size:.1f}% | {ratio(g.wall, f.inner)} |")
    p()
    if ("W6", "gridflow") in runs:
        lim = next((r["memory_limit"] for r in runs[("W6", "gridflow")] if r.get("memory_limit")), None)
        p(f"W6 memory limit {lim} (gridflow `--memory-limit`; LocalCluster `memory_limit` split over 2 "
          "workers; Dask threaded has no limit). Highest peak RSS of the process tree over the repetitions:")
        p()
        for impl in ("gridflow", "dask-threads", "dask-cluster"):
            s = Stat(runs.get(("W6", impl), []))
            if s.n:
                p(f"- {impl}: {fmt_mib(s.rss_max)} ({s.n} runs completed)")
        p()
    crows = cluster_rows(runs)
    if crows:
        p("On clusters of 2 single-threaded worker processes: `gridflow eval --cluster local:2x1` (starts its "
          "scheduler and workers, computes, stops them) beside `gridflow eval --threads 2` and Dask's "
          "`LocalCluster(n_workers=2, threads_per_worker=1)` (the faster of with and without flox), whole "
          "processes; peak RSS of the whole process tree (client, scheduler and workers).")
        p()
        p("| workload | gridflow local | gridflow cluster | Dask LocalCluster | Dask cluster ÷ gridflow cluster | "
          "gridflow cluster ÷ local | gridflow cluster RSS | Dask cluster RSS |")
        p("|---|---|---|---|---|---|---|---|")
        for w, gl, gc, dc in crows:
            p(f"| {LABEL[w]} | {fmt_s(gl.wall)} | {fmt_s(gc.wall)} | {fmt_s(dc.wall)} | {ratio(dc.wall, gc.wall, 1)} | "
              f"{ratio(gc.wall, gl.wall)} | {fmt_mib(gc.rss)} | {fmt_mib(dc.rss)} |")
        p()
    p("Checksums (float64 sum of the result values that are not NaN): gridflow's, and the largest relative difference "
      f"of every other run from it (tolerance {args.tolerance:g}):")
    p()
    p("| workload | gridflow checksum | others (max relative difference) |")
    p("|---|---|---|")
    lines, bad = checks(runs, args.tolerance)
    for line in lines:
        p(line)
    p()
    p("Targets (reported, not asserted):")
    p()
    p("| target | goal | measured | |")
    p("|---|---|---|---|")
    for line in targets(runs) + cluster_targets(crows):
        p(line)
    p()
    p("Spread of the wall times (min–max over repetitions) and load average (1 min) during the runs:")
    p()
    for (w, impl), rs in sorted(runs.items()):
        s = Stat(rs)
        if s.n:
            p(f"- {w} {impl}: {min(s.walls):.3f}–{max(s.walls):.3f} s over {s.n} runs, "
              f"load {min(s.loads):.2f}–{max(s.loads):.2f}")
        if len(rs) != s.n:
            p(f"  - {len(rs) - s.n} run(s) FAILED")
    if args.plot:
        plot(rws, args.plot)
    missing = missing_rows(runs, args.workloads.split(",")) if args.quick else []
    for m in missing:
        print(f"missing or failed row: {m}", file=sys.stderr)
    if bad:
        print(f"{bad} checksum(s) disagree with gridflow's (or are missing)", file=sys.stderr)
    if bad or missing:
        sys.exit(1)


if __name__ == "__main__":
    main()
