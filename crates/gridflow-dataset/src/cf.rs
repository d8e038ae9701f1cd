//! Opening Zarr stores as datasets with CF decoding (as xarray's `open_zarr` +
//! `decode_cf`), and writing datasets back with their encodings.

use crate::dataarray::Coords;
use crate::dataset::Dataset;
use crate::error::{DatasetError, Result, invalid};
use crate::variable::{Attrs, NAT, ValueKind, Variable};
use gridflow_array::kernels::{BinaryOp, UnaryOp};
use gridflow_array::{ChunkedArray, DType, Scalar};
use gridflow_cftime::{Calendar, CfUnits};
use gridflow_store::staging::{StagedDir, check_output_dir};
use gridflow_store::{
    Compression, Dim, StoreOptions, StoreUrl, WriteMode, WriteOptions, ZarrFormat, ZarrStore,
    check_not_input, clear_store, consolidate_metadata, input_stores, to_zarr, write_string_array,
};
use indexmap::IndexMap;
use serde_json::{Value, json};

/// Which CF conventions to decode on open (all on by default, as in xarray).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// `_FillValue`/`missing_value` → NaN and `scale_factor`/`add_offset` unpacking.
    pub mask_and_scale: bool,
    /// Numbers with `units: "<unit> since <date>"` → datetimes in their calendar.
    pub decode_times: bool,
    /// Variables named in `coordinates` attributes become coordinates.
    pub decode_coords: bool,
    /// Most values of one index coordinate or time variable loaded into memory on open
    /// (their length comes from metadata): a longer one is refused before it is read.
    pub max_index_values: usize,
}

/// Default [`DecodeOptions::max_index_values`]: fifty million (400 MB of float64).
pub const DEFAULT_MAX_INDEX_VALUES: usize = 50_000_000;

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            mask_and_scale: true,
            decode_times: true,
            decode_coords: true,
            max_index_values: DEFAULT_MAX_INDEX_VALUES,
        }
    }
}

impl DecodeOptions {
    /// Every decoding step off (xarray's `decode_cf=False`).
    pub fn none() -> DecodeOptions {
        DecodeOptions {
            mask_and_scale: false,
            decode_times: false,
            decode_coords: false,
            max_index_values: DEFAULT_MAX_INDEX_VALUES,
        }
    }
}

/// Options of [`open_zarr`].
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Store access (credentials, endpoint, time-outs).
    pub store: StoreOptions,
    /// The group inside the store (`""`: the root).
    pub group: String,
    /// Block sizes by dimension name (rounded up to whole store chunks); the store's chunks
    /// otherwise, as xarray's `open_zarr(chunks={...})`.
    pub chunks: Vec<(String, usize)>,
    /// CF decoding.
    pub decode: DecodeOptions,
}

/// Opens a Zarr group (v2 or v3, local, `http(s)://` or `s3://`) as a lazy dataset.
///
/// Dimension names come from `_ARRAY_DIMENSIONS` (v2) or `dimension_names` (v3). Dimension
/// coordinates are loaded into indexes; data variables stay lazy.
pub fn open_zarr(url: &str, options: &OpenOptions) -> Result<Dataset> {
    gridflow_store::register();
    let store = ZarrStore::open(url, options.store.clone())?;
    let group = store.open_group(&options.group)?;
    let format = group.zarr_format();
    let mut raw: IndexMap<String, Variable> = IndexMap::new();
    let mut unreadable: Vec<(String, String)> = Vec::new();
    for path in group.array_paths() {
        if path.contains('/') {
            continue;
        }
        let full = if options.group.is_empty() {
            path.clone()
        } else {
            format!("{}/{}", options.group.trim_matches('/'), path)
        };
        if group.is_string_array(&path) {
            match read_strings(&group, &path, &full) {
                Ok(v) => {
                    raw.insert(path, v);
                }
                Err(e) => unreadable.push((path, e.to_string())),
            }
            continue;
        }
        let arr = match group.array(&path) {
            Ok(a) => a,
            // a data type gridflow cannot read spoils only its own variable
            Err(e @ gridflow_store::StoreError::UnsupportedDType { .. }) => {
                unreadable.push((path, e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let dims: Vec<String> = match arr.dims() {
            Some(d) => d.to_vec(),
            // zarr-python leaves `dimension_names` out of 0-d v3 arrays (CMIP6's `height`)
            None if arr.shape().is_empty() => Vec::new(),
            None => {
                return Err(DatasetError::Attribute {
                    var: full,
                    attr: "_ARRAY_DIMENSIONS".into(),
                    detail: "missing: the array has no dimension names (not written by xarray?)"
                        .into(),
                });
            }
        };
        let chunks: Vec<(Dim, usize)> = options
            .chunks
            .iter()
            .filter(|(d, _)| dims.contains(d))
            .map(|(d, n)| (Dim::Name(d.clone()), *n))
            .collect();
        let data = arr.to_chunked(if chunks.is_empty() {
            None
        } else {
            Some(&chunks)
        })?;
        let mut v = Variable::new(dims, data)?;
        v.attrs = arr.attrs().clone();
        v.attrs.shift_remove("_ARRAY_DIMENSIONS");
        v.encoding.insert("dtype".into(), json!(arr.dtype().name()));
        v.encoding.insert("chunks".into(), json!(arr.chunk_shape()));
        if format == ZarrFormat::V2
            && !v.attrs.contains_key("_FillValue")
            && let Some(f) = arr.fill_value()
        {
            v.attrs.insert("_FillValue".into(), scalar_json(f));
        }
        if format == ZarrFormat::V3 && arr.dtype().is_float() {
            decode_v3_float_fill(&full, &mut v.attrs)?;
        }
        raw.insert(path, v);
    }
    let mut ds = decode_cf(raw, group.attrs().clone(), &options.decode)?;
    if !unreadable.is_empty() {
        ds.encoding.insert(
            UNREADABLE.into(),
            Value::Object(unreadable.into_iter().map(|(k, e)| (k, json!(e))).collect()),
        );
    }
    ds.encoding.insert("source".into(), json!(url));
    ds.encoding.insert(
        "zarr_format".into(),
        json!(if format == ZarrFormat::V2 { 2 } else { 3 }),
    );
    Ok(ds)
}

/// `Dataset::encoding` key listing the variables that could not be read, with why.
pub(crate) const UNREADABLE: &str = "unreadable_variables";

/// A string array as a string variable (dimension names as for numeric arrays).
fn read_strings(group: &gridflow_store::ZarrGroup, path: &str, full: &str) -> Result<Variable> {
    let s = group.string_array(path)?;
    let dims = match s.dims {
        Some(d) => d,
        None if s.shape.is_empty() => Vec::new(),
        None => {
            return Err(DatasetError::Attribute {
                var: full.to_owned(),
                attr: "_ARRAY_DIMENSIONS".into(),
                detail: "missing: the array has no dimension names (not written by xarray?)".into(),
            });
        }
    };
    let mut v = Variable::from_string_array(&dims, &s.shape, s.values)?;
    v.attrs = s.attrs.into_iter().collect();
    v.encoding.insert("dtype".into(), json!("str"));
    Ok(v)
}

fn scalar_json(s: Scalar) -> Value {
    match s {
        Scalar::Bool(b) => json!(b),
        Scalar::Int(i) => json!(i),
        Scalar::UInt(u) => json!(u),
        Scalar::Float(f) if f.is_nan() => json!("NaN"),
        Scalar::Float(f) if f.is_infinite() => {
            json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
        }
        Scalar::Float(f) => json!(f),
    }
}

/// xarray writes a float `_FillValue` of a v3 array as the base64 of its little-endian
/// float64 bytes (`FillValueCoder`); the attribute becomes the number it stands for, so
/// that it is written back in the form each format needs.
fn decode_v3_float_fill(var: &str, attrs: &mut Attrs) -> Result<()> {
    let Some(Value::String(text)) = attrs.get("_FillValue") else {
        return Ok(());
    };
    let f = json_f64(&Value::String(text.clone())).ok_or_else(|| DatasetError::Attribute {
        var: var.to_owned(),
        attr: "_FillValue".into(),
        detail: format!(
            "{text:?} is neither a number nor base64 (as xarray writes v3 float fill values)"
        ),
    })?;
    attrs.insert("_FillValue".into(), scalar_json(Scalar::Float(f)));
    Ok(())
}

fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok().or_else(|| fill_from_base64(other)),
        },
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Array(a) if a.len() == 1 => json_f64(&a[0]),
        _ => None,
    }
}

/// A float `_FillValue` as xarray writes it in Zarr v3 attributes: the base64 of the value's
/// 8 little-endian float64 bytes (xarray's `FillValueCoder`).
fn fill_from_base64(s: &str) -> Option<f64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    Some(f64::from_le_bytes(bytes.as_slice().try_into().ok()?))
}

fn fill_to_base64(x: f64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(x.to_le_bytes())
}

fn attr_f64(var: &str, attrs: &Attrs, key: &str) -> Result<Option<f64>> {
    match attrs.get(key) {
        None => Ok(None),
        Some(v) => json_f64(v)
            .map(Some)
            .ok_or_else(|| DatasetError::Attribute {
                var: var.to_owned(),
                attr: key.to_owned(),
                detail: format!("{v} is not a number"),
            }),
    }
}

/// xarray's choice of the decoded float dtype (`_choose_float_dtype`); Zarr attributes are
/// JSON, so scale factors and offsets are float64.
fn float_dtype(dtype: DType, has_scale: bool, has_offset: bool) -> DType {
    if has_scale || has_offset {
        return DType::F64;
    }
    if dtype.is_float() && dtype.size() <= 4 {
        return DType::F32;
    }
    if dtype.is_int() && dtype.size() <= 2 || dtype == DType::Bool {
        return DType::F32;
    }
    DType::F64
}

/// Applies CF decoding to raw variables (as read from a store) and splits them into data
/// variables and coordinates.
pub fn decode_cf(
    mut raw: IndexMap<String, Variable>,
    attrs: Attrs,
    opts: &DecodeOptions,
) -> Result<Dataset> {
    // bounds variables inherit the units/calendar of the variable that names them
    let mut bounds_units: Vec<(String, Value, Option<Value>)> = Vec::new();
    for v in raw.values() {
        if let (Some(Value::String(b)), Some(u)) = (v.attrs.get("bounds"), v.attrs.get("units")) {
            bounds_units.push((b.clone(), u.clone(), v.attrs.get("calendar").cloned()));
        }
    }
    for (b, u, c) in bounds_units {
        if let Some(bv) = raw.get_mut(&b)
            && !bv.attrs.contains_key("units")
        {
            bv.attrs.insert("units".into(), u);
            if let Some(c) = c {
                bv.attrs.insert("calendar".into(), c);
            }
        }
    }
    for (name, v) in raw.iter_mut() {
        if opts.mask_and_scale {
            mask_and_scale(name, v)?;
        }
        if opts.decode_times {
            decode_time(name, v, opts.max_index_values)?;
        }
    }
    // coordinates: dimension-named 1-d variables and those named in `coordinates`
    let mut coord_names: Vec<String> = Vec::new();
    let dims: Vec<String> = raw.values().flat_map(|v| v.dims().to_vec()).collect();
    for (k, v) in &raw {
        if v.ndim() == 1 && v.dims()[0] == *k {
            coord_names.push(k.clone());
        }
    }
    if opts.decode_coords {
        let mut listed = Vec::new();
        for v in raw.values_mut() {
            if let Some(Value::String(c)) = v.attrs.shift_remove("coordinates") {
                listed.extend(c.split_whitespace().map(str::to_owned));
                v.encoding.insert("coordinates".into(), json!(c));
            }
        }
        if let Some(Value::String(c)) = attrs.get("coordinates") {
            listed.extend(c.split_whitespace().map(str::to_owned));
        }
        for c in listed {
            if raw.contains_key(&c) && !coord_names.contains(&c) {
                coord_names.push(c);
            }
        }
    }
    let _ = dims;
    let mut data_vars = IndexMap::new();
    let mut coords = Coords::new();
    for (k, v) in raw {
        if coord_names.contains(&k) {
            coords.insert(k, v);
        } else {
            data_vars.insert(k, v);
        }
    }
    // index coordinates are loaded into memory once
    for (k, v) in coords.iter_mut() {
        if v.ndim() == 1 && v.dims()[0] == *k {
            if v.data().len() > opts.max_index_values {
                return Err(DatasetError::TooLarge {
                    var: k.clone(),
                    what: "index coordinate",
                    values: v.data().len(),
                    limit: opts.max_index_values,
                });
            }
            let chunk = v.data().compute()?;
            let n = chunk.len().max(1);
            v.data = ChunkedArray::from_chunk(chunk, [n])?;
        }
    }
    let mut attrs = attrs;
    if opts.decode_coords {
        attrs.shift_remove("coordinates");
    }
    Dataset::new(data_vars, coords, attrs)
}

/// The netCDF `_Unsigned` convention, as xarray honours it: `"true"` on signed integers
/// reinterprets their bits as the unsigned type of the same size (`"false"` on unsigned ones
/// the other way); the fill values are converted the same way. Returns the conversion of
/// a raw fill value, for [`mask_and_scale`].
fn decode_unsigned(name: &str, v: &mut Variable) -> Result<Option<DType>> {
    let Some(flag) = v.attrs.get("_Unsigned").cloned() else {
        return Ok(None);
    };
    let want_unsigned = match &flag {
        Value::String(s) if s.eq_ignore_ascii_case("true") => true,
        Value::String(s) if s.eq_ignore_ascii_case("false") => false,
        Value::Bool(b) => *b,
        other => {
            return Err(DatasetError::Attribute {
                var: name.to_owned(),
                attr: "_Unsigned".into(),
                detail: format!("{other} is neither \"true\" nor \"false\""),
            });
        }
    };
    let from = v.dtype();
    let to = match (want_unsigned, from) {
        (true, DType::I8) => DType::U8,
        (true, DType::I16) => DType::U16,
        (true, DType::I32) => DType::U32,
        (true, DType::I64) => DType::U64,
        (false, DType::U8) => DType::I8,
        (false, DType::U16) => DType::I16,
        (false, DType::U32) => DType::I32,
        (false, DType::U64) => DType::I64,
        // already of the asked signedness, or not an integer: xarray leaves it alone
        _ => {
            v.attrs.shift_remove("_Unsigned");
            v.encoding.insert("_Unsigned".into(), flag);
            return Ok(None);
        }
    };
    // same-size integer casts keep the bits (NumPy's view)
    v.data = v.data().astype(to)?;
    v.attrs.shift_remove("_Unsigned");
    v.encoding.insert("_Unsigned".into(), flag);
    Ok(Some(from))
}

/// A raw fill value of an integer variable stored as `stored`, seen through the
/// reinterpretation to `now` (same size, other signedness).
fn reinterpret_fill(f: f64, stored: DType, now: DType) -> f64 {
    if !f.is_finite() || f.fract() != 0.0 {
        return f;
    }
    let bits = 8 * stored.size() as u32;
    let mask: u128 = if bits >= 64 {
        u128::from(u64::MAX)
    } else {
        (1u128 << bits) - 1
    };
    // the two's-complement bit pattern of the raw value at the stored width
    let pattern = (f as i128 as u128) & mask;
    if now.is_signed_int() {
        let sign = 1u128 << (bits - 1);
        if pattern & sign != 0 {
            (pattern as i128 - (mask as i128 + 1)) as f64
        } else {
            pattern as f64
        }
    } else {
        pattern as f64
    }
}

fn mask_and_scale(name: &str, v: &mut Variable) -> Result<()> {
    let stored = decode_unsigned(name, v)?;
    let mut fills: Vec<f64> = Vec::new();
    for key in ["_FillValue", "missing_value"] {
        if let Some(raw) = v.attrs.get(key).cloned() {
            let vals: Vec<f64> = match &raw {
                Value::Array(a) => a.iter().filter_map(json_f64).collect(),
                other => json_f64(other).into_iter().collect(),
            };
            if vals.is_empty() {
                return Err(DatasetError::Attribute {
                    var: name.to_owned(),
                    attr: key.to_owned(),
                    detail: format!("{raw} is not a number"),
                });
            }
            fills.extend(vals.into_iter().map(|f| match stored {
                Some(from) => reinterpret_fill(f, from, v.dtype()),
                None => f,
            }));
            v.attrs.shift_remove(key);
            v.encoding.insert(key.to_owned(), raw);
        }
    }
    let scale = attr_f64(name, &v.attrs, "scale_factor")?;
    let offset = attr_f64(name, &v.attrs, "add_offset")?;
    if fills.is_empty() && scale.is_none() && offset.is_none() {
        return Ok(());
    }
    // times and bools keep their values; only their fill values are noted
    if v.dtype() == DType::Bool
        || v.attrs
            .get("units")
            .and_then(Value::as_str)
            .is_some_and(|u| u.contains(" since "))
            && scale.is_none()
            && offset.is_none()
    {
        return Ok(());
    }
    let target = float_dtype(v.dtype(), scale.is_some(), offset.is_some());
    let mut data = v.data().astype(target)?;
    // one single-input step per fill value: it streams and commutes with selections
    // (CMIP6 gives the same value as `_FillValue` and `missing_value`: mask it once)
    let mut masked: Vec<f64> = Vec::new();
    for &f in fills.iter().filter(|f| !f.is_nan()) {
        // equal in the data's dtype is equal (1e20 and float32(1e20) in a float32 variable)
        let key = if target == DType::F32 {
            f64::from(f as f32)
        } else {
            f
        };
        if !masked.contains(&key) {
            masked.push(key);
            data = data.mask_eq(Scalar::Float(f))?;
        }
    }
    if let Some(s) = scale {
        data = data.binary_scalar(BinaryOp::Mul, Scalar::Float(s), false)?;
        v.encoding.insert(
            "scale_factor".into(),
            v.attrs.shift_remove("scale_factor").unwrap_or(json!(s)),
        );
    }
    if let Some(o) = offset {
        data = data.binary_scalar(BinaryOp::Add, Scalar::Float(o), false)?;
        v.encoding.insert(
            "add_offset".into(),
            v.attrs.shift_remove("add_offset").unwrap_or(json!(o)),
        );
    }
    if data.dtype() != target {
        data = data.astype(target)?;
    }
    v.data = data;
    Ok(())
}

/// Decodes a time variable eagerly (times are coordinates and bounds, small): one longer
/// than `max_values` is refused before it is read.
fn decode_time(name: &str, v: &mut Variable, max_values: usize) -> Result<()> {
    let Some(Value::String(units)) = v.attrs.get("units").cloned() else {
        return Ok(());
    };
    if !units.contains(" since ") || v.dtype() == DType::Bool {
        return Ok(());
    }
    let cal_name = match v.attrs.get("calendar") {
        Some(Value::String(c)) => c.clone(),
        Some(other) => {
            return Err(DatasetError::Attribute {
                var: name.to_owned(),
                attr: "calendar".into(),
                detail: format!("{other} is not a calendar name"),
            });
        }
        None => "standard".to_owned(),
    };
    let cal: Calendar = cal_name.parse().map_err(|e| DatasetError::Attribute {
        var: name.to_owned(),
        attr: "calendar".into(),
        detail: format!("{e}"),
    })?;
    let cf = CfUnits::parse(&units, cal).map_err(|e| DatasetError::Attribute {
        var: name.to_owned(),
        attr: "units".into(),
        detail: format!("{units:?}: {e}"),
    })?;
    if v.data().len() > max_values {
        return Err(DatasetError::TooLarge {
            var: name.to_owned(),
            what: "time decoding",
            values: v.data().len(),
            limit: max_values,
        });
    }
    let chunk = v.data().compute()?;
    let ticks: Vec<i64> = if chunk.dtype().is_int() {
        let ints = chunk.astype(DType::I64);
        let gridflow_array::Chunk::I64(a) = ints else {
            return Err(invalid("decode_times", "internal: int64 cast failed"));
        };
        a.iter()
            .map(|&x| {
                cf.decode_i64(x)
                    .map_err(|e| time_value_err(name, &units, x as f64, e))
            })
            .collect::<Result<_>>()?
    } else {
        chunk
            .to_f64_vec()
            .into_iter()
            .map(|x| match cf.decode(x) {
                Ok(Some(t)) => Ok(t),
                Ok(None) => Ok(NAT),
                Err(e) => Err(time_value_err(name, &units, x, e)),
            })
            .collect::<Result<_>>()?
    };
    let shape = v.shape().to_vec();
    let chunks: Vec<Vec<usize>> = v.data().chunks().to_vec();
    let mut t = Variable::from_ticks(v.dims().to_vec(), &shape, ticks, cal)?;
    if !shape.contains(&0) {
        t.data = t.data.rechunk(chunks)?;
    }
    t.attrs = v.attrs.clone();
    t.encoding = v.encoding.clone();
    for key in ["units", "calendar"] {
        if let Some(val) = t.attrs.shift_remove(key) {
            t.encoding.insert(key.into(), val);
        }
    }
    t.encoding.insert("calendar".into(), json!(cal.name()));
    *v = t;
    Ok(())
}

fn time_value_err(name: &str, units: &str, x: f64, e: impl std::fmt::Display) -> DatasetError {
    DatasetError::Attribute {
        var: name.to_owned(),
        attr: "units".into(),
        detail: format!("cannot decode value {x} with units {units:?}: {e}"),
    }
}

/// Options of [`Dataset::to_zarr`].
#[derive(Clone, Debug)]
pub struct ToZarrOptions {
    /// Zarr format.
    pub format: ZarrFormat,
    /// Fail if the store has data (`Create`) or replace it (`Overwrite`).
    pub mode: WriteMode,
    /// Compression of every array.
    pub compression: Compression,
    /// Write consolidated metadata (`.zmetadata`; Zarr v2 only, ignored for v3).
    pub consolidated: bool,
    /// Store access.
    pub store: StoreOptions,
}

impl Default for ToZarrOptions {
    fn default() -> Self {
        ToZarrOptions {
            format: ZarrFormat::V2,
            mode: WriteMode::Create,
            compression: Compression::BloscLz4 { clevel: 5 },
            consolidated: true,
            store: StoreOptions::default(),
        }
    }
}

impl Dataset {
    /// The Zarr arrays the dataset's lazily read variables come from (store and array path),
    /// each once.
    pub fn input_stores(&self) -> Vec<(StoreUrl, String)> {
        let mut out: Vec<(StoreUrl, String)> = Vec::new();
        for v in self.coords.values().chain(self.data_vars.values()) {
            for i in input_stores(v.data()) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }

    /// Checks, touching nothing, what [`Dataset::to_zarr`] checks before it writes: the
    /// output is none of the stores the dataset reads from (nor inside one, nor holding one;
    /// symlinks resolved), and what is at a local target may be used in `options.mode` (see
    /// [`gridflow_store::staging::check_output_dir`]).
    pub fn check_to_zarr(&self, url: &str, options: &ToZarrOptions) -> Result<()> {
        let target = StoreUrl::parse(url)?;
        if matches!(target, StoreUrl::Http(_)) {
            // HTTP stores are read-only: say so before computing anything
            return Err(gridflow_store::StoreError::ReadOnly {
                url: target.to_string(),
            }
            .into());
        }
        // whole stores: writing inside an input store (even beside the arrays read) is refused too
        let roots: Vec<(StoreUrl, String)> = self
            .input_stores()
            .into_iter()
            .map(|(u, _)| (u, String::new()))
            .collect();
        check_not_input(&target, "", &roots)?;
        if let StoreUrl::Local(p) = &target {
            check_output_dir(p, options.mode)?;
        }
        Ok(())
    }

    /// Writes every variable to a Zarr store (in parallel, block by block), re-encoding
    /// times, packed values and fill values from each variable's encoding, so that a store
    /// opened with [`open_zarr`] round-trips.
    ///
    /// Refused before anything is touched: an output that the dataset reads from (see
    /// [`Dataset::check_to_zarr`]), and in [`WriteMode::Create`] an existing store.
    ///
    /// Local stores are written to a hidden temporary sibling directory, flushed to disk,
    /// and put in place only when complete: renamed to a new target, or atomically swapped
    /// with the store it replaces ([`WriteMode::Overwrite`]), whose old content is then
    /// deleted. A failure at any point leaves the target exactly as it was; the result holds
    /// exactly the new content. Only Zarr stores (and empty directories) are ever replaced.
    ///
    /// Object stores (S3) have no rename: chunks are written first, then each array's
    /// metadata, then the root group and the consolidated metadata last, so a new store that
    /// fails partway does not open. [`WriteMode::Overwrite`] there is not atomic: it first
    /// deletes the old store (its root metadata first, then every key under the prefix); if
    /// the write then fails, no store opens at that prefix.
    pub fn to_zarr(&self, url: &str, options: &ToZarrOptions) -> Result<()> {
        self.to_zarr_with(url, options, &gridflow_array::LocalExecutor::default())
    }

    /// [`Dataset::to_zarr`] on an executor. On a cluster, every chunk is written by a
    /// store-write task on the worker that computes it, straight to the store (a local
    /// target is staged in a sibling directory the workers must be able to reach: the same
    /// machine or a shared file system; object stores need the credentials in
    /// `options.store`), and all variables are one graph, so nothing they share is
    /// computed twice. Metadata is written by this process once every chunk is stored.
    pub fn to_zarr_with(
        &self,
        url: &str,
        options: &ToZarrOptions,
        executor: &dyn gridflow_array::Executor<gridflow_array::ArrayOp>,
    ) -> Result<()> {
        self.check_to_zarr(url, options)?;
        match StoreUrl::parse(url)? {
            StoreUrl::Local(path) => {
                let staged = StagedDir::begin(&path, options.mode)?;
                let tmp = staged.path().to_str().ok_or_else(|| {
                    invalid(
                        "to_zarr",
                        format!("{} is not UTF-8", staged.path().display()),
                    )
                })?;
                {
                    let store = ZarrStore::open(tmp, options.store.clone())?;
                    self.write_store(&store, options, executor)?;
                }
                staged.commit()?;
            }
            _ => {
                let store = ZarrStore::open(url, options.store.clone())?;
                clear_store(&store, options.mode)?;
                self.write_store(&store, options, executor)?;
            }
        }
        Ok(())
    }

    /// Writes every array's chunks and metadata, then the root group, then the consolidated
    /// metadata.
    fn write_store(
        &self,
        store: &ZarrStore,
        options: &ToZarrOptions,
        executor: &dyn gridflow_array::Executor<gridflow_array::ArrayOp>,
    ) -> Result<()> {
        // On a cluster, every array's chunks are written by tasks of one graph.
        let remote = executor.persists_remotely();
        let mut writes = Vec::new();
        let mut group_attrs = self.attrs.clone();
        let coord_names: Vec<String> = self
            .coords
            .keys()
            .filter(|k| !self.coords[*k].dims().iter().any(|d| d == *k))
            .cloned()
            .collect();
        if !coord_names.is_empty() {
            group_attrs.insert("coordinates".into(), json!(coord_names.join(" ")));
        }
        for (name, v) in self.coords.iter().chain(self.data_vars.iter()) {
            if let ValueKind::Strings(table) = v.kind() {
                let codes = v.data().compute()?.to_f64_vec();
                let values = codes
                    .iter()
                    .map(|&c| {
                        table.get(c as usize).cloned().ok_or_else(|| {
                            invalid("to_zarr", format!("{name:?}: string code {c} out of range"))
                        })
                    })
                    .collect::<Result<Vec<String>>>()?;
                let attrs: serde_json::Map<String, Value> = v
                    .attrs
                    .iter()
                    .map(|(k, x)| (k.clone(), x.clone()))
                    .collect();
                write_string_array(
                    store,
                    name,
                    options.format,
                    v.dims(),
                    v.shape(),
                    &values,
                    &attrs,
                )?;
                continue;
            }
            let (data, mut attrs) = encode_variable(name, v)?;
            if options.format == ZarrFormat::V3 && data.dtype().is_float() {
                // xarray reads a v3 float `_FillValue` only as base64 of its float64 bytes
                if let Some(f) = attrs.get("_FillValue").and_then(json_f64) {
                    attrs.insert("_FillValue".into(), json!(fill_to_base64(f)));
                }
            }
            // v2 keeps `_FillValue` as the array's fill_value, where xarray reads it (an
            // attribute beside a NaN fill_value would be ignored and 1e20s left unmasked)
            let mut fill_value = None;
            if options.format == ZarrFormat::V2
                && let Some(f) = attrs.get("_FillValue").and_then(json_f64)
            {
                attrs.shift_remove("_FillValue");
                fill_value = Some(f);
            }
            let wo = WriteOptions {
                format: options.format,
                mode: WriteMode::Create,
                dims: Some(v.dims().to_vec()),
                attrs: attrs.into_iter().collect(),
                fill_value,
                compression: options.compression,
                consolidated: false,
                groups: false,
                ..WriteOptions::default()
            };
            if remote {
                writes.push(gridflow_store::ArrayWrite::prepare(
                    &data, store, name, &wo,
                )?);
            } else {
                to_zarr(&data, store, name, &wo)?;
            }
        }
        if !writes.is_empty() {
            gridflow_store::write_with(&writes, executor)?;
            for w in writes {
                w.finish()?;
            }
        }
        write_group_attrs(store, options.format, &group_attrs)?;
        // `.zmetadata` is v2's; a v3 store with one would be opened as an empty v2 store
        if options.consolidated && options.format == ZarrFormat::V2 {
            consolidate_metadata(store)?;
        }
        Ok(())
    }
}

fn write_group_attrs(store: &ZarrStore, format: ZarrFormat, attrs: &Attrs) -> Result<()> {
    gridflow_store::write_group_attrs(store, "", format, attrs)?;
    Ok(())
}

/// The stored form of a variable: its data packed per its encoding, and its attributes.
pub(crate) fn encode_variable(
    name: &str,
    v: &Variable,
) -> Result<(ChunkedArray, serde_json::Map<String, Value>)> {
    let mut attrs = v.attrs.clone();
    match v.kind() {
        ValueKind::Strings(_) => Err(invalid(
            "to_zarr",
            format!("{name:?} holds strings, which gridflow cannot write to Zarr yet"),
        )),
        ValueKind::Time(cal) => {
            let units_text = v
                .encoding
                .get("units")
                .and_then(Value::as_str)
                .unwrap_or("days since 1970-01-01 00:00:00")
                .to_owned();
            let cf = CfUnits::parse(&units_text, *cal).map_err(|e| DatasetError::Attribute {
                var: name.to_owned(),
                attr: "units".into(),
                detail: e.to_string(),
            })?;
            let ticks = v.ticks()?;
            let exact: Option<Vec<i64>> = ticks
                .iter()
                .map(|&t| if t == NAT { None } else { cf.encode_exact(t) })
                .collect();
            let shape = v.shape().to_vec();
            let chunk = match exact {
                Some(ints) => gridflow_array::Chunk::I64(
                    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), ints)
                        .map_err(|e| invalid("to_zarr", e.to_string()))?,
                ),
                None => gridflow_array::Chunk::F64(
                    ndarray::ArrayD::from_shape_vec(
                        ndarray::IxDyn(&shape),
                        ticks
                            .iter()
                            .map(|&t| if t == NAT { f64::NAN } else { cf.encode(t) })
                            .collect(),
                    )
                    .map_err(|e| invalid("to_zarr", e.to_string()))?,
                ),
            };
            let data = ChunkedArray::from_chunk(chunk, v.data().chunks().to_vec())?;
            attrs.insert("units".into(), json!(units_text));
            attrs.insert("calendar".into(), json!(cal.name()));
            Ok((data, attrs))
        }
        ValueKind::Numeric => {
            let enc = &v.encoding;
            let scale = enc.get("scale_factor").and_then(json_f64);
            let offset = enc.get("add_offset").and_then(json_f64);
            let fill = enc.get("_FillValue").and_then(json_f64);
            let dtype = enc
                .get("dtype")
                .and_then(Value::as_str)
                .and_then(DType::parse)
                .unwrap_or(v.dtype());
            let mut data = v.data().clone();
            // `_Unsigned`: values live in the other signedness and are stored in `dtype`
            let unsigned_view = enc.get("_Unsigned").and_then(|flag| {
                let view = match (flag.as_str().map(str::to_ascii_lowercase).as_deref(), dtype) {
                    (Some("true"), DType::I8) => DType::U8,
                    (Some("true"), DType::I16) => DType::U16,
                    (Some("true"), DType::I32) => DType::U32,
                    (Some("true"), DType::I64) => DType::U64,
                    (Some("false"), DType::U8) => DType::I8,
                    (Some("false"), DType::U16) => DType::I16,
                    (Some("false"), DType::U32) => DType::I32,
                    (Some("false"), DType::U64) => DType::I64,
                    _ => return None,
                };
                attrs.insert("_Unsigned".into(), flag.clone());
                Some(view)
            });
            let fill = match unsigned_view {
                Some(view) => fill.map(|f| reinterpret_fill(f, dtype, view)),
                None => fill,
            };
            if scale.is_none() && offset.is_none() && fill.is_none() {
                if let Some(view) = unsigned_view {
                    data = data.astype(view)?.astype(dtype)?;
                }
                return Ok((data, attrs));
            }
            if let Some(o) = offset {
                data = data.binary_scalar(BinaryOp::Sub, Scalar::Float(o), false)?;
            }
            if let Some(s) = scale {
                data = data.binary_scalar(BinaryOp::Div, Scalar::Float(s), false)?;
            }
            if dtype.is_int() {
                data = data.unary(UnaryOp::Round)?;
            }
            if let Some(f) = fill.filter(|f| !f.is_nan()) {
                let missing = data.isnull()?;
                data = gridflow_array::where_(&missing, Scalar::Float(f), &data)?;
            }
            let data = match unsigned_view {
                Some(view) => data.astype(view)?.astype(dtype)?,
                None => data.astype(dtype)?,
            };
            for key in ["scale_factor", "add_offset", "_FillValue", "missing_value"] {
                if let Some(val) = enc.get(key) {
                    attrs.insert(key.into(), val.clone());
                }
            }
            Ok((data, attrs))
        }
    }
}

#[cfg(test)]
mod conventions_tests {
    use super::*;

    #[test]
    fn fill_values_follow_the_reinterpreted_bits() {
        assert_eq!(reinterpret_fill(-1.0, DType::I8, DType::U8), 255.0);
        assert_eq!(reinterpret_fill(-128.0, DType::I8, DType::U8), 128.0);
        assert_eq!(reinterpret_fill(255.0, DType::U8, DType::I8), -1.0);
        assert_eq!(reinterpret_fill(-1.0, DType::I16, DType::U16), 65535.0);
        assert_eq!(reinterpret_fill(5.0, DType::I32, DType::U32), 5.0);
        assert_eq!(
            reinterpret_fill(-1.0, DType::I64, DType::U64),
            u64::MAX as f64
        );
        assert!(reinterpret_fill(f64::NAN, DType::I8, DType::U8).is_nan());
    }

    #[test]
    fn fill_values_in_base64_as_xarray_writes_them() {
        // base64.standard_b64encode(struct.pack("<d", v)) in Python
        for (v, text) in [
            (1e20, "QIy1eB2vFUQ="),
            (-9999.0, "AAAAAICHw8A="),
            (0.5, "AAAAAAAA4D8="),
        ] {
            assert_eq!(fill_to_base64(v), text);
            assert_eq!(fill_from_base64(text), Some(v));
        }
        assert_eq!(fill_to_base64(f64::NAN), "AAAAAAAA+H8=");
        assert!(fill_from_base64("AAAAAAAA+H8=").is_some_and(f64::is_nan));
        for bad in ["NaN", "", "AAAAAAAA+H8", "AAAAAAAA+H!=", "AAAAAAAA+H9="] {
            assert_eq!(fill_from_base64(bad), None, "{bad}");
        }
    }
}
