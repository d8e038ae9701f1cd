//! Writing netCDF-4 files, through the pure-Rust `netcdf-writer` crate (HDF5 with netCDF's
//! dimension scales, as netCDF-C and h5netcdf write them): the binary stays free of
//! libnetcdf and libhdf5.
//!
//! The writer builds the whole file in memory, so every variable is computed before the
//! file is written; the file then goes to disk through a temporary sibling renamed into
//! place ([`crate::staging::write_file`]), so a failure never leaves a partial file.

use crate::error::{Result, StoreError};
use gridflow_array::Chunk;
use netcdf_writer::{NcAttrValue, NcFileBuilder, NcWriteFormat, NcWriteOptions, VariableId};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// What a variable's values are.
#[derive(Clone, Debug)]
pub enum NcValues {
    /// Numbers, in the stored data type (row-major).
    Numbers(Chunk),
    /// Text, one string per element (row-major); written as a netCDF-4 `string` variable.
    Strings(Vec<String>),
}

/// One variable to write.
#[derive(Clone, Debug)]
pub struct NcVarWrite {
    /// The variable's name.
    pub name: String,
    /// Its dimension names.
    pub dims: Vec<String>,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The values.
    pub values: NcValues,
    /// Attributes (numbers, text, lists of them); `_FillValue` is written as the variable's
    /// fill value, in its own data type.
    pub attrs: Map<String, Value>,
    /// HDF5 chunk shape; `None`: contiguous.
    pub chunks: Option<Vec<usize>>,
    /// Deflate level (1-9); `None` or 0: uncompressed.
    pub deflate: Option<u8>,
    /// The shuffle filter before deflate (ignored without it, as netCDF4-python does).
    pub shuffle: bool,
    /// Fletcher-32 checksums of the chunks (needs `chunks`).
    pub fletcher32: bool,
}

/// A whole file to write.
#[derive(Clone, Debug, Default)]
pub struct NcFileWrite {
    /// Dimensions in order: name, length, unlimited.
    pub dims: Vec<(String, usize, bool)>,
    /// Variables in order.
    pub vars: Vec<NcVarWrite>,
    /// Global attributes.
    pub attrs: Map<String, Value>,
}

fn wr_err(
    path: &Path,
    detail: impl Into<String>,
) -> impl FnOnce(netcdf_writer::Error) -> StoreError {
    let path = path.display().to_string();
    let detail = detail.into();
    move |source| StoreError::NetcdfWrite {
        path,
        detail,
        source,
    }
}

fn bad(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Netcdf {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// A JSON attribute value as netCDF's: text as chars, integers as int (int64 when they need
/// it), other numbers as double, lists of one kind as arrays; `None` for what netCDF cannot
/// hold (null, objects, mixed lists).
fn attr_value(v: &Value) -> Option<NcAttrValue> {
    fn ints(xs: &[i64]) -> NcAttrValue {
        match xs.iter().map(|&x| i32::try_from(x)).collect() {
            Ok(small) => NcAttrValue::Ints(small),
            Err(_) => NcAttrValue::Int64s(xs.to_vec()),
        }
    }
    match v {
        Value::String(s) => Some(NcAttrValue::Chars(s.clone())),
        Value::Bool(b) => Some(NcAttrValue::Bytes(vec![i8::from(*b)])),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(ints(&[i])),
            None => n.as_f64().map(|x| NcAttrValue::Doubles(vec![x])),
        },
        Value::Array(items) if !items.is_empty() => {
            if let Some(strs) = items
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
            {
                return Some(NcAttrValue::Strings(strs));
            }
            if let Some(is) = items
                .iter()
                .map(Value::as_i64)
                .collect::<Option<Vec<i64>>>()
            {
                return Some(ints(&is));
            }
            items
                .iter()
                .map(|x| x.as_f64().or_else(|| special_float(x)))
                .collect::<Option<Vec<f64>>>()
                .map(NcAttrValue::Doubles)
        }
        _ => None,
    }
}

/// xarray's spellings of the floats JSON lacks.
fn special_float(v: &Value) -> Option<f64> {
    match v.as_str()? {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Writes `file` as netCDF-4 at `path` (a temporary sibling renamed into place; an existing
/// file is replaced only when `overwrite`).
pub fn write_netcdf(path: &Path, file: &NcFileWrite, overwrite: bool) -> Result<()> {
    // refused before the (possibly long) encoding
    crate::staging::check_output_file(path, overwrite)?;
    let mut b = NcFileBuilder::new();
    let mut dim_ids = HashMap::new();
    for (name, len, unlimited) in &file.dims {
        let id = if *unlimited {
            b.add_unlimited_dimension(name.clone())
        } else {
            b.add_dimension(name.clone(), *len as u64)
        }
        .map_err(wr_err(path, format!("dimension {name:?}")))?;
        dim_ids.insert(name.clone(), id);
    }
    for (k, v) in &file.attrs {
        if let Some(a) = attr_value(v) {
            b.add_attribute(k.clone(), a)
                .map_err(wr_err(path, format!("global attribute {k:?}")))?;
        }
    }
    for v in &file.vars {
        let dims =
            v.dims
                .iter()
                .map(|d| {
                    dim_ids.get(d).copied().ok_or_else(|| {
                        bad(path, format!("variable {:?}: no dimension {d:?}", v.name))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        let what = |s: &str| format!("variable {:?}: {s}", v.name);
        let id = add_variable(&mut b, v, &dims).map_err(wr_err(path, what("definition")))?;
        for (k, a) in &v.attrs {
            if k == "_FillValue" {
                continue;
            }
            if let Some(val) = attr_value(a) {
                b.add_variable_attribute(id, k.clone(), val)
                    .map_err(wr_err(path, what(&format!("attribute {k:?}"))))?;
            }
        }
        if let (Some(fill), NcValues::Numbers(c)) = (v.attrs.get("_FillValue"), &v.values) {
            let f = fill
                .as_f64()
                .or_else(|| special_float(fill))
                .ok_or_else(|| bad(path, what(&format!("_FillValue {fill} is not a number"))))?;
            set_fill(&mut b, id, c, f).map_err(wr_err(path, what("_FillValue")))?;
        }
        let scalar = v.shape.is_empty();
        if let Some(ch) = v.chunks.as_ref().filter(|_| !scalar) {
            let ch: Vec<u64> = ch.iter().map(|&c| c.max(1) as u64).collect();
            b.set_variable_chunking(id, ch)
                .map_err(wr_err(path, what("chunking")))?;
        }
        let chunked = v.chunks.is_some() && !scalar;
        if let Some(level) = v.deflate.filter(|&l| l > 0 && chunked) {
            b.set_variable_deflate(id, Some(level.min(9)), v.shuffle)
                .map_err(wr_err(path, what("compression")))?;
        }
        if v.fletcher32 && chunked {
            b.set_variable_fletcher32(id, true)
                .map_err(wr_err(path, what("fletcher32")))?;
        }
        write_values(&mut b, id, &v.values).map_err(wr_err(path, what("values")))?;
    }
    let (_, bytes) = b
        .to_vec(NcWriteOptions {
            format: NcWriteFormat::Nc4,
        })
        .map_err(wr_err(path, "encoding the file"))?;
    crate::staging::write_file(path, &bytes, overwrite)
}

fn add_variable(
    b: &mut NcFileBuilder,
    v: &NcVarWrite,
    dims: &[netcdf_writer::DimensionId],
) -> netcdf_writer::Result<VariableId> {
    let name = v.name.clone();
    let c = match &v.values {
        NcValues::Strings(_) => return b.add_string_variable(name, dims),
        NcValues::Numbers(c) => c,
    };
    match c {
        Chunk::Bool(_) | Chunk::I8(_) => b.add_variable::<i8>(name, dims),
        Chunk::U8(_) => b.add_variable::<u8>(name, dims),
        Chunk::I16(_) => b.add_variable::<i16>(name, dims),
        Chunk::U16(_) => b.add_variable::<u16>(name, dims),
        Chunk::I32(_) => b.add_variable::<i32>(name, dims),
        Chunk::U32(_) => b.add_variable::<u32>(name, dims),
        Chunk::I64(_) => b.add_variable::<i64>(name, dims),
        Chunk::U64(_) => b.add_variable::<u64>(name, dims),
        Chunk::F32(_) => b.add_variable::<f32>(name, dims),
        Chunk::F64(_) => b.add_variable::<f64>(name, dims),
    }
}

/// Sets the fill value in the variable's own type (a value that does not fit is refused
/// rather than wrapped).
fn set_fill(b: &mut NcFileBuilder, id: VariableId, c: &Chunk, f: f64) -> netcdf_writer::Result<()> {
    macro_rules! int {
        ($t:ty) => {{
            let x = f as $t;
            if x as f64 != f {
                return Err(netcdf_writer::Error::InvalidDefinition(format!(
                    "fill value {f} does not fit in {}",
                    stringify!($t)
                )));
            }
            b.set_variable_fill_value(id, x)
        }};
    }
    match c {
        Chunk::Bool(_) | Chunk::I8(_) => int!(i8),
        Chunk::U8(_) => int!(u8),
        Chunk::I16(_) => int!(i16),
        Chunk::U16(_) => int!(u16),
        Chunk::I32(_) => int!(i32),
        Chunk::U32(_) => int!(u32),
        Chunk::I64(_) => int!(i64),
        Chunk::U64(_) => int!(u64),
        Chunk::F32(_) => b.set_variable_fill_value(id, f as f32),
        Chunk::F64(_) => b.set_variable_fill_value(id, f),
    }
}

fn write_values(
    b: &mut NcFileBuilder,
    id: VariableId,
    values: &NcValues,
) -> netcdf_writer::Result<()> {
    let c = match values {
        NcValues::Strings(s) => return b.write_string_variable(id, s),
        NcValues::Numbers(c) => c,
    };
    macro_rules! w {
        ($a:expr) => {
            b.write_variable(id, &$a.iter().copied().collect::<Vec<_>>())
        };
    }
    match c {
        Chunk::Bool(a) => {
            b.write_variable(id, &a.iter().map(|&x| i8::from(x)).collect::<Vec<i8>>())
        }
        Chunk::I8(a) => w!(a),
        Chunk::U8(a) => w!(a),
        Chunk::I16(a) => w!(a),
        Chunk::U16(a) => w!(a),
        Chunk::I32(a) => w!(a),
        Chunk::U32(a) => w!(a),
        Chunk::I64(a) => w!(a),
        Chunk::U64(a) => w!(a),
        Chunk::F32(a) => w!(a),
        Chunk::F64(a) => w!(a),
    }
}
