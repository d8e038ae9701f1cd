"""Lazy ``DataArray`` and ``Dataset`` with xarray's names, over gridflow's Rust objects.

Every method forwards to the Rust crates (``gridflow._gridflow``); this module only maps
Python's calling conventions (keyword indexers, operators, NumPy ufuncs) onto them.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import numbers

import numpy as np

from . import _gridflow
from ._convert import decode_values, to_xarray_dataarray, to_xarray_dataset
from ._progress import progress_for

_REDUCTIONS = ("sum", "mean", "min", "max", "std", "var", "count", "median", "prod", "any", "all")
_UNARY = frozenset(_gridflow.unary_op_names())
_BINARY = frozenset(_gridflow.binary_op_names())


def _either(positional, keywords, what):
    if positional is not None and keywords:
        raise ValueError(f"{what}: give the indexers as a dict or as keywords, not both")
    return dict(positional) if positional is not None else dict(keywords)


def _label(v):
    """A label as the Rust side takes it: numbers and strings as they are, datetimes as
    ISO text (which gridflow parses in the index's calendar)."""
    if isinstance(v, (str, bool, numbers.Integral, numbers.Real)) and not isinstance(v, np.datetime64):
        if isinstance(v, np.generic):
            return v.item()
        return v
    if isinstance(v, np.datetime64):
        return str(np.datetime_as_string(v, unit="us"))
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if hasattr(v, "isoformat") and hasattr(v, "calendar"):  # cftime.datetime
        return v.isoformat()
    return v


def _selector(v):
    if isinstance(v, slice):
        return slice(_label(v.start), _label(v.stop), v.step)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_label(x) for x in np.asarray(v, dtype=object).ravel().tolist()]
    return _label(v)


def _dims_arg(dim):
    if dim is None or dim is ...:
        return None
    if isinstance(dim, str):
        return [dim]
    return list(dim)


def _attrs_repr_html(text):
    return f"<pre>{html.escape(text)}</pre>"


class _Lazy:
    """What DataArray and Dataset share: computing, drawing, notebook display."""

    def load(self, **kwargs):
        """Computes (on the default ``Client``, or the local thread pool) and returns the
        xarray object."""
        return self.compute(**kwargs)

    def persist(self, **kwargs):
        """Not kept on workers yet: computes and returns the xarray object."""
        return self.compute(**kwargs)

    def _repr_html_(self):
        return _attrs_repr_html(repr(self))

    def __repr__(self):
        return repr(self._obj).replace("<gridflow.", "<gridflow.", 1)


class DataArray(_Lazy):
    """A lazy labeled array: xarray's ``DataArray`` API over a gridflow task graph."""

    __slots__ = ("_obj",)
    # NumPy defers to these operators (``ndarray + da`` calls ``da.__radd__``).
    __array_priority__ = 1000

    def __init__(self, obj):
        if not isinstance(obj, _gridflow.DataArray):
            raise TypeError("gridflow.DataArray wraps a gridflow object; use gridflow.open_zarr(...)")
        self._obj = obj

    # --- metadata -----------------------------------------------------------------
    @property
    def name(self):
        return self._obj.name

    @property
    def dims(self):
        return tuple(self._obj.dims)

    @property
    def shape(self):
        return tuple(self._obj.shape)

    @property
    def sizes(self):
        return dict(zip(self.dims, self.shape))

    @property
    def ndim(self):
        return len(self.dims)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self):
        return self._obj.nbytes

    @property
    def dtype(self):
        kind = self._obj.kind
        if kind is None:
            return np.dtype(self._obj.dtype)
        if kind[0] == "time":
            return np.dtype("datetime64[ns]") if kind[1] in ("standard", "gregorian", "proleptic_gregorian") else np.dtype(object)
        return np.dtype(str)

    @property
    def chunks(self):
        return tuple(tuple(c) for c in self._obj.chunks)

    @property
    def chunksizes(self):
        return dict(zip(self.dims, self.chunks))

    @property
    def attrs(self):
        return json.loads(self._obj.attrs_json)

    @property
    def encoding(self):
        return json.loads(self._obj.encoding_json)

    @property
    def coords(self):
        return {n: DataArray(self._obj.coord(n)) for n in self._obj.coord_names()}

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def rename(self, name):
        return DataArray(self._obj.rename(name))

    # --- selection ----------------------------------------------------------------
    def sel(self, indexers=None, method=None, tolerance=None, drop=False, **indexers_kwargs):
        ind = _either(indexers, indexers_kwargs, "sel")
        return DataArray(self._obj.sel({k: _selector(v) for k, v in ind.items()}, method, tolerance))

    def isel(self, indexers=None, drop=False, **indexers_kwargs):
        ind = _either(indexers, indexers_kwargs, "isel")
        conv = {k: (list(np.asarray(v).tolist()) if isinstance(v, np.ndarray) else v) for k, v in ind.items()}
        return DataArray(self._obj.isel(conv))

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.coords[key]
        if isinstance(key, dict):
            return self.isel(key)
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            raise IndexError("gridflow: ... is not supported in [] indexing; use isel")
        if len(key) > self.ndim:
            raise IndexError(f"too many indices: {len(key)} for {self.ndim} dimensions")
        return self.isel(dict(zip(self.dims, key)))

    def squeeze(self, dim=None):
        return DataArray(self._obj.squeeze(dim))

    def transpose(self, *dims):
        return DataArray(self._obj.transpose(list(dims) if dims else list(reversed(self.dims))))

    @property
    def T(self):
        return self.transpose()

    def chunk(self, chunks=None, **chunks_kwargs):
        c = _either(chunks, chunks_kwargs, "chunk")
        return DataArray(self._obj.chunk([(k, 0 if v in (-1, None) else int(v)) for k, v in c.items()]))

    def astype(self, dtype):
        return DataArray(self._obj.astype(np.dtype(dtype).name))

    # --- reductions ---------------------------------------------------------------
    def reduce_by_name(self, name, dim=None, skipna=None, ddof=0):
        return DataArray(self._obj.reduce(name, _dims_arg(dim), skipna, ddof))

    def groupby(self, group, squeeze=None):
        if not isinstance(group, str):
            group = getattr(group, "name", None) or str(group)
        return GroupBy(self._obj.groupby(group))

    def resample(self, indexer=None, **indexer_kwargs):
        ind = _either(indexer, indexer_kwargs, "resample")
        if len(ind) != 1:
            raise ValueError("resample: give one dimension and frequency, e.g. time='1D'")
        ((dim, freq),) = ind.items()
        return GroupBy(self._obj.resample(dim, freq))

    def weighted(self, weights):
        return Weighted(self._obj.weighted(_as_dataarray(weights, self)._obj))

    def rolling(self, dim=None, min_periods=None, center=False, **window_kwargs):
        if center:
            raise NotImplementedError("gridflow: rolling(center=True) is not supported yet")
        win = _either(dim, window_kwargs, "rolling")
        if len(win) != 1:
            raise ValueError("rolling: give one dimension and window, e.g. time=3")
        ((d, n),) = win.items()
        return Rolling(self._obj.rolling(d, int(n), min_periods))

    def where(self, cond, other=None, drop=False):
        if drop:
            raise NotImplementedError("gridflow: where(drop=True) is not supported")
        return DataArray(self._obj.where_(_as_dataarray(cond, self)._obj, None if other is None else other))

    def isnull(self):
        return DataArray(self._obj.unary("isnull"))

    def notnull(self):
        return DataArray(self._obj.unary("notnull"))

    # --- arithmetic ---------------------------------------------------------------
    def _binary(self, op, other, reflected=False):
        if isinstance(other, DataArray):
            a, b = (other, self) if reflected else (self, other)
            return DataArray(a._obj.binary(op, b._obj))
        if isinstance(other, (numbers.Number, np.generic)) and not isinstance(other, complex):
            return DataArray(self._obj.binary_scalar(op, other, reflected))
        if isinstance(other, np.ndarray):
            if other.ndim == 0:
                return DataArray(self._obj.binary_scalar(op, other.item(), reflected))
            o = _from_numpy(other, self)
            a, b = (o, self) if reflected else (self, o)
            out = a._obj.binary(op, b._obj)
            if reflected:
                # ``array op da`` is da's reflected operator in xarray: da's dimension order
                out = out.transpose(list(self.dims))
            # an array has no name: the result keeps this one's, as in xarray
            return DataArray(out.rename(self.name) if self.name is not None else out)
        return NotImplemented

    def __add__(self, o): return self._binary("add", o)
    def __radd__(self, o): return self._binary("add", o, True)
    def __sub__(self, o): return self._binary("subtract", o)
    def __rsub__(self, o): return self._binary("subtract", o, True)
    def __mul__(self, o): return self._binary("multiply", o)
    def __rmul__(self, o): return self._binary("multiply", o, True)
    def __truediv__(self, o): return self._binary("divide", o)
    def __rtruediv__(self, o): return self._binary("divide", o, True)
    def __floordiv__(self, o): return self._binary("floor_divide", o)
    def __rfloordiv__(self, o): return self._binary("floor_divide", o, True)
    def __mod__(self, o): return self._binary("remainder", o)
    def __rmod__(self, o): return self._binary("remainder", o, True)
    def __pow__(self, o): return self._binary("power", o)
    def __rpow__(self, o): return self._binary("power", o, True)
    def __lt__(self, o): return self._binary("less", o)
    def __le__(self, o): return self._binary("less_equal", o)
    def __gt__(self, o): return self._binary("greater", o)
    def __ge__(self, o): return self._binary("greater_equal", o)
    def __eq__(self, o): return self._binary("equal", o)  # noqa: D105  (elementwise, as xarray)
    def __ne__(self, o): return self._binary("not_equal", o)
    def __and__(self, o): return self._binary("bitwise_and", o)
    def __rand__(self, o): return self._binary("bitwise_and", o, True)
    def __or__(self, o): return self._binary("bitwise_or", o)
    def __ror__(self, o): return self._binary("bitwise_or", o, True)
    def __xor__(self, o): return self._binary("bitwise_xor", o)
    def __rxor__(self, o): return self._binary("bitwise_xor", o, True)
    def __neg__(self): return DataArray(self._obj.unary("negative"))
    def __pos__(self): return self
    def __abs__(self): return DataArray(self._obj.unary("absolute"))
    def __invert__(self): return DataArray(self._obj.unary("logical_not"))

    __hash__ = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs stay lazy: ``np.cos(da)``, ``np.maximum(da, 0)``."""
        if method != "__call__" or kwargs:
            return NotImplemented
        name = ufunc.__name__
        if len(inputs) == 1 and name in _UNARY:
            return DataArray(inputs[0]._obj.unary(name))
        if len(inputs) == 2 and name in _BINARY:
            a, b = inputs
            if isinstance(a, DataArray):
                return a._binary(name, b)
            return b._binary(name, a, reflected=True)
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        """``np.where(cond, x, y)`` stays lazy (as ``xr.where``); other NumPy functions
        are not dispatched (compute first: ``np.median(da.values)``)."""
        if func is np.where and len(args) == 3 and not kwargs:
            return where(*args)
        return NotImplemented

    def __array__(self, dtype=None, copy=None):
        v = self.values
        return v if dtype is None else v.astype(dtype, copy=False)

    # --- computing ----------------------------------------------------------------
    def compute(self, progress=None, **kwargs):
        """The values, computed (GIL released), as an ``xarray.DataArray`` with the same
        dims, coords, attrs and encoding; numbers are NumPy arrays over gridflow's buffers.
        ``progress``: ``True``/``False``/a callable ``f(done, total)``; by default a bar is
        shown in Jupyter (``gridflow.set_progress``)."""
        with progress_for(progress) as cb:
            return to_xarray_dataarray(self._obj.compute_raw(cb))

    @property
    def values(self):
        """The computed values as a NumPy array (numbers: the Rust buffer, no copy)."""
        with progress_for() as cb:
            return decode_values(self._obj.compute_values(cb), self._obj.kind)

    def to_numpy(self):
        return self.values

    @property
    def data(self):
        return self

    def visualize(self, filename=None, **kwargs):
        """Draws the optimized task graph as SVG: written to ``filename`` if given;
        returned as an IPython ``SVG`` (shown inline in Jupyter) or the SVG text."""
        return _show_svg(self._obj.to_svg(), filename)

    def __dask_graph_len__(self):
        return self._obj.graph_len()


for _name in _REDUCTIONS:
    def _make(name):
        def method(self, dim=None, *, skipna=None, ddof=0, keep_attrs=None, **kwargs):
            if kwargs:
                raise TypeError(f"{name}: unexpected arguments {sorted(kwargs)}")
            return self.reduce_by_name(name, dim, skipna, ddof)
        method.__name__ = name
        method.__doc__ = f"Lazy ``{name}`` over ``dim`` (a name, a list of names, or all when None)."
        return method
    setattr(DataArray, _name, _make(_name))


def where(cond, x, y):
    """``xr.where(cond, x, y)`` for a gridflow condition with one of ``x``/``y`` a
    DataArray and the other a number (or both DataArrays broadcast by name)."""
    cond = cond if isinstance(cond, DataArray) else None
    if cond is None:
        raise TypeError("gridflow.where: the condition must be a gridflow.DataArray")
    if isinstance(x, DataArray) and not isinstance(y, DataArray):
        out = x.where(cond, y)
    elif isinstance(y, DataArray) and not isinstance(x, DataArray):
        out = y.where(~cond, x)
    elif isinstance(x, DataArray) and isinstance(y, DataArray):
        raise NotImplementedError("gridflow.where: x and y both arrays is not supported yet; one must be a number")
    else:
        raise TypeError("gridflow.where: x or y must be a gridflow.DataArray")
    # xarray's where takes its attributes from x
    return DataArray(out._obj.with_attrs_json(json.dumps(x.attrs if isinstance(x, DataArray) else {})))


def _show_svg(svg, filename):
    if filename is not None:
        with open(filename, "w", encoding="utf-8") as f:
            f.write(svg)
    try:
        from IPython.display import SVG

        return SVG(svg)
    except ImportError:
        return svg


def _from_numpy(arr, like):
    if arr.ndim > like.ndim:
        raise ValueError(f"an array of {arr.ndim} dimensions cannot combine with {like.dims}")
    return DataArray(_gridflow.from_numpy(np.ascontiguousarray(arr), list(like.dims[like.ndim - arr.ndim:])))


def _as_dataarray(x, like):
    if isinstance(x, DataArray):
        return x
    if isinstance(x, np.ndarray):
        return _from_numpy(x, like)
    raise TypeError(f"expected a gridflow.DataArray, got {type(x).__name__}")


class GroupBy:
    """``groupby(...)`` / ``resample(...)``: reduce each group, or arithmetic by group."""

    def __init__(self, obj):
        self._obj = obj

    def __len__(self):
        return len(self._obj)

    def reduce_by_name(self, name, skipna=None, ddof=0):
        return DataArray(self._obj.reduce(name, skipna, ddof))

    def __sub__(self, other): return DataArray(self._obj.binary("subtract", other._obj))
    def __add__(self, other): return DataArray(self._obj.binary("add", other._obj))
    def __mul__(self, other): return DataArray(self._obj.binary("multiply", other._obj))
    def __truediv__(self, other): return DataArray(self._obj.binary("divide", other._obj))


for _name in _REDUCTIONS:
    def _make_g(name):
        def method(self, dim=None, *, skipna=None, ddof=0, keep_attrs=None):
            return self.reduce_by_name(name, skipna, ddof)
        method.__name__ = name
        return method
    setattr(GroupBy, _name, _make_g(_name))


class Weighted:
    """``weighted(w)``: weighted ``mean`` / ``sum`` over dimensions."""

    def __init__(self, obj):
        self._obj = obj

    def mean(self, dim=None, skipna=None, keep_attrs=None):
        return DataArray(self._obj.mean(_dims_arg(dim)))

    def sum(self, dim=None, skipna=None, keep_attrs=None):
        return DataArray(self._obj.sum(_dims_arg(dim)))

    def sum_of_weights(self, dim=None, keep_attrs=None):
        return DataArray(self._obj.sum_of_weights(_dims_arg(dim)))


class Rolling:
    """``rolling(dim=n)``: moving-window ``mean`` / ``sum`` / ``min`` / ``max``."""

    def __init__(self, obj):
        self._obj = obj

    def mean(self, keep_attrs=None):
        return DataArray(self._obj.reduce("mean"))

    def sum(self, keep_attrs=None):
        return DataArray(self._obj.reduce("sum"))

    def min(self, keep_attrs=None):
        return DataArray(self._obj.reduce("min"))

    def max(self, keep_attrs=None):
        return DataArray(self._obj.reduce("max"))


class Dataset(_Lazy):
    """A lazy dataset: xarray's ``Dataset`` API over gridflow's lazily opened stores."""

    __slots__ = ("_obj",)

    def __init__(self, obj):
        if not isinstance(obj, _gridflow.Dataset):
            raise TypeError("gridflow.Dataset wraps a gridflow object; use gridflow.open_zarr(...)")
        self._obj = obj

    @property
    def sizes(self):
        return dict(self._obj.sizes)

    @property
    def dims(self):
        return self.sizes

    @property
    def data_vars(self):
        return {n: DataArray(self._obj.get(n)) for n in self._obj.data_var_names()}

    @property
    def coords(self):
        return {n: DataArray(self._obj.get(n)) for n in self._obj.coord_names()}

    @property
    def variables(self):
        return {**self.coords, **self.data_vars}

    @property
    def attrs(self):
        return json.loads(self._obj.attrs_json)

    @property
    def encoding(self):
        return json.loads(self._obj.encoding_json)

    @property
    def chunks(self):
        out = {}
        for v in self.data_vars.values():
            for d, c in zip(v.dims, v.chunks):
                out.setdefault(d, c)
        return out

    @property
    def nbytes(self):
        return sum(v.nbytes for v in self.variables.values())

    def keys(self):
        return list(self._obj.coord_names()) + list(self._obj.data_var_names())

    def __iter__(self):
        return iter(self._obj.data_var_names())

    def __contains__(self, name):
        return name in self.keys()

    def __len__(self):
        return len(self._obj.data_var_names())

    def __getitem__(self, key):
        if isinstance(key, str):
            return DataArray(self._obj.get(key))
        if isinstance(key, (list, tuple)):
            return Dataset(self._obj.subset(list(key)))
        raise KeyError(key)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self.keys():
            return DataArray(self._obj.get(name))
        raise AttributeError(f"'Dataset' object has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.keys()))

    def sel(self, indexers=None, method=None, tolerance=None, drop=False, **indexers_kwargs):
        ind = _either(indexers, indexers_kwargs, "sel")
        return Dataset(self._obj.sel({k: _selector(v) for k, v in ind.items()}, method, tolerance))

    def isel(self, indexers=None, drop=False, **indexers_kwargs):
        return Dataset(self._obj.isel(_either(indexers, indexers_kwargs, "isel")))

    def chunk(self, chunks=None, **chunks_kwargs):
        c = _either(chunks, chunks_kwargs, "chunk")
        return Dataset(self._obj.chunk([(k, 0 if v in (-1, None) else int(v)) for k, v in c.items()]))

    def reduce_by_name(self, name, dim=None, skipna=None, ddof=0):
        return Dataset(self._obj.reduce(name, _dims_arg(dim), skipna, ddof))

    def compute(self, progress=None, **kwargs):
        """Every variable computed (GIL released) as an ``xarray.Dataset`` with attrs and
        encodings (``progress`` as ``DataArray.compute``)."""
        with progress_for(progress) as cb:
            return to_xarray_dataset(self._obj.compute_raw(cb))

    def visualize(self, filename=None, **kwargs):
        """The task graph of the first data variable, as ``DataArray.visualize``."""
        names = self._obj.data_var_names()
        if not names:
            raise ValueError("the dataset has no data variables to draw")
        return DataArray(self._obj.get(names[0])).visualize(filename)


for _name in _REDUCTIONS:
    def _make_d(name):
        def method(self, dim=None, *, skipna=None, ddof=0, keep_attrs=None):
            return self.reduce_by_name(name, dim, skipna, ddof)
        method.__name__ = name
        return method
    setattr(Dataset, _name, _make_d(_name))
