//! Task values across processes: a chunk is a small header (dtype, shape) and its elements'
//! bytes as they are in memory; a reduction's partial state (small: reduced shapes) is
//! serde-encoded in the header.

use crate::dtype::ALL_DTYPES;
use crate::kernels::reduce::Partial;
use crate::{Chunk, DType, Value, with_chunk};
use gridflow_runtime::WireValue;
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;

// Element bytes are sent in the host's order; every platform gridflow runs on is
// little-endian, and a big-endian build would need byte swapping here.
#[cfg(target_endian = "big")]
compile_error!("gridflow's wire format assumes a little-endian host");

const CHUNK: u8 = 0;
const PARTIAL: u8 = 1;

fn dtype_code(d: DType) -> u8 {
    ALL_DTYPES.iter().position(|x| *x == d).unwrap_or(0) as u8
}

fn elements_bytes<T: bytemuck::NoUninit>(a: &ArrayD<T>) -> Cow<'_, [u8]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(bytemuck::cast_slice(s)),
        // Not in standard layout (a transposed view): copy into standard order.
        None => {
            let v: Vec<T> = a.iter().copied().collect();
            Cow::Owned(bytemuck::cast_slice(&v).to_vec())
        }
    }
}

fn typed<T: bytemuck::Pod>(shape: &[usize], body: &[u8]) -> Result<ArrayD<T>, String> {
    let v: Vec<T> = bytemuck::pod_collect_to_vec(body);
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| format!("chunk of shape {shape:?}: {e}"))
}

fn decode_chunk(header: &[u8], body: &[u8]) -> Result<Chunk, String> {
    let [code, ndim, rest @ ..] = header else {
        return Err("chunk header too short".into());
    };
    let dtype = *ALL_DTYPES
        .get(*code as usize)
        .ok_or_else(|| format!("unknown dtype code {code}"))?;
    if rest.len() != *ndim as usize * 8 {
        return Err(format!(
            "chunk header: {} shape bytes for {ndim} dimensions",
            rest.len()
        ));
    }
    let shape: Vec<usize> = rest
        .chunks_exact(8)
        .map(|b| {
            let mut x = [0u8; 8];
            x.copy_from_slice(b);
            usize::try_from(u64::from_le_bytes(x)).map_err(|_| "dimension too large".to_string())
        })
        .collect::<Result<_, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| format!("chunk of shape {shape:?} is too large"))?;
    if n != body.len() {
        return Err(format!(
            "{} chunk of shape {shape:?} needs {n} bytes, got {}",
            dtype.name(),
            body.len()
        ));
    }
    Ok(match dtype {
        DType::Bool => {
            if let Some(b) = body.iter().find(|&&b| b > 1) {
                return Err(format!("bool chunk holds the byte {b}"));
            }
            let v: Vec<bool> = body.iter().map(|&b| b == 1).collect();
            Chunk::Bool(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string())?)
        }
        DType::I8 => Chunk::I8(typed(&shape, body)?),
        DType::I16 => Chunk::I16(typed(&shape, body)?),
        DType::I32 => Chunk::I32(typed(&shape, body)?),
        DType::I64 => Chunk::I64(typed(&shape, body)?),
        DType::U8 => Chunk::U8(typed(&shape, body)?),
        DType::U16 => Chunk::U16(typed(&shape, body)?),
        DType::U32 => Chunk::U32(typed(&shape, body)?),
        DType::U64 => Chunk::U64(typed(&shape, body)?),
        DType::F32 => Chunk::F32(typed(&shape, body)?),
        DType::F64 => Chunk::F64(typed(&shape, body)?),
    })
}

impl WireValue for Value {
    fn write_header(&self, out: &mut Vec<u8>) {
        match self {
            Value::Chunk(c) => {
                out.push(CHUNK);
                out.push(dtype_code(c.dtype()));
                out.push(c.shape().len() as u8);
                for &d in c.shape() {
                    out.extend_from_slice(&(d as u64).to_le_bytes());
                }
            }
            Value::Partial(p) => {
                out.push(PARTIAL);
                let (variant, parts) = partial_parts(p);
                out.push(variant);
                out.push(parts.len() as u8);
                for part in &parts {
                    let shape = part.shape();
                    out.push(dtype_code(part.dtype()));
                    out.push(shape.len() as u8);
                    for &d in shape {
                        out.extend_from_slice(&(d as u64).to_le_bytes());
                    }
                }
            }
        }
    }

    fn body(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Chunk(c) => chunk_body(c),
            // The arrays' bytes one after another (a copy: one memcpy per array, where an
            // element-by-element serde encoding of megabyte partials cost far more).
            Value::Partial(p) => {
                let (_, parts) = partial_parts(p);
                let mut out = Vec::with_capacity(parts.iter().map(Part::nbytes).sum());
                for part in &parts {
                    out.extend_from_slice(&part.bytes());
                }
                Cow::Owned(out)
            }
        }
    }

    fn from_parts(header: &[u8], body: Vec<u8>) -> Result<Value, String> {
        match header.split_first() {
            Some((&CHUNK, rest)) => Ok(Value::Chunk(decode_chunk(rest, &body)?)),
            Some((&PARTIAL, rest)) => decode_partial(rest, &body)
                .map(|p| Value::Partial(Box::new(p)))
                .map_err(|e| format!("partial reduction state: {e}")),
            Some((other, _)) => Err(format!("unknown value kind {other}")),
            None => Err("empty value header".into()),
        }
    }
}

/// A chunk's element bytes.
fn chunk_body(c: &Chunk) -> Cow<'_, [u8]> {
    match c {
        Chunk::Bool(a) => match a.as_slice() {
            Some(s) => Cow::Borrowed(bytemuck::cast_slice(s)),
            None => Cow::Owned(a.iter().map(|&b| u8::from(b)).collect()),
        },
        c => with_chunk!(c, a => numeric_body(a)),
    }
}

/// The element bytes of a numeric chunk (bool is handled by the caller).
fn numeric_body<T: WireElement>(a: &ArrayD<T>) -> Cow<'_, [u8]> {
    T::bytes(a)
}

/// Element types whose arrays' memory is their wire encoding.
trait WireElement: Sized {
    fn bytes(a: &ArrayD<Self>) -> Cow<'_, [u8]>;
}

macro_rules! wire_element {
    ($($t:ty),*) => {$(
        impl WireElement for $t {
            fn bytes(a: &ArrayD<$t>) -> Cow<'_, [u8]> {
                elements_bytes(a)
            }
        }
    )*};
}
wire_element!(bool, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// One array of a partial reduction's state, borrowed for encoding.
enum Part<'a> {
    Chunk(&'a Chunk),
    F64(&'a ArrayD<f64>),
    I64(&'a ArrayD<i64>),
    Bool(&'a ArrayD<bool>),
}

impl Part<'_> {
    fn dtype(&self) -> DType {
        match self {
            Part::Chunk(c) => c.dtype(),
            Part::F64(_) => DType::F64,
            Part::I64(_) => DType::I64,
            Part::Bool(_) => DType::Bool,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Part::Chunk(c) => c.shape(),
            Part::F64(a) => a.shape(),
            Part::I64(a) => a.shape(),
            Part::Bool(a) => a.shape(),
        }
    }

    fn nbytes(&self) -> usize {
        self.shape().iter().product::<usize>() * self.dtype().size()
    }

    fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Part::Chunk(c) => chunk_body(c),
            Part::F64(a) => elements_bytes(a),
            Part::I64(a) => elements_bytes(a),
            Part::Bool(a) => elements_bytes(a),
        }
    }
}

// Variant codes of the partial wire format.
const SUM: u8 = 0;
const PROD: u8 = 1;
const MEAN: u8 = 2;
const MOMENTS: u8 = 3;
const EXTREME: u8 = 4;
const COUNT: u8 = 5;
const LOGICAL: u8 = 6;
const ARG: u8 = 7;

/// A partial's variant code and its arrays, in a fixed order per variant.
fn partial_parts(p: &Partial) -> (u8, Vec<Part<'_>>) {
    match p {
        Partial::Sum(c) => (SUM, vec![Part::Chunk(c)]),
        Partial::Prod(c) => (PROD, vec![Part::Chunk(c)]),
        Partial::Mean { sum, count } => (MEAN, vec![Part::F64(sum), Part::I64(count)]),
        Partial::Moments { count, mean, m2 } => (
            MOMENTS,
            vec![Part::I64(count), Part::F64(mean), Part::F64(m2)],
        ),
        Partial::Extreme(c) => (EXTREME, vec![Part::Chunk(c)]),
        Partial::Count(c) => (COUNT, vec![Part::I64(c)]),
        Partial::Logical(b) => (LOGICAL, vec![Part::Bool(b)]),
        Partial::Arg { value, index } => (ARG, vec![Part::Chunk(value), Part::I64(index)]),
    }
}

/// Rebuilds a partial from its header (after the kind byte) and body.
fn decode_partial(header: &[u8], body: &[u8]) -> Result<Partial, String> {
    let [variant, n, rest @ ..] = header else {
        return Err("header too short".into());
    };
    let mut rest = rest;
    let mut body = body;
    let mut parts = Vec::with_capacity(*n as usize);
    for i in 0..*n {
        let [code, ndim, ..] = rest else {
            return Err(format!("header of array {i} missing"));
        };
        let hlen = 2 + *ndim as usize * 8;
        if rest.len() < hlen {
            return Err(format!("header of array {i} cut short"));
        }
        let (h, tail) = rest.split_at(hlen);
        rest = tail;
        let dtype = ALL_DTYPES
            .get(*code as usize)
            .ok_or_else(|| format!("array {i}: unknown dtype code {code}"))?;
        let n = h[2..]
            .chunks_exact(8)
            .map(|b| {
                let mut x = [0u8; 8];
                x.copy_from_slice(b);
                usize::try_from(u64::from_le_bytes(x)).ok()
            })
            .try_fold(dtype.size(), |a, d| d.and_then(|d| a.checked_mul(d)))
            .ok_or_else(|| format!("array {i} is too large"))?;
        if body.len() < n {
            return Err(format!("array {i} needs {n} bytes, {} left", body.len()));
        }
        let (b, tail) = body.split_at(n);
        body = tail;
        parts.push(decode_chunk(h, b).map_err(|e| format!("array {i}: {e}"))?);
    }
    // The kernels combine a partial's arrays element by element: they must agree.
    if let Some(first) = parts.first()
        && let Some(other) = parts.iter().find(|c| c.shape() != first.shape())
    {
        return Err(format!(
            "arrays of shapes {:?} and {:?} in one partial",
            first.shape(),
            other.shape()
        ));
    }
    if !rest.is_empty() || !body.is_empty() {
        return Err(format!(
            "{} header and {} body bytes left over",
            rest.len(),
            body.len()
        ));
    }
    let want = |d: DType, c: Chunk| -> Result<Chunk, String> {
        if c.dtype() == d {
            Ok(c)
        } else {
            Err(format!(
                "expected a {} array, got {}",
                d.name(),
                c.dtype().name()
            ))
        }
    };
    let f64s = |c: Chunk| match want(DType::F64, c)? {
        Chunk::F64(a) => Ok(a),
        _ => Err("expected float64".to_string()),
    };
    let i64s = |c: Chunk| match want(DType::I64, c)? {
        Chunk::I64(a) => Ok(a),
        _ => Err("expected int64".to_string()),
    };
    let mut it = parts.into_iter();
    let mut next = || it.next().ok_or_else(|| "too few arrays".to_string());
    let p = match *variant {
        SUM => Partial::Sum(next()?),
        PROD => Partial::Prod(next()?),
        MEAN => Partial::Mean {
            sum: f64s(next()?)?,
            count: i64s(next()?)?,
        },
        MOMENTS => Partial::Moments {
            count: i64s(next()?)?,
            mean: f64s(next()?)?,
            m2: f64s(next()?)?,
        },
        EXTREME => Partial::Extreme(next()?),
        COUNT => Partial::Count(i64s(next()?)?),
        LOGICAL => match want(DType::Bool, next()?)? {
            Chunk::Bool(a) => Partial::Logical(a),
            _ => return Err("expected bool".into()),
        },
        ARG => Partial::Arg {
            value: next()?,
            index: i64s(next()?)?,
        },
        other => return Err(format!("unknown partial variant {other}")),
    };
    if next().is_ok() {
        return Err(format!("too many arrays for variant {variant}"));
    }
    Ok(p)
}
