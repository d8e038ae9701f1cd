//! Opening Zarr stores as datasets with CF decoding (as xarray's `open_zarr` +
//! `decode_cf`), and writing datasets back with their encodings.

use crate::dataarray::Coords;
use crate::dataset::Dataset;
use crate::error::{DatasetError, Result, invalid};
use crate::variable::{Attrs, NAT, ValueKind, Variable};
use gridflow_array::kernels::{BinaryOp, UnaryOp};
use gridflow_array::{ChunkedArray, DType, Scalar};
use gridflow_cftime::{Calendar, CfUnits};
use gridflow_store::{
    Compression, Dim, StoreOptions, WriteMode, WriteOptions, ZarrFormat, ZarrStore,
    consolidate_metadata, to_zarr,
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
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            mask_and_scale: true,
            decode_times: true,
            decode_coords: true,
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
    for path in group.array_paths() {
        if path.contains('/') {
            continue;
        }
        let full = if options.group.is_empty() {
            path.clone()
        } else {
            format!("{}/{}", options.group.trim_matches('/'), path)
        };
        let arr = group.array(&path)?;
        let dims: Vec<String> = match arr.dims() {
            Some(d) => d.to_vec(),
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
        // xarray writes a float `_FillValue` to v3 as base64 of a little-endian float64
        if format == ZarrFormat::V3
            && arr.dtype().is_float()
            && let Some(Value::String(text)) = v.attrs.get("_FillValue")
        {
            let f = decode_base64_f64(text).ok_or_else(|| DatasetError::Attribute {
                var: full.clone(),
                attr: "_FillValue".into(),
                detail: format!(
                    "{text:?} is not a base64-encoded float64 (how xarray writes a float _FillValue to Zarr v3)"
                ),
            })?;
            v.attrs
                .insert("_FillValue".into(), scalar_json(Scalar::Float(f)));
        }
        raw.insert(path, v);
    }
    let mut ds = decode_cf(raw, group.attrs().clone(), &options.decode)?;
    ds.encoding.insert("source".into(), json!(url));
    ds.encoding.insert(
        "zarr_format".into(),
        json!(if format == ZarrFormat::V2 { 2 } else { 3 }),
    );
    Ok(ds)
}

/// The float64 that standard base64 `text` (with padding) encodes in 8 little-endian bytes.
fn decode_base64_f64(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    // 8 bytes are 12 characters, the last one padding
    if b.len() != 12 || b[11] != b'=' {
        return None;
    }
    let mut bits: u128 = 0;
    for &c in &b[..11] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u128::from(v);
    }
    // 66 bits: the 64 of the value, then 2 that must be zero
    if bits & 0b11 != 0 {
        return None;
    }
    let raw = u64::try_from(bits >> 2).ok()?;
    Some(f64::from_le_bytes(raw.to_be_bytes()))
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

fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Array(a) if a.len() == 1 => json_f64(&a[0]),
        _ => None,
    }
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
            decode_time(name, v)?;
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

fn mask_and_scale(name: &str, v: &mut Variable) -> Result<()> {
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
            fills.extend(vals);
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
    for f in fills.iter().filter(|f| !f.is_nan()) {
        let hit = data.binary_scalar(BinaryOp::Eq, Scalar::Float(*f), false)?;
        data = gridflow_array::where_(&hit, Scalar::Float(f64::NAN), &data)?;
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

/// Largest time variable decoded eagerly (times are coordinates and bounds, small).
const MAX_TIME_VALUES: usize = 50_000_000;

fn decode_time(name: &str, v: &mut Variable) -> Result<()> {
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
    if v.data().len() > MAX_TIME_VALUES {
        return Err(invalid(
            "decode_times",
            format!(
                "{name:?} holds {} times, more than can be decoded in memory",
                v.data().len()
            ),
        ));
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
    /// Write consolidated metadata (`.zmetadata` for v2).
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
    /// Writes every variable to a Zarr store (in parallel, block by block), re-encoding
    /// times, packed values and fill values from each variable's encoding, so that a store
    /// opened with [`open_zarr`] round-trips.
    pub fn to_zarr(&self, url: &str, options: &ToZarrOptions) -> Result<()> {
        let store = ZarrStore::open(url, options.store.clone())?;
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
            let (data, attrs) = encode_variable(name, v)?;
            let wo = WriteOptions {
                format: options.format,
                mode: options.mode,
                dims: Some(v.dims().to_vec()),
                attrs,
                compression: options.compression,
                consolidated: false,
                ..WriteOptions::default()
            };
            to_zarr(&data, &store, name, &wo)?;
        }
        write_group_attrs(&store, options.format, &group_attrs)?;
        if options.consolidated {
            consolidate_metadata(&store)?;
        }
        Ok(())
    }
}

fn write_group_attrs(store: &ZarrStore, format: ZarrFormat, attrs: &Attrs) -> Result<()> {
    gridflow_store::write_group_attrs(store, "", format, attrs)?;
    Ok(())
}

/// The stored form of a variable: its data packed per its encoding, and its attributes.
fn encode_variable(
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
            if scale.is_none() && offset.is_none() && fill.is_none() {
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
            let data = data.astype(dtype)?;
            for key in ["scale_factor", "add_offset", "_FillValue", "missing_value"] {
                if let Some(val) = enc.get(key) {
                    attrs.insert(key.into(), val.clone());
                }
            }
            Ok((data, attrs))
        }
    }
}
