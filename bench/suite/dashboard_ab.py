"""Does an open dashboard page slow a computation? The 100,000 tiny-task graph of
tiny_tasks.py, `(da.arange(N, chunks=1) * 2).sum()`, on one scheduler and two
single-threaded worker processes, with and without a headless chromium page holding the
dashboard's live /status open (it receives a frame every 200 ms), in interleaved pairs
(alternating which goes first), each `gridflow eval --scheduler` run timed as a whole
process:

    python bench/suite/dashboard_ab.py --gridflow target/release/gridflow [--n 100000]
        [--pairs 6] [--browser-dir target/browser] [--baseline OLD_GRIDFLOW]

Then times `gridflow eval --cluster local:2x1` with `--dashboard none` against the default
(the scheduler serving a dashboard nobody opens, publishing its snapshots). With
--baseline, also times `gridflow eval --cluster local:2x1` of this build (its
scheduler serving a dashboard nobody opens) against OLD_GRIDFLOW (a build without the
dashboard), interleaved the same way. Every result is checked (N·(N-1)); a wrong one exits
1. Prints one JSON line per run and a summary.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def expr(n):
    return f"(da.arange({n}, chunks=1) * 2).sum()"


def timed(argv, n):
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{argv}: exit {p.returncode}: {p.stderr[-2000:]}")
    out = json.loads(p.stdout)
    value = out["value"] if "value" in out else out["values"]
    value = value[0] if isinstance(value, list) else value
    if int(value) != n * (n - 1):
        sys.exit(f"{argv}: wrong result {value}, expected {n * (n - 1)}")
    return wall


def line(proc, prefix):
    """Reads lines of proc's stdout until one starts with prefix."""
    while True:
        s = proc.stdout.readline()
        if not s:
            sys.exit(f"process ended waiting for {prefix!r}")
        if s.startswith(prefix):
            return s.strip()


def summary(label, a, b):
    ma, mb = statistics.median(a), statistics.median(b)
    ratios = [y / x for x, y in zip(a, b)]
    out = {"summary": label, "median_a_s": round(ma, 3), "median_b_s": round(mb, 3),
           "b_over_a": round(mb / ma, 4), "pair_ratio_median": round(statistics.median(ratios), 4),
           "pair_ratios": [round(r, 4) for r in ratios]}
    print(json.dumps(out), flush=True)
    return out


def page_ab(args):
    sched = subprocess.Popen([args.gridflow, "scheduler", "--port", "0", "--dashboard-address", ":0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    workers = []
    browser = None
    try:
        address = line(sched, "gridflow scheduler at").split()[-1]
        link = line(sched, "gridflow dashboard at").split()[-1]
        for i in range(2):
            workers.append(subprocess.Popen([args.gridflow, "worker", address, "--nthreads", "1",
                                             "--name", f"w{i}"], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        env = dict(os.environ, NODE_PATH=os.path.join(args.browser_dir, "node_modules"))
        here = os.path.dirname(os.path.abspath(__file__))
        browser = subprocess.Popen(["node", os.path.join(here, "dashboard_page.js"), link],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

        def cmd(c):
            browser.stdin.write(c + "\n")
            browser.stdin.flush()
            return line(browser, "ok")

        argv = [args.gridflow, "eval", "--json", "--scheduler", address, expr(args.n)]
        timed(argv, args.n)  # warm-up
        closed, opened = [], []
        for i in range(args.pairs):
            for mode in (["closed", "open"] if i % 2 == 0 else ["open", "closed"]):
                cmd("open" if mode == "open" else "close")
                wall = timed(argv, args.n)
                frames = cmd("frames") if mode == "open" else ""
                (opened if mode == "open" else closed).append(wall)
                print(json.dumps({"pair": i, "page": mode, "wall_s": round(wall, 3), "browser": frames,
                                  "load1": os.getloadavg()[0]}), flush=True)
        cmd("quit")
        return summary(f"eval --scheduler, {args.n} tasks: page closed (a) vs open (b)", closed, opened)
    finally:
        for p in [browser, *workers, sched]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def baseline_ab(args):
    new, old = [], []
    for i in range(args.pairs):
        for who in (["old", "new"] if i % 2 == 0 else ["new", "old"]):
            exe = args.baseline if who == "old" else args.gridflow
            wall = timed([exe, "eval", "--json", "--cluster", "local:2x1", expr(args.n)], args.n)
            (old if who == "old" else new).append(wall)
            print(json.dumps({"pair": i, "build": who, "wall_s": round(wall, 3),
                              "load1": os.getloadavg()[0]}), flush=True)
    return summary(f"eval --cluster local:2x1, {args.n} tasks: without dashboard (a) vs with (b)", old, new)


def off_ab(args):
    off, on = [], []
    for i in range(args.pairs):
        for mode in (["off", "on"] if i % 2 == 0 else ["on", "off"]):
            extra = ["--dashboard", "none"] if mode == "off" else ["--dashboard", ":0"]
            wall = timed([args.gridflow, "eval", "--json", "--cluster", "local:2x1", *extra, expr(args.n)], args.n)
            (off if mode == "off" else on).append(wall)
            print(json.dumps({"pair": i, "dashboard": mode, "wall_s": round(wall, 3),
                              "load1": os.getloadavg()[0]}), flush=True)
    return summary(f"eval --cluster local:2x1, {args.n} tasks: --dashboard none (a) vs served, no page (b)", off, on)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gridflow", required=True)
    ap.add_argument("--baseline", help="a gridflow build without the dashboard")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--browser-dir", default=os.path.join("target", "browser"))
    args = ap.parse_args()
    page_ab(args)
    off_ab(args)
    if args.baseline:
        baseline_ab(args)


if __name__ == "__main__":
    main()
