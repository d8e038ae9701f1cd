"""Prints the store benchmark's results (results.jsonl from run.sh) as Markdown tables, and
checks them: every row must be there, and gridflow's values must equal the Python side's to a
relative 1e-6 (every value of the point series; the sums; decoded byte and chunk counts exactly).
Exits 1 otherwise."""

import json
import os
import sys


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


REQUIRED = [("python", "floor_decode"), ("python", "floor_decode_sum"), ("python", "dask_sum"),
            ("python", "dask_point"), ("gridflow", "read_decode"), ("gridflow", "lazy_sum"),
            ("gridflow", "point")]
TOLERANCE = 1e-6


def close(a, b):
    return a == b or abs(a - b) <= TOLERANCE * max(abs(a), abs(b))


def check(r):
    """Every disagreement between gridflow and the Python side, as messages."""
    bad = [f"missing row: {impl} {w}" for impl, w in REQUIRED if (impl, w) not in r]
    if bad:
        return bad
    g, d = r[("gridflow", "point")], r[("python", "dask_point")]
    gv, dv = g.get("values"), d.get("values")
    if gv is None or dv is None or len(gv) != len(dv) or g["n"] != d["n"] or g["n"] != len(gv):
        bad.append(f"point series: gridflow n={g['n']} ({len(gv or [])} values), "
                   f"zarr-python n={d['n']} ({len(dv or [])} values)")
    else:
        bad += [f"point series value {i}: gridflow {a!r}, zarr-python {b!r}"
                for i, (a, b) in enumerate(zip(gv, dv)) if not close(a, b)]
    gs = r[("gridflow", "lazy_sum")]["sum"]
    for impl, w in [("python", "dask_sum"), ("python", "floor_decode_sum")]:
        if not close(gs, r[(impl, w)]["sum"]):
            bad.append(f"sum: gridflow {gs!r}, {w} {r[(impl, w)]['sum']!r}")
    gd, fd = r[("gridflow", "read_decode")], r[("python", "floor_decode")]
    for k in ("decoded_bytes", "chunks"):
        if k in gd and gd[k] != fd[k]:
            bad.append(f"{k}: gridflow {gd[k]}, numcodecs floor {fd[k]}")
    return bad


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    data = sys.argv[2] if len(sys.argv) > 2 else None
    r = {(x["impl"], x["workload"]): x for x in rows}
    bad = check(r)
    if bad:
        for b in bad[:20]:
            print("ERROR:", b, file=sys.stderr)
        sys.exit(f"ERROR: {len(bad)} disagreement(s) or missing row(s) in {sys.argv[1]}")

    def t(impl, w):
        return r[(impl, w)]["median"] if (impl, w) in r else float("nan")

    floor, floor_sum = t("python", "floor_decode"), t("python", "floor_decode_sum")
    if data:
        for name in ("tas_v2.zarr", "tas_v3_sharded.zarr"):
            p = os.path.join(data, name)
            if os.path.isdir(p):
                print(f"- `{name}`: {du(p) / 1e9:.3f} GB on disk")
        print()
    print("| read every chunk of tas_v2.zarr, 2 threads | median s | runs (s) | × floor (decode) | × floor (decode+sum) |")
    print("|---|---|---|---|---|")
    for impl, w, label in [
        ("python", "floor_decode", "numcodecs floor: read file + blosc decode (ThreadPoolExecutor(2))"),
        ("python", "floor_decode_sum", "numcodecs floor + float64 numpy sum per chunk"),
        ("gridflow", "read_decode", "gridflow `read_chunk` on 2 threads (read + decode)"),
        ("gridflow", "lazy_sum", "gridflow `to_chunked(None).sum(None)` on `Scheduler::threads(2)`"),
        ("python", "dask_sum", "zarr-python + dask `da.from_zarr(...).sum()`, threads=2"),
    ]:
        if (impl, w) not in r:
            continue
        x = r[(impl, w)]
        runs = ", ".join(f"{v:.3f}" for v in x["times"])
        print(f"| {label} | {x['median']:.3f} | {runs} | {x['median'] / floor:.2f}× | {x['median'] / floor_sum:.2f}× |")
    print()
    g, d = r.get(("gridflow", "point")), r.get(("python", "dask_point"))
    print("| one grid point's time series, tas_v3_sharded.zarr | median s | runs (s) | bytes read | requests | rchar | values (n, mean) |")
    print("|---|---|---|---|---|---|---|")
    for label, x in [("gridflow `read_region`", g), ("zarr-python + dask `da.from_zarr(z)[:, i, j]`", d)]:
        if x is None:
            continue
        runs = ", ".join(f"{v:.4f}" for v in x["times"])
        print(f"| {label} | {x['median']:.4f} | {runs} | {x['bytes_read']:,} | {x['requests']} | "
              f"{x['rchar']:,} | {x['n']}, {x['mean']:.4f} |")
    if g and d:
        print()
        print(f"gridflow point series: {d['median'] / g['median']:.1f}× faster than zarr-python + dask; "
              f"bytes read {g['bytes_read']:,} vs {d['bytes_read']:,}.")
    gs, ds = r.get(("gridflow", "lazy_sum")), r.get(("python", "dask_sum"))
    if gs and ds:
        print(f"gridflow sum {gs['sum']:.6g} vs dask sum {ds['sum']:.6g}; "
              f"gridflow lazy sum is {ds['median'] / gs['median']:.2f}× faster than dask")
    print()
    print(f"checked: every row present; {g['n']} point values, the sums, decoded bytes agree "
          f"to a relative {TOLERANCE:g}")


if __name__ == "__main__":
    main()
