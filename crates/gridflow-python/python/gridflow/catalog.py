"""intake-esm catalogs: ``open_esm_datastore(path).search(**terms).to_dataset_dict()``."""

from __future__ import annotations

import json
import numbers

from . import _gridflow
from .core import Dataset


def _query_value(v):
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v) if v == v else None  # NaN: a missing cell, as intake-esm
    raise TypeError(f"search: cannot search for a {type(v).__name__} ({v!r})")


class EsmDatastore:
    """An intake-esm catalog (or a search result): rows of assets, grouped into datasets."""

    def __init__(self, obj):
        self._obj = obj

    def search(self, require_all_on=None, **query):
        """Rows matching every column's value(s), as intake-esm: a list matches any of its
        values, strings with ``* ? ^ $`` are regular expressions, ``None`` finds missing
        cells; ``require_all_on`` keeps only groups that have every value asked for."""
        q = {}
        for col, v in query.items():
            q[col] = [_query_value(x) for x in v] if isinstance(v, (list, tuple, set)) else _query_value(v)
        if isinstance(require_all_on, str):
            require_all_on = [require_all_on]
        return EsmDatastore(self._obj.search(json.dumps(q), require_all_on))

    def keys(self):
        """Dataset keys (``groupby_attrs`` joined by ``.``)."""
        return self._obj.keys()

    def __len__(self):
        return len(self._obj)

    def __contains__(self, key):
        return key in self.keys()

    @property
    def df(self):
        """The rows as a pandas DataFrame (cells as text; missing cells are None)."""
        import pandas as pd

        return pd.DataFrame(self._obj.rows(), columns=self._obj.columns())

    def unique(self):
        return dict(self._obj.unique())

    def nunique(self):
        return {k: len(v) for k, v in self._obj.unique()}

    def __getitem__(self, key):
        rows = self._obj.key_rows(key)
        del rows
        sub = self.to_dataset_dict()
        return sub[key]

    def to_dataset_dict(self, storage_options=None, progressbar=None, **kwargs):
        """Every dataset, opened lazily and combined as intake-esm does; keyed as
        ``keys()``."""
        so = None
        if storage_options:
            so = [(str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in storage_options.items()]
        return {k: Dataset(d) for k, d in self._obj.to_dataset_dict(so)}

    def __repr__(self):
        return self._obj.summary()

    def _repr_html_(self):
        import html

        return f"<pre>{html.escape(repr(self))}</pre>"


def open_esm_datastore(path, columns_with_iterables=None, storage_options=None):
    """Opens an intake-esm catalog (its JSON: a path or URL)."""
    so = None
    if storage_options:
        so = [(str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in storage_options.items()]
    return EsmDatastore(_gridflow.open_esm_datastore(str(path), columns_with_iterables, so))
