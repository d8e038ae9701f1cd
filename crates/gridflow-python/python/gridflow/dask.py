"""A bridge to Dask clusters users already run: ``to_dask(obj)`` turns a gridflow graph
into a Dask graph whose tasks call gridflow's Rust operations (each task is the serialized
expression a gridflow worker would run; values between tasks pickle as gridflow's wire
encoding; the GIL is released while a task runs). Dask's scheduler, spilling and dashboard
then run gridflow's work: ``to_dask(ds.tas.mean("time")).compute()`` on a
``dask.distributed.Client`` of dask-jobqueue, dask-kubernetes or Dask Gateway."""

from __future__ import annotations

import itertools
import json
import uuid

import numpy as np

from . import _gridflow
from .core import DataArray, Dataset


def _block(value):
    return value.to_numpy()


def to_dask_array(obj):
    """A ``dask.array.Array`` computing a numeric gridflow ``DataArray``."""
    import dask.array as da

    if not isinstance(obj, DataArray):
        raise TypeError(f"to_dask_array: expected a gridflow.DataArray, got {type(obj).__name__}")
    if obj._obj.kind is not None:
        raise TypeError("to_dask: only numeric arrays cross to Dask (this one holds datetimes or strings)")
    tasks, outputs, numblocks = obj._obj.dask_tasks()
    token = uuid.uuid4().hex[:12]
    # gridflow's keys are unique within its graph; the token keeps two conversions apart
    rename = {key: f"gridflow-{token}-{key}" for key, _payload, _inputs in tasks}
    dsk = {}
    for key, payload, inputs in tasks:
        dsk[rename[key]] = (_gridflow.run_task, payload, key, [rename[i] for i in inputs])
    name = f"gridflow-{token}"
    grid = list(itertools.product(*[range(n) for n in numblocks])) if numblocks else [()]
    for idx, out in zip(grid, outputs):
        dsk[(name, *idx)] = (_block, rename[out])
    return da.Array(dsk, name, chunks=obj.chunks, dtype=np.dtype(obj._obj.dtype))


def to_dask(obj):
    """An ``xarray.DataArray`` (or ``Dataset``) backed by Dask arrays that run gridflow's
    tasks, with gridflow's coordinates (computed), name and attributes."""
    import xarray as xr

    if isinstance(obj, Dataset):
        return xr.Dataset({k: to_dask(v) for k, v in obj.data_vars.items()}, attrs=obj.attrs)
    if not isinstance(obj, DataArray):
        raise TypeError(f"to_dask: expected a gridflow.DataArray or Dataset, got {type(obj).__name__}")
    coords = {k: c.compute().variable for k, c in obj.coords.items()}
    return xr.DataArray(
        to_dask_array(obj), dims=obj.dims, coords=coords, name=obj.name, attrs=json.loads(obj._obj.attrs_json)
    )
