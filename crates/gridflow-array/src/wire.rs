//! Task values across processes: a chunk is a small header (dtype, shape) and its elements'
//! bytes as they are in memory; a reduction's partial state (small: reduced shapes) is
//! serde-encoded in the header.

use crate::dtype::ALL_DTYPES;
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
                // Encoding a partial cannot fail (plain data); an empty header part makes
                // the receiver report it rather than this side panic.
                if let Ok(b) = postcard::to_allocvec(&**p) {
                    out.extend_from_slice(&b);
                }
            }
        }
    }

    fn body(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Chunk(Chunk::Bool(a)) => match a.as_slice() {
                Some(s) => Cow::Borrowed(bytemuck::cast_slice(s)),
                None => Cow::Owned(a.iter().map(|&b| u8::from(b)).collect()),
            },
            Value::Chunk(c) => with_chunk!(c, a => numeric_body(a)),
            Value::Partial(_) => Cow::Borrowed(&[]),
        }
    }

    fn from_parts(header: &[u8], body: Vec<u8>) -> Result<Value, String> {
        match header.split_first() {
            Some((&CHUNK, rest)) => Ok(Value::Chunk(decode_chunk(rest, &body)?)),
            Some((&PARTIAL, rest)) => postcard::from_bytes(rest)
                .map(|p| Value::Partial(Box::new(p)))
                .map_err(|e| format!("partial reduction state: {e}")),
            Some((other, _)) => Err(format!("unknown value kind {other}")),
            None => Err("empty value header".into()),
        }
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
