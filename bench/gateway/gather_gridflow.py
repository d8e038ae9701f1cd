"""Gathers tas[:N] of STORE into this process with gridflow's Client, once per address
(a scheduler's tcp:// address, a cluster's gateway:// address; GRIDFLOW_AUTH_TOKEN set):
python gather_gridflow.py STORE ADDRESS..."""
import sys
import time

import numpy as np

import gridflow

store = sys.argv[1]
for addr in sys.argv[2:]:
    c = gridflow.Client(addr)
    for n in (250, 1000):
        sel = gridflow.open_zarr(store).tas.isel(time=slice(0, n))
        ts = []
        for _ in range(4):
            t = time.perf_counter()
            v = c.compute(sel)
            ts.append(time.perf_counter() - t)
        print(addr.split(":")[0], v.values.nbytes >> 20, "MiB", "nan", int(np.isnan(v.values).sum()),
              " ".join(f"{x:.3f}" for x in ts), flush=True)
    c.close()
