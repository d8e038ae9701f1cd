//! [`Dataset`]: data variables and coordinates sharing dimensions.

use crate::dataarray::{
    Coords, DataArray, Reduction, build_indexes, check_coord, coord_array, isel_coords,
    reduce_variable,
};
use crate::error::{DatasetError, Result, invalid};
use crate::index::{Index, SelOptions, Selector};
use crate::variable::{Attrs, IndexSel, Variable};
use gridflow_array::{ArrayOp, ChunkedArray, Executor};
use indexmap::IndexMap;

/// Data variables, coordinates and attributes over shared named dimensions: xarray's
/// `Dataset`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub(crate) data_vars: IndexMap<String, Variable>,
    pub(crate) coords: Coords,
    pub(crate) indexes: IndexMap<String, Index>,
    /// Global attributes.
    pub attrs: Attrs,
    /// How the dataset was stored (e.g. `source`, `zarr_format`).
    pub encoding: Attrs,
    /// xarray's order of all variables (data variables and coordinates interleaved), which
    /// fixes the order of the dimensions; names not listed follow, data variables first.
    pub(crate) order: Vec<String>,
}

impl Dataset {
    /// Builds a dataset, checking that every dimension has one size and loading the indexes
    /// of dimension coordinates.
    pub fn new(
        data_vars: IndexMap<String, Variable>,
        coords: Coords,
        attrs: Attrs,
    ) -> Result<Dataset> {
        let ds = Dataset {
            data_vars,
            coords,
            indexes: IndexMap::new(),
            attrs,
            encoding: Attrs::new(),
            order: Vec::new(),
        };
        ds.dims_checked()?;
        let indexes = build_indexes(&ds.coords, &IndexMap::new())?;
        Ok(Dataset { indexes, ..ds })
    }

    /// Every variable (data variables and coordinates) in xarray's order.
    pub(crate) fn ordered_variables(&self) -> Vec<(&String, &Variable)> {
        if self.order.is_empty() {
            return self.data_vars.iter().chain(self.coords.iter()).collect();
        }
        let listed: std::collections::HashSet<&str> =
            self.order.iter().map(String::as_str).collect();
        let known = self.order.iter().filter_map(|n| {
            self.data_vars
                .get_key_value(n)
                .or_else(|| self.coords.get_key_value(n))
        });
        let rest = self
            .data_vars
            .iter()
            .chain(self.coords.iter())
            .filter(|(k, _)| !listed.contains(k.as_str()));
        known.chain(rest).collect()
    }

    /// The names of all variables (data variables and coordinates) in xarray's order, the
    /// order that fixes the order of [`Dataset::dims`].
    pub fn variable_order(&self) -> Vec<String> {
        self.ordered_variables()
            .into_iter()
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(crate) fn dims_checked(&self) -> Result<IndexMap<String, usize>> {
        let mut dims: IndexMap<String, usize> = IndexMap::new();
        for (name, v) in self.ordered_variables() {
            for (d, n) in v.sizes() {
                match dims.get(&d) {
                    Some(&m) if m != n => {
                        return Err(invalid(
                            "Dataset",
                            format!("dimension {d:?} has size {m} elsewhere but {n} in {name:?}"),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        dims.insert(d, n);
                    }
                }
            }
        }
        Ok(dims)
    }

    /// Every dimension and its size, in order of first appearance.
    pub fn dims(&self) -> IndexMap<String, usize> {
        self.dims_checked().unwrap_or_default()
    }

    /// Data variables.
    pub fn data_vars(&self) -> &IndexMap<String, Variable> {
        &self.data_vars
    }

    /// Coordinates.
    pub fn coords(&self) -> &Coords {
        &self.coords
    }

    /// Indexes.
    pub fn indexes(&self) -> &IndexMap<String, Index> {
        &self.indexes
    }

    fn names(&self) -> String {
        self.data_vars
            .keys()
            .chain(self.coords.keys())
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A data variable or coordinate as a data array with its coordinates (`ds["tas"]`).
    pub fn get(&self, name: &str) -> Result<DataArray> {
        if let Some(v) = self.data_vars.get(name) {
            let coords: Coords = self
                .coords
                .iter()
                .filter(|(_, c)| c.dims().iter().all(|d| v.dims().contains(d)))
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect();
            let indexes = self
                .indexes
                .iter()
                .filter(|(k, _)| v.dims().contains(k))
                .map(|(k, i)| (k.clone(), i.clone()))
                .collect();
            return Ok(DataArray::from_parts(
                Some(name.to_owned()),
                v.clone(),
                coords,
                indexes,
            ));
        }
        if let Some(c) = self.coords.get(name) {
            return Ok(coord_array(name, c, &self.coords, &self.indexes));
        }
        if let Some(why) = self
            .encoding
            .get(crate::cf::UNREADABLE)
            .and_then(|u| u.get(name))
            .and_then(serde_json::Value::as_str)
        {
            return Err(DatasetError::Unreadable {
                name: name.to_owned(),
                detail: why.to_owned(),
            });
        }
        Err(DatasetError::UnknownName {
            op: "Dataset".into(),
            name: name.to_owned(),
            available: self.names(),
        })
    }

    /// A one-variable dataset from a data array.
    pub fn from_dataarray(da: &DataArray) -> Result<Dataset> {
        let name = da
            .name()
            .unwrap_or("__xarray_dataarray_variable__")
            .to_owned();
        let mut vars = IndexMap::new();
        vars.insert(name, da.variable().clone());
        let mut ds = Dataset::new(vars, da.coords().clone(), Attrs::new())?;
        ds.indexes = da.indexes().clone();
        Ok(ds)
    }

    /// Adds or replaces a data variable.
    pub fn insert(&mut self, name: &str, v: Variable) -> Result<()> {
        let mut next = self.clone();
        next.data_vars.insert(name.to_owned(), v);
        next.dims_checked()?;
        *self = next;
        Ok(())
    }

    fn all_dims_check(&self, op: &str, dims: &[&str]) -> Result<()> {
        let have = self.dims();
        for d in dims {
            if !have.contains_key(*d) {
                return Err(DatasetError::UnknownDim {
                    op: op.to_owned(),
                    dim: (*d).to_owned(),
                    available: format!("{:?}", have.keys().collect::<Vec<_>>()),
                });
            }
        }
        Ok(())
    }

    /// Positional selection on every variable.
    pub fn isel(&self, sel: &[(&str, IndexSel)]) -> Result<Dataset> {
        let dims: Vec<&str> = sel.iter().map(|(d, _)| *d).collect();
        self.all_dims_check("isel", &dims)?;
        let owned: Vec<(String, IndexSel)> = sel
            .iter()
            .map(|(d, s)| ((*d).to_owned(), s.clone()))
            .collect();
        let mut vars = IndexMap::new();
        for (k, v) in &self.data_vars {
            vars.insert(k.clone(), v.isel(&owned)?);
        }
        let sizes = self.dims().into_iter().collect();
        let (coords, indexes) = isel_coords(&self.coords, &self.indexes, sizes, &owned)?;
        Ok(Dataset {
            data_vars: vars,
            coords,
            indexes,
            attrs: self.attrs.clone(),
            encoding: self.encoding.clone(),
            order: self.order.clone(),
        })
    }

    /// Label-based selection on every variable.
    pub fn sel(&self, sel: &[(&str, Selector)], opts: &SelOptions) -> Result<Dataset> {
        let dims: Vec<&str> = sel.iter().map(|(d, _)| *d).collect();
        self.all_dims_check("sel", &dims)?;
        let mut positional = Vec::with_capacity(sel.len());
        for (dim, s) in sel {
            let idx = self.indexes.get(*dim).ok_or_else(|| DatasetError::Label {
                op: "sel".into(),
                dim: (*dim).to_owned(),
                detail: "there is no coordinate to look labels up in (use isel)".into(),
            })?;
            positional.push((*dim, idx.locate(dim, s, opts)?));
        }
        self.isel(&positional)
    }

    /// Reduces every numeric data variable over the given dims it has (all when `None`).
    pub fn reduce(
        &self,
        reduction: Reduction,
        dims: Option<&[&str]>,
        skipna: Option<bool>,
    ) -> Result<Dataset> {
        if let Some(d) = dims {
            self.all_dims_check(reduction.name(), d)?;
        }
        let all: Vec<String> = match dims {
            Some(d) => d.iter().map(|s| (*s).to_owned()).collect(),
            None => self.dims().keys().cloned().collect(),
        };
        let mut vars = IndexMap::new();
        for (k, v) in &self.data_vars {
            if !matches!(v.kind(), crate::ValueKind::Numeric) {
                continue;
            }
            let mine: Vec<String> = all
                .iter()
                .filter(|d| v.axis(d).is_some())
                .cloned()
                .collect();
            vars.insert(k.clone(), reduce_variable(v, reduction, &mine, skipna)?);
        }
        let coords: Coords = self
            .coords
            .iter()
            .filter(|(_, c)| !c.dims().iter().any(|d| all.contains(d)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let indexes = self
            .indexes
            .iter()
            .filter(|(k, _)| !all.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Dataset {
            data_vars: vars,
            coords,
            indexes,
            attrs: self.attrs.clone(),
            encoding: Attrs::new(),
            order: Vec::new(),
        })
    }

    /// Applies `f` to every data variable (as a data array) that has dimension `dim`,
    /// keeping the others unchanged; results are merged back into a dataset.
    pub fn map_over<F>(&self, dim: Option<&str>, f: F) -> Result<Dataset>
    where
        F: Fn(&DataArray) -> Result<DataArray>,
    {
        let mut out: Option<Dataset> = None;
        let mut untouched = IndexMap::new();
        for k in self.data_vars.keys() {
            let da = self.get(k)?;
            if dim.is_some_and(|d| !da.dims().iter().any(|x| x == d)) {
                untouched.insert(k.clone(), da);
                continue;
            }
            let r = f(&da)?;
            let piece = Dataset::from_dataarray(&r.rename(k))?;
            out = Some(match out {
                None => piece,
                Some(o) => Dataset::merge(&[o, piece])?,
            });
        }
        let mut out = out.unwrap_or_else(|| Dataset {
            data_vars: IndexMap::new(),
            coords: Coords::new(),
            indexes: IndexMap::new(),
            attrs: Attrs::new(),
            encoding: Attrs::new(),
            order: Vec::new(),
        });
        for (k, da) in untouched {
            out = Dataset::merge(&[out, Dataset::from_dataarray(&da.rename(&k))?])?;
        }
        out.attrs = self.attrs.clone();
        Ok(out)
    }

    /// Merges datasets: the union of their variables and coordinates. Variables present in
    /// several must agree in dims and shape.
    pub fn merge(datasets: &[Dataset]) -> Result<Dataset> {
        let mut vars: IndexMap<String, Variable> = IndexMap::new();
        let mut coords = Coords::new();
        let mut indexes: IndexMap<String, Index> = IndexMap::new();
        let mut attrs = Attrs::new();
        for ds in datasets {
            for (k, v) in &ds.data_vars {
                if let Some(old) = vars.get(k) {
                    if old.dims() != v.dims() || old.shape() != v.shape() {
                        return Err(invalid(
                            "merge",
                            format!(
                                "variable {k:?} has dims {:?} shape {:?} in one dataset and {:?} {:?} in another",
                                old.dims(),
                                old.shape(),
                                v.dims(),
                                v.shape()
                            ),
                        ));
                    }
                    continue;
                }
                vars.insert(k.clone(), v.clone());
            }
            for (k, v) in &ds.coords {
                if let (Some(a), Some(b)) = (indexes.get(k), ds.indexes.get(k))
                    && a != b
                {
                    return Err(invalid(
                        "merge",
                        format!(
                            "coordinate {k:?} has different labels in the datasets being merged"
                        ),
                    ));
                }
                coords.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, i) in &ds.indexes {
                indexes.entry(k.clone()).or_insert_with(|| i.clone());
            }
            for (k, a) in &ds.attrs {
                attrs.entry(k.clone()).or_insert_with(|| a.clone());
            }
        }
        let ds = Dataset {
            data_vars: vars,
            coords,
            indexes,
            attrs,
            encoding: Attrs::new(),
            order: Vec::new(),
        };
        ds.dims_checked()?;
        Ok(ds)
    }

    /// Concatenates datasets along `dim`: an existing dimension (e.g. time split across
    /// files) or a new one (with `labels` as its coordinate). Variables without `dim` are
    /// taken from the first dataset.
    pub fn concat(datasets: &[Dataset], dim: &str, labels: Option<Variable>) -> Result<Dataset> {
        let first = datasets
            .first()
            .ok_or_else(|| invalid("concat", "no datasets to concatenate"))?;
        let existing = first.dims().contains_key(dim);
        let mut out_vars = IndexMap::new();
        let mut coords = Coords::new();
        for (k, v) in &first.data_vars {
            if existing && v.axis(dim).is_none() {
                out_vars.insert(k.clone(), v.clone());
                continue;
            }
            let parts: Vec<DataArray> = datasets
                .iter()
                .map(|d| {
                    d.get(k).map_err(|_| {
                        invalid(
                            "concat",
                            format!("variable {k:?} is missing from some datasets"),
                        )
                    })
                })
                .collect::<Result<_>>()?;
            let joined = DataArray::concat(&parts, dim, labels.clone())?;
            for (ck, cv) in joined.coords() {
                coords.entry(ck.clone()).or_insert_with(|| cv.clone());
            }
            out_vars.insert(k.clone(), joined.variable().clone());
        }
        for (k, c) in &first.coords {
            if coords.contains_key(k) {
                continue;
            }
            if c.axis(dim).is_some() {
                let parts: Vec<&ChunkedArray> = datasets
                    .iter()
                    .map(|d| {
                        d.coords.get(k).map(Variable::data).ok_or_else(|| {
                            invalid(
                                "concat",
                                format!("coordinate {k:?} is missing from some datasets"),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                let ax = c.axis(dim).unwrap_or(0);
                let joined = ChunkedArray::concatenate(&parts, ax as isize)?;
                coords.insert(k.clone(), c.replace(c.dims().to_vec(), joined));
            } else {
                coords.insert(k.clone(), c.clone());
            }
        }
        if let Some(l) = labels {
            let mut l = l;
            l.dims = vec![dim.to_owned()];
            coords.insert(dim.to_owned(), l);
        }
        let mut ds = Dataset::new(out_vars, coords, first.attrs.clone())?;
        ds.encoding = first.encoding.clone();
        Ok(ds)
    }

    /// Renames variables, coordinates and dimensions.
    pub fn rename(&self, names: &[(&str, &str)]) -> Result<Dataset> {
        let map = |d: &String| -> String {
            names
                .iter()
                .find(|(a, _)| *a == d)
                .map_or_else(|| d.clone(), |(_, b)| (*b).to_owned())
        };
        let dims = self.dims();
        for (a, _) in names {
            if !self.data_vars.contains_key(*a)
                && !self.coords.contains_key(*a)
                && !dims.contains_key(*a)
            {
                return Err(DatasetError::UnknownName {
                    op: "rename".into(),
                    name: (*a).to_owned(),
                    available: self.names(),
                });
            }
        }
        let fix = |v: &Variable| {
            let mut v = v.clone();
            v.dims = v.dims.iter().map(map).collect();
            v
        };
        let data_vars = self
            .data_vars
            .iter()
            .map(|(k, v)| (map(k), fix(v)))
            .collect();
        let coords = self.coords.iter().map(|(k, v)| (map(k), fix(v))).collect();
        let indexes = self
            .indexes
            .iter()
            .map(|(k, v)| (map(k), v.clone()))
            .collect();
        let ds = Dataset {
            data_vars,
            coords,
            indexes,
            attrs: self.attrs.clone(),
            encoding: self.encoding.clone(),
            order: self.order.iter().map(map).collect(),
        };
        ds.dims_checked()?;
        Ok(ds)
    }

    /// Adds or replaces coordinates.
    pub fn assign_coords(&self, new: &[(&str, Variable)]) -> Result<Dataset> {
        let mut out = self.clone();
        let sizes: Vec<(String, usize)> = self.dims().into_iter().collect();
        for (name, v) in new {
            let known: Vec<(String, usize)> = sizes.clone();
            if v.dims().iter().all(|d| known.iter().any(|(k, _)| k == d)) {
                check_coord("assign_coords", &known, name, v)?;
            }
            out.coords.insert((*name).to_owned(), v.clone());
            out.indexes.shift_remove(*name);
        }
        out.dims_checked()?;
        out.indexes = build_indexes(&out.coords, &out.indexes)?;
        Ok(out)
    }

    /// Turns data variables into coordinates.
    pub fn set_coords(&self, names: &[&str]) -> Result<Dataset> {
        let mut out = self.clone();
        // as in xarray, the variables (and so the dimensions) keep their order
        out.order = self.variable_order();
        for n in names {
            let v = out
                .data_vars
                .shift_remove(*n)
                .ok_or_else(|| DatasetError::UnknownName {
                    op: "set_coords".into(),
                    name: (*n).to_owned(),
                    available: self.names(),
                })?;
            out.coords.insert((*n).to_owned(), v);
        }
        out.indexes = build_indexes(&out.coords, &out.indexes)?;
        Ok(out)
    }

    /// Rechunks every variable by dimension name.
    pub fn chunk(&self, chunks: &[(&str, usize)]) -> Result<Dataset> {
        let dims: Vec<&str> = chunks.iter().map(|(d, _)| *d).collect();
        self.all_dims_check("chunk", &dims)?;
        self.map_vars(|da| {
            let mine: Vec<(&str, usize)> = chunks
                .iter()
                .filter(|(d, _)| da.dims().iter().any(|x| x == d))
                .copied()
                .collect();
            da.chunk(&mine)
        })
    }

    fn map_vars<F: Fn(&DataArray) -> Result<DataArray>>(&self, f: F) -> Result<Dataset> {
        let mut out = self.clone();
        for k in self.data_vars.keys() {
            let r = f(&self.get(k)?)?;
            out.data_vars.insert(k.clone(), r.variable().clone());
        }
        Ok(out)
    }

    /// Computes every data variable on `executor`.
    pub fn compute_with(&self, executor: &dyn Executor<ArrayOp>) -> Result<Dataset> {
        self.map_vars(|da| da.compute_with(executor))
    }

    /// Computes every data variable and keeps its blocks in memory.
    pub fn persist_with(&self, executor: &dyn Executor<ArrayOp>) -> Result<Dataset> {
        self.map_vars(|da| da.persist_with(executor))
    }

    /// Total bytes of all variables (data and coordinates) when loaded.
    pub fn nbytes(&self) -> usize {
        self.data_vars
            .values()
            .chain(self.coords.values())
            .map(|v| v.data().nbytes())
            .sum()
    }
}
