//! `Dataset::to_netcdf`: a dataset as a netCDF-4 file, encoded as `to_zarr` encodes it
//! (stored dtype, `_FillValue`, `scale_factor`/`add_offset` packing, CF time units and
//! calendar), compressed with deflate + shuffle and chunked along the dataset's blocks, or
//! as each variable's encoding says (xarray's `chunksizes`, `contiguous`, `zlib`,
//! `complevel`, `shuffle`, `fletcher32`: what a variable read from netCDF carries).

use crate::cf::encode_variable;
use crate::dataset::Dataset;
use crate::error::{Result, invalid};
use crate::variable::{ValueKind, Variable};
use gridflow_array::{ArrayOp, Executor};
use gridflow_store::netcdf_write::{NcFileWrite, NcValues, NcVarWrite, write_netcdf};
use gridflow_store::{StoreUrl, check_not_input};
use serde_json::{Value, json};
use std::path::Path;

/// How [`Dataset::to_netcdf`] writes.
#[derive(Clone, Debug)]
pub struct ToNetcdfOptions {
    /// Replace an existing file (never anything else).
    pub overwrite: bool,
    /// Deflate level 1-9 (with shuffle) of every variable without its own `complevel` /
    /// `zlib` encoding; `None` or 0: uncompressed.
    pub compression_level: Option<u8>,
    /// Dimensions written as unlimited (xarray's `unlimited_dims`); the dataset's
    /// `unlimited_dims` encoding (set when it was read from netCDF) otherwise.
    pub unlimited_dims: Option<Vec<String>>,
}

impl Default for ToNetcdfOptions {
    fn default() -> Self {
        ToNetcdfOptions {
            overwrite: false,
            compression_level: Some(4),
            unlimited_dims: None,
        }
    }
}

/// The deflate level a variable's encoding asks for (xarray's `zlib` + `complevel`).
fn level_of(v: &Variable, default: Option<u8>) -> Option<u8> {
    let enc = &v.encoding;
    match (
        enc.get("zlib").and_then(Value::as_bool),
        enc.get("complevel"),
    ) {
        (Some(false), _) => None,
        (_, Some(l)) => l.as_u64().map(|l| l.min(9) as u8),
        (Some(true), None) => Some(default.unwrap_or(4)),
        (None, None) => default,
    }
}

/// The chunk shape: the `chunksizes` encoding when it fits, else the first block of each
/// dimension.
fn chunks_of(v: &Variable) -> Option<Vec<usize>> {
    if v.shape().is_empty() || v.shape().contains(&0) {
        return None;
    }
    let from_enc: Option<Vec<usize>> = v
        .encoding
        .get("chunksizes")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect());
    if let Some(c) = from_enc.filter(|c| c.len() == v.shape().len() && !c.contains(&0)) {
        return Some(c.iter().zip(v.shape()).map(|(&c, &n)| c.min(n)).collect());
    }
    Some(
        v.data()
            .chunks()
            .iter()
            .zip(v.shape())
            .map(|(c, &n)| c.first().copied().unwrap_or(n).clamp(1, n.max(1)))
            .collect(),
    )
}

/// Whether the encoding flag `key` is set (`None`: not given).
fn flag(v: &Variable, key: &str) -> Option<bool> {
    v.encoding.get(key).and_then(Value::as_bool)
}

impl Dataset {
    /// Checks, touching nothing, what [`Dataset::to_netcdf`] checks before it computes: a
    /// local path, not an existing file unless `options.overwrite` (and never anything but a
    /// file), and none of the files or stores the dataset reads from (nor a directory
    /// holding one; symlinks resolved).
    pub fn check_to_netcdf(&self, path: &str, options: &ToNetcdfOptions) -> Result<()> {
        let local = path.strip_prefix("file://").unwrap_or(path);
        if local.contains("://") {
            return Err(invalid(
                "to_netcdf",
                format!("{path}: netCDF files are written to local disk only"),
            ));
        }
        let resolved =
            gridflow_store::staging::check_output_file(Path::new(local), options.overwrite)?;
        let roots: Vec<(StoreUrl, String)> = self
            .input_stores()
            .into_iter()
            .map(|(u, _)| (u, String::new()))
            .collect();
        check_not_input(&StoreUrl::Local(resolved), "", &roots)?;
        Ok(())
    }

    /// Writes the dataset to a local netCDF-4 file, computing every variable (on the default
    /// local executor). See [`Dataset::to_netcdf_with`].
    pub fn to_netcdf(&self, path: &str, options: &ToNetcdfOptions) -> Result<()> {
        self.to_netcdf_with(path, options, &gridflow_array::LocalExecutor::default())
    }

    /// Writes the dataset to a local netCDF-4 file that xarray (netcdf4 and h5netcdf
    /// engines) opens with the same values: variables encoded from their encoding as
    /// [`Dataset::to_zarr`] does, non-index coordinates named in `coordinates` attributes,
    /// strings as netCDF-4 strings.
    ///
    /// Refused before anything is computed: a file the dataset reads from (or a directory
    /// holding one), an existing file without `options.overwrite`, anything but a file.
    /// The file is written whole to a temporary sibling and renamed into place, so a
    /// failure leaves the old file (or none). The whole file is built in memory first.
    pub fn to_netcdf_with(
        &self,
        path: &str,
        options: &ToNetcdfOptions,
        executor: &dyn Executor<ArrayOp>,
    ) -> Result<()> {
        self.check_to_netcdf(path, options)?;
        let target = Path::new(path.strip_prefix("file://").unwrap_or(path));

        let unlimited: Vec<String> = match &options.unlimited_dims {
            Some(d) => d.clone(),
            None => self
                .encoding
                .get("unlimited_dims")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut file = NcFileWrite {
            attrs: self.attrs.clone(),
            ..NcFileWrite::default()
        };
        // non-index coordinates: named by the data variables they belong to (as xarray
        // writes them), the rest in a global attribute
        let aux: Vec<&String> = self
            .coords
            .keys()
            .filter(|k| !self.coords[*k].dims().iter().any(|d| d == *k))
            .collect();
        let mut claimed: Vec<&String> = Vec::new();
        for (name, v) in self.coords.iter().chain(self.data_vars.iter()) {
            for (d, &n) in v.dims().iter().zip(v.shape()) {
                match file.dims.iter().find(|(k, _, _)| k == d) {
                    Some((_, len, _)) if *len != n => {
                        return Err(invalid(
                            "to_netcdf",
                            format!("{name:?}: dimension {d:?} is {n} long here, {len} elsewhere"),
                        ));
                    }
                    Some(_) => {}
                    None => file.dims.push((d.clone(), n, unlimited.contains(d))),
                }
            }
            let (values, mut attrs) = match v.kind() {
                ValueKind::Strings(table) => {
                    let codes = v.data().compute_with(executor)?.to_f64_vec();
                    let strings = codes
                        .iter()
                        .map(|&c| {
                            table.get(c as usize).cloned().ok_or_else(|| {
                                invalid(
                                    "to_netcdf",
                                    format!("{name:?}: string code {c} out of range"),
                                )
                            })
                        })
                        .collect::<Result<Vec<String>>>()?;
                    (NcValues::Strings(strings), v.attrs.clone())
                }
                _ => {
                    let (data, attrs) = encode_variable(name, v)?;
                    (NcValues::Numbers(data.compute_with(executor)?), attrs)
                }
            };
            if self.data_vars.contains_key(name) {
                let mine: Vec<&str> = aux
                    .iter()
                    .filter(|c| self.coords[**c].dims().iter().all(|d| v.dims().contains(d)))
                    .map(|c| c.as_str())
                    .collect();
                if !mine.is_empty() {
                    attrs.insert("coordinates".into(), json!(mine.join(" ")));
                    claimed.extend(aux.iter().filter(|c| mine.contains(&c.as_str())));
                }
            }
            let level = level_of(v, options.compression_level).filter(|&l| l > 0);
            let fletcher32 = flag(v, "fletcher32").unwrap_or(false);
            // `contiguous` is honoured where HDF5 allows it: no filters, no unlimited
            // dimension (netCDF-C refuses both too)
            let contiguous = flag(v, "contiguous").unwrap_or(false)
                && level.is_none()
                && !fletcher32
                && !v.dims().iter().any(|d| unlimited.contains(d));
            let chunks = if matches!(values, NcValues::Strings(_)) || contiguous {
                None
            } else {
                chunks_of(v)
            };
            let deflate = chunks.as_ref().and(level);
            file.vars.push(NcVarWrite {
                name: name.clone(),
                dims: v.dims().to_vec(),
                shape: v.shape().to_vec(),
                values,
                attrs,
                chunks,
                deflate,
                // shuffle with deflate unless the encoding says otherwise (xarray's default)
                shuffle: flag(v, "shuffle").unwrap_or(true),
                fletcher32,
            });
        }
        let unclaimed: Vec<&str> = aux
            .iter()
            .filter(|c| !claimed.contains(c))
            .map(|c| c.as_str())
            .collect();
        if !unclaimed.is_empty() {
            file.attrs
                .insert("coordinates".into(), json!(unclaimed.join(" ")));
        }
        write_netcdf(target, &file, options.overwrite)?;
        Ok(())
    }
}
