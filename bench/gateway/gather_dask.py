"""The same gather with xarray on Dask's LocalCluster(2 workers x 1 thread):
python gather_dask.py STORE"""
import sys
import time

import numpy as np
import xarray as xr
from dask.distributed import Client, LocalCluster

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, Client(cl):
        for n in (250, 1000):
            ts = []
            for _ in range(4):
                sel = xr.open_zarr(sys.argv[1]).tas.isel(time=slice(0, n))
                t = time.perf_counter()
                v = sel.compute()
                ts.append(time.perf_counter() - t)
            print("dask", v.values.nbytes >> 20, "MiB", "nan", int(np.isnan(v.values).sum()),
                  " ".join(f"{x:.3f}" for x in ts), flush=True)
