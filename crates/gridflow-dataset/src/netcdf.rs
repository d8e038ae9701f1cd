//! netCDF files as lazy datasets, one file ([`open_netcdf`]) or many combined by their
//! coordinates ([`open_mfdataset`], a list or a glob), with the same CF decoding as Zarr
//! stores; [`open_dataset`] picks the reader from what the path is.

use crate::cf::{OpenOptions, UNREADABLE, decode_cf, open_zarr};
use crate::combine::{CombineOptions, combine_by_coords, concat};
use crate::dataset::Dataset;
use crate::error::{Result, invalid};
use crate::variable::Variable;
use gridflow_store::kerchunk::{FileKind, sniff};
use gridflow_store::netcdf::NetcdfFile;
use indexmap::IndexMap;
use serde_json::{Value, json};

/// Opens a netCDF-3 or netCDF-4 file lazily (a local path, or an `http(s)://`, `s3://`,
/// `gs://` or `az://` URL read by byte ranges with `options.store`): metadata and dimension coordinates are
/// read now, data variables block by block when computed (blocks follow the file's HDF5
/// chunks). Variables of types gridflow does not read (char, string, compound) are listed
/// as unreadable in the dataset's encoding; char arrays and netCDF-4 strings become string
/// variables. `options.group` picks a group (`forecast/member1`; xarray's `group=`);
/// `options.chunks` is not used.
pub fn open_netcdf(url: &str, options: &OpenOptions) -> Result<Dataset> {
    gridflow_store::register();
    let file = NetcdfFile::open_group(url, &options.store, &options.group)?;
    let mut raw: IndexMap<String, Variable> = IndexMap::new();
    let mut unreadable: Vec<(String, String)> = Vec::new();
    for v in file.variables() {
        if v.text {
            // char arrays and netCDF-4 strings: read now (text is small metadata, names and
            // labels), as xarray decodes them to strings
            let values = file.read_strings(&v.name)?;
            let mut var = Variable::from_string_array(&v.dims, &v.shape, values)?;
            var.attrs = v.attrs.clone().into_iter().collect();
            if let Some(enc) = var.attrs.shift_remove("_Encoding") {
                var.encoding.insert("_Encoding".into(), enc);
            }
            // a char array is stored as single characters (xarray's `S1`), a netCDF-4
            // string variable as variable-length text
            let stored = if v.encoding.contains_key("char_dim_name") {
                "S1"
            } else {
                "str"
            };
            var.encoding.insert("dtype".into(), json!(stored));
            storage_encoding(&mut var, v, file.url());
            raw.insert(v.name.clone(), var);
            continue;
        }
        if v.dtype.is_none() {
            unreadable.push((
                v.name.clone(),
                format!("type {} is not read by gridflow", v.nc_type),
            ));
            continue;
        }
        let data = file.to_chunked(&v.name)?;
        let mut var = Variable::new(v.dims.clone(), data)?;
        var.attrs = v.attrs.clone().into_iter().collect();
        if let Some(d) = v.dtype {
            var.encoding.insert("dtype".into(), json!(d.name()));
        }
        storage_encoding(&mut var, v, file.url());
        raw.insert(v.name.clone(), var);
    }
    let mut ds = decode_cf(
        raw,
        file.attrs().clone().into_iter().collect(),
        &options.decode,
    )?;
    if !unreadable.is_empty() {
        ds.encoding.insert(
            UNREADABLE.into(),
            Value::Object(unreadable.into_iter().map(|(k, e)| (k, json!(e))).collect()),
        );
    }
    ds.encoding.insert("source".into(), json!(file.url()));
    if !file.unlimited_dims().is_empty() {
        // as xarray's encoding["unlimited_dims"]; to_netcdf writes them unlimited again
        ds.encoding
            .insert("unlimited_dims".into(), json!(file.unlimited_dims()));
    }
    Ok(ds)
}

/// Puts how `v` is stored (chunks, filters, layout, shape on disk; see
/// [`gridflow_store::netcdf::NcVar::encoding`]) and the file it came from (`source`) into
/// `var`'s encoding, as xarray's netCDF backends do.
fn storage_encoding(var: &mut Variable, v: &gridflow_store::netcdf::NcVar, url: &str) {
    for (k, x) in &v.encoding {
        var.encoding.insert(k.clone(), x.clone());
    }
    if !v.encoding.is_empty() {
        var.encoding.insert("source".into(), json!(url));
    }
}

/// How [`open_mfdataset`] combines its files (xarray's `combine=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Combine {
    /// Ordered and concatenated by their coordinates (xarray's default).
    #[default]
    ByCoords,
    /// Concatenated in the order given along this dimension.
    Nested(String),
}

/// Opens several netCDF files (or Zarr stores, or reference sets) as one dataset, as
/// xarray's `open_mfdataset`: each is opened with [`open_dataset`] and they are combined
/// by their coordinates (`Combine::ByCoords`: pieces of one run split along time come
/// together in time order) or concatenated along a dimension in the given order.
pub fn open_mfdataset(
    paths: &[String],
    combine: &Combine,
    options: &OpenOptions,
) -> Result<Dataset> {
    if paths.is_empty() {
        return Err(invalid("open_mfdataset", "no files to open"));
    }
    let parts = paths
        .iter()
        .map(|p| open_dataset(p, options))
        .collect::<Result<Vec<Dataset>>>()?;
    match combine {
        Combine::ByCoords => combine_by_coords(&parts, &CombineOptions::default()),
        Combine::Nested(dim) => concat(&parts, dim, &CombineOptions::default()),
    }
}

/// The files a glob names (`*` and `?` in the last path component only), sorted; a path
/// without wildcards is returned as it is.
pub fn expand_glob(pattern: &str) -> Result<Vec<String>> {
    if !pattern.contains(['*', '?']) {
        return Ok(vec![pattern.to_owned()]);
    }
    let (dir, name) = match pattern.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => (".", pattern),
    };
    if dir.contains(['*', '?']) || dir.contains("://") {
        return Err(invalid(
            pattern,
            "wildcards are matched in the file name of a local path only",
        ));
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| invalid(pattern, format!("reading {dir}: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| invalid(pattern, format!("reading {dir}: {e}")))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if wildcard(name.as_bytes(), n.as_bytes()) {
            out.push(if pattern.contains('/') {
                format!("{}/{n}", dir.trim_end_matches('/'))
            } else {
                n
            });
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(invalid(pattern, "no file matches"));
    }
    Ok(out)
}

/// Shell-style `*` / `?` matching.
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Opens whatever `url` is: a glob of files ([`open_mfdataset`] by coordinates), a netCDF
/// file (recognised by its first bytes, locally or remotely; [`open_netcdf`]), else a Zarr
/// store or a kerchunk reference set ([`open_zarr`]).
pub fn open_dataset(url: &str, options: &OpenOptions) -> Result<Dataset> {
    if !url.contains("://") && url.contains(['*', '?']) {
        let paths = expand_glob(url)?;
        return open_mfdataset(&paths, &Combine::ByCoords, options);
    }
    let local = url.strip_prefix("file://").unwrap_or(url);
    if !local.contains("://") && std::path::Path::new(local).is_file() {
        let mut head = [0u8; 8];
        let n = std::fs::File::open(local)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        if matches!(sniff(&head[..n]), FileKind::Hdf5 | FileKind::NetCdf3) {
            return open_netcdf(url, options);
        }
    } else if remote_file_is_netcdf(url, options) {
        return open_netcdf(url, options);
    }
    open_zarr(url, options)
}

/// Whether a remote `url` is a netCDF file: its first bytes are asked for (one ranged
/// request) unless the URL looks like a Zarr store (`.zarr`, a trailing `/`) or a reference
/// set (`.json`, `.parq`); anything unreadable is left to [`open_zarr`] to explain.
fn remote_file_is_netcdf(url: &str, options: &OpenOptions) -> bool {
    if !gridflow_store::netcdf_remote::is_remote(url) || url.ends_with('/') {
        return false;
    }
    let name = url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if [".zarr", ".json", ".parq", ".parquet", ".zip"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        return false;
    }
    gridflow_store::netcdf_remote::read_head(url, &options.store, 8)
        .is_ok_and(|head| matches!(sniff(&head), FileKind::Hdf5 | FileKind::NetCdf3))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"run_*.nc", b"run_0.nc"));
        assert!(wildcard(b"*", b""));
        assert!(wildcard(b"r?n_*_*.nc", b"run_a_b.nc"));
        assert!(!wildcard(b"run_*.nc", b"run_0.json"));
        assert!(!wildcard(b"?", b""));
    }
}
