"""Prints the store benchmark's results (results.jsonl from run.sh) as Markdown tables."""

import json
import os
import sys


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
    data = sys.argv[2] if len(sys.argv) > 2 else None
    r = {(x["impl"], x["workload"]): x for x in rows}

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
        if abs(g["mean"] - d["mean"]) > 1e-3 or g["n"] != d["n"]:
            sys.exit("ERROR: the point series differ between gridflow and zarr-python")
    gs, ds = r.get(("gridflow", "lazy_sum")), r.get(("python", "dask_sum"))
    if gs and ds:
        print(f"gridflow sum {gs['sum']:.6g} vs dask sum {ds['sum']:.6g}; "
              f"gridflow lazy sum is {ds['median'] / gs['median']:.2f}× faster than dask")
        # float32 sums in different orders: agree to float32 accumulation error
        if abs(gs["sum"] - ds["sum"]) > 1e-3 * abs(ds["sum"]):
            sys.exit("ERROR: the sums differ between gridflow and dask")


if __name__ == "__main__":
    main()
