"""gridflow for Python: parallel, out-of-core analysis of chunked labeled N-d data.

A thin layer over gridflow's Rust crates with the names xarray, Dask and intake-esm users
know::

    import gridflow
    ds = gridflow.open_zarr("s3://bucket/cmip6/tas.zarr", storage_options={"anon": True})
    clim = ds.tas.groupby("time.month").mean()   # lazy
    clim.compute()                                # an xarray.DataArray
"""

from __future__ import annotations

from ._gridflow import GridflowError
from .catalog import EsmDatastore, open_esm_datastore
from .core import DataArray, Dataset
from .distributed import Client, LocalCluster
from .gateway import Gateway, GatewayCluster
from ._progress import set_progress
from . import _gridflow

__all__ = [
    "Client",
    "DataArray",
    "Dataset",
    "EsmDatastore",
    "Gateway",
    "GatewayCluster",
    "GridflowError",
    "LocalCluster",
    "open_dataset",
    "open_esm_datastore",
    "open_zarr",
    "optimize",
    "set_progress",
]


def _storage_options(storage_options):
    if not storage_options:
        return None
    out = []
    for k, v in storage_options.items():
        out.append((str(k), str(v).lower() if isinstance(v, bool) else str(v)))
    return out


def open_zarr(url, chunks=None, storage_options=None, decode_cf=True):
    """Opens a Zarr store (v2 or v3; a path, ``file://``, ``http(s)://``, ``s3://``,
    ``gs://``, ``az://``) lazily, with CF decoding: only metadata and dimension
    coordinates are read.

    ``chunks``: ``{dim: size}`` (rounded up to whole store chunks), as xarray's
    ``open_zarr(chunks=...)``; ``None`` or ``{}`` keeps the store's chunks.
    ``storage_options``: gridflow's storage options by name (``anon``, ``endpoint_url``,
    ``region``, ``profile``, ...).
    """
    if chunks in (None, "auto") or chunks == {}:
        c = None
    elif isinstance(chunks, dict):
        c = [(str(k), 0 if v in (-1, None) else int(v)) for k, v in chunks.items()]
    else:
        raise TypeError("chunks must be a dict of {dimension: size} (or None)")
    return Dataset(_gridflow.open_zarr(str(url), c, _storage_options(storage_options), decode_cf))


def open_dataset(url, group=None, chunks=None, storage_options=None, decode_cf=True):
    """Opens a netCDF-3/netCDF-4 file (recognised by its first bytes; local or remote), a
    glob of them (``run_*.nc``, combined by their coordinates), a Zarr store or a kerchunk
    reference set lazily, with CF decoding. ``group``: a group of the file or store
    (``forecast/member1``), as xarray's ``group=``. Each variable's ``encoding`` names how
    it is stored as xarray's netCDF backends do (``chunksizes``, ``zlib``, ``complevel``,
    ``shuffle``, ``contiguous``, ``original_shape``, ``source``, ...). ``storage_options``:
    as :func:`open_zarr`; ``chunks`` too, for Zarr stores (netCDF variables follow the
    file's HDF5 chunks).
    """
    if chunks in (None, "auto") or chunks == {}:
        c = None
    elif isinstance(chunks, dict):
        c = [(str(k), 0 if v in (-1, None) else int(v)) for k, v in chunks.items()]
    else:
        raise TypeError("chunks must be a dict of {dimension: size} (or None)")
    return Dataset(
        _gridflow.open_dataset(
            str(url), c, _storage_options(storage_options), decode_cf, None if group is None else str(group)
        )
    )


def optimize(*objs):
    """Returns the objects as they are: gridflow culls, fuses and lowers every graph
    when it computes it (``visualize()`` draws the optimized graph)."""
    return objs[0] if len(objs) == 1 else objs
