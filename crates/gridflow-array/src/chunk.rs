//! [`Chunk`]: one n-dimensional block of any supported dtype, backed by `ndarray`.

use crate::dtype::{DType, Scalar};
use crate::error::{ArrayError, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// A dtype-dynamic n-d block in memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Chunk {
    /// `bool` elements.
    Bool(ArrayD<bool>),
    /// `int8` elements.
    I8(ArrayD<i8>),
    /// `int16` elements.
    I16(ArrayD<i16>),
    /// `int32` elements.
    I32(ArrayD<i32>),
    /// `int64` elements.
    I64(ArrayD<i64>),
    /// `uint8` elements.
    U8(ArrayD<u8>),
    /// `uint16` elements.
    U16(ArrayD<u16>),
    /// `uint32` elements.
    U32(ArrayD<u32>),
    /// `uint64` elements.
    U64(ArrayD<u64>),
    /// `float32` elements.
    F32(ArrayD<f32>),
    /// `float64` elements.
    F64(ArrayD<f64>),
}

/// Runs `$body` with `$a` bound to the typed array inside a [`Chunk`] (any variant).
#[macro_export]
macro_rules! with_chunk {
    ($chunk:expr, $a:ident => $body:expr) => {
        match $chunk {
            $crate::Chunk::Bool($a) => $body,
            $crate::Chunk::I8($a) => $body,
            $crate::Chunk::I16($a) => $body,
            $crate::Chunk::I32($a) => $body,
            $crate::Chunk::I64($a) => $body,
            $crate::Chunk::U8($a) => $body,
            $crate::Chunk::U16($a) => $body,
            $crate::Chunk::U32($a) => $body,
            $crate::Chunk::U64($a) => $body,
            $crate::Chunk::F32($a) => $body,
            $crate::Chunk::F64($a) => $body,
        }
    };
}

/// Like [`with_chunk!`] but rebuilds a chunk of the same variant from the body's array.
#[macro_export]
macro_rules! map_chunk {
    ($chunk:expr, $a:ident => $body:expr) => {
        match $chunk {
            $crate::Chunk::Bool($a) => $crate::Chunk::Bool($body),
            $crate::Chunk::I8($a) => $crate::Chunk::I8($body),
            $crate::Chunk::I16($a) => $crate::Chunk::I16($body),
            $crate::Chunk::I32($a) => $crate::Chunk::I32($body),
            $crate::Chunk::I64($a) => $crate::Chunk::I64($body),
            $crate::Chunk::U8($a) => $crate::Chunk::U8($body),
            $crate::Chunk::U16($a) => $crate::Chunk::U16($body),
            $crate::Chunk::U32($a) => $crate::Chunk::U32($body),
            $crate::Chunk::U64($a) => $crate::Chunk::U64($body),
            $crate::Chunk::F32($a) => $crate::Chunk::F32($body),
            $crate::Chunk::F64($a) => $crate::Chunk::F64($body),
        }
    };
}

/// A Rust element type that a [`Chunk`] can hold.
pub trait Element:
    Copy + Send + Sync + PartialOrd + PartialEq + std::fmt::Debug + Default + 'static
{
    /// The matching dtype.
    const DTYPE: DType;
    /// Borrows the typed array if the chunk holds this type.
    fn view(chunk: &Chunk) -> Option<&ArrayD<Self>>;
    /// Takes the typed array out if the chunk holds this type.
    fn take(chunk: Chunk) -> std::result::Result<ArrayD<Self>, Chunk>;
    /// Wraps a typed array in a chunk.
    fn wrap(array: ArrayD<Self>) -> Chunk;
    /// The value as f64 (bool is 0/1; lossy for 64-bit integers beyond 2^53).
    fn to_f64(self) -> f64;
    /// Converts from f64 with Rust `as` semantics (truncating, saturating, NaN to 0).
    fn from_f64(v: f64) -> Self;
    /// Converts from a scalar with `as` semantics.
    fn from_scalar(s: Scalar) -> Self;
    /// The value as a scalar.
    fn to_scalar(self) -> Scalar;
    /// True for a float NaN.
    fn is_nan(self) -> bool;
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $is_nan:expr, $to_scalar:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn view(chunk: &Chunk) -> Option<&ArrayD<Self>> {
                match chunk {
                    Chunk::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn take(chunk: Chunk) -> std::result::Result<ArrayD<Self>, Chunk> {
                match chunk {
                    Chunk::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
            fn wrap(array: ArrayD<Self>) -> Chunk {
                Chunk::$variant(array)
            }
            #[allow(clippy::cast_lossless)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[allow(clippy::cast_lossless)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_scalar(s: Scalar) -> Self {
                match s {
                    Scalar::Bool(b) => u8::from(b) as $t,
                    Scalar::Int(i) => i as $t,
                    Scalar::UInt(u) => u as $t,
                    Scalar::Float(f) => f as $t,
                }
            }
            fn to_scalar(self) -> Scalar {
                let f: fn($t) -> Scalar = $to_scalar;
                f(self)
            }
            fn is_nan(self) -> bool {
                let f: fn($t) -> bool = $is_nan;
                f(self)
            }
        }
    };
}

impl_element!(i8, I8, |_| false, |v| Scalar::Int(i64::from(v)));
impl_element!(i16, I16, |_| false, |v| Scalar::Int(i64::from(v)));
impl_element!(i32, I32, |_| false, |v| Scalar::Int(i64::from(v)));
impl_element!(i64, I64, |_| false, Scalar::Int);
impl_element!(u8, U8, |_| false, |v| Scalar::Int(i64::from(v)));
impl_element!(u16, U16, |_| false, |v| Scalar::Int(i64::from(v)));
impl_element!(u32, U32, |_| false, |v| Scalar::Int(i64::from(v)));
impl_element!(u64, U64, |_| false, |v| match i64::try_from(v) {
    Ok(i) => Scalar::Int(i),
    Err(_) => Scalar::UInt(v),
});
impl_element!(f32, F32, f32::is_nan, |v| Scalar::Float(f64::from(v)));
impl_element!(f64, F64, f64::is_nan, Scalar::Float);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn view(chunk: &Chunk) -> Option<&ArrayD<Self>> {
        match chunk {
            Chunk::Bool(a) => Some(a),
            _ => None,
        }
    }
    fn take(chunk: Chunk) -> std::result::Result<ArrayD<Self>, Chunk> {
        match chunk {
            Chunk::Bool(a) => Ok(a),
            other => Err(other),
        }
    }
    fn wrap(array: ArrayD<Self>) -> Chunk {
        Chunk::Bool(array)
    }
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn from_scalar(s: Scalar) -> Self {
        match s {
            Scalar::Bool(b) => b,
            Scalar::Int(i) => i != 0,
            Scalar::UInt(u) => u != 0,
            Scalar::Float(f) => f != 0.0,
        }
    }
    fn to_scalar(self) -> Scalar {
        Scalar::Bool(self)
    }
    fn is_nan(self) -> bool {
        false
    }
}

/// Converts one element type into another with NumPy `astype` semantics.
pub trait CastFrom<T> {
    /// The converted value.
    fn cast_from(v: T) -> Self;
}

macro_rules! impl_cast_numeric {
    ($($t:ty),*) => {
        impl_cast_numeric!(@outer [$($t),*] [$($t),*]);
    };
    (@outer [$($src:ty),*] $dsts:tt) => {
        $( impl_cast_numeric!(@inner $src, $dsts); )*
    };
    (@inner $src:ty, [$($dst:ty),*]) => {
        $(
            impl CastFrom<$src> for $dst {
                #[inline(always)]
                #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
                fn cast_from(v: $src) -> $dst { v as $dst }
            }
        )*
        impl CastFrom<$src> for bool {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast_from(v: $src) -> bool { v != (0 as $src) }
        }
        impl CastFrom<bool> for $src {
            #[inline(always)]
            fn cast_from(v: bool) -> $src { u8::from(v) as $src }
        }
    };
}
impl_cast_numeric!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

impl CastFrom<bool> for bool {
    #[inline(always)]
    fn cast_from(v: bool) -> bool {
        v
    }
}

fn cast_array<S: Copy, D: CastFrom<S>>(a: &ArrayD<S>) -> ArrayD<D> {
    a.mapv(D::cast_from)
}

impl Chunk {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            Chunk::Bool(_) => DType::Bool,
            Chunk::I8(_) => DType::I8,
            Chunk::I16(_) => DType::I16,
            Chunk::I32(_) => DType::I32,
            Chunk::I64(_) => DType::I64,
            Chunk::U8(_) => DType::U8,
            Chunk::U16(_) => DType::U16,
            Chunk::U32(_) => DType::U32,
            Chunk::U64(_) => DType::U64,
            Chunk::F32(_) => DType::F32,
            Chunk::F64(_) => DType::F64,
        }
    }

    /// The shape of the block.
    pub fn shape(&self) -> &[usize] {
        with_chunk!(self, a => a.shape())
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_chunk!(self, a => a.len())
    }

    /// True when the block has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the elements.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// A block of `shape` filled with `value` converted to `dtype`.
    ///
    /// ```
    /// use gridflow_array::{Chunk, DType, Scalar};
    /// let c = Chunk::full(&[2, 3], Scalar::Float(1.5), DType::F32);
    /// assert_eq!(c.dtype(), DType::F32);
    /// assert_eq!(c.shape(), &[2, 3]);
    /// ```
    pub fn full(shape: &[usize], value: Scalar, dtype: DType) -> Chunk {
        fn make<T: Element>(shape: &[usize], v: Scalar) -> Chunk {
            T::wrap(ArrayD::from_elem(IxDyn(shape), T::from_scalar(v)))
        }
        dispatch_dtype!(dtype, T => make::<T>(shape, value))
    }

    /// A block from a flat vector of f64 values converted to `dtype`.
    pub fn from_f64_vec(shape: &[usize], values: Vec<f64>, dtype: DType) -> Result<Chunk> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(ArrayError::Shape {
                op: "from_f64_vec".into(),
                detail: format!("{} values do not fill shape {shape:?}", values.len()),
            });
        }
        let a = ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| ArrayError::Shape {
            op: "from_f64_vec".into(),
            detail: e.to_string(),
        })?;
        Ok(Chunk::F64(a).astype(dtype))
    }

    /// Converts to another dtype with NumPy `astype` semantics (float to int truncates).
    pub fn astype(&self, dtype: DType) -> Chunk {
        if self.dtype() == dtype {
            return self.clone();
        }
        fn to<D>(c: &Chunk) -> Chunk
        where
            D: Element
                + CastFrom<bool>
                + CastFrom<i8>
                + CastFrom<i16>
                + CastFrom<i32>
                + CastFrom<i64>
                + CastFrom<u8>
                + CastFrom<u16>
                + CastFrom<u32>
                + CastFrom<u64>
                + CastFrom<f32>
                + CastFrom<f64>,
        {
            D::wrap(with_chunk!(c, a => cast_array::<_, D>(a)))
        }
        dispatch_dtype!(dtype, T => to::<T>(self))
    }

    /// Converts to another dtype, consuming self (no copy when the dtype already matches).
    pub fn into_dtype(self, dtype: DType) -> Chunk {
        if self.dtype() == dtype {
            self
        } else {
            self.astype(dtype)
        }
    }

    /// The elements as f64 in logical (row-major) order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_chunk!(self, a => a.iter().map(|v| v.to_f64()).collect())
    }

    /// The single element of a 0-d (or one-element) block.
    pub fn scalar(&self) -> Option<Scalar> {
        if self.len() != 1 {
            return None;
        }
        with_chunk!(self, a => a.iter().next().map(|v| v.to_scalar()))
    }

    /// Borrows the typed array.
    pub fn as_array<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::view(self)
    }

    /// Reshapes to a shape with the same number of elements (copying only if not contiguous).
    pub fn reshape(&self, shape: &[usize]) -> Result<Chunk> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(ArrayError::Shape {
                op: "reshape".into(),
                detail: format!(
                    "cannot reshape block of shape {:?} to {shape:?}",
                    self.shape()
                ),
            });
        }
        Ok(map_chunk!(self, a => {
            let std = a.as_standard_layout();
            std.into_owned()
                .into_shape_with_order(IxDyn(shape))
                .map_err(|e| ArrayError::Shape { op: "reshape".into(), detail: e.to_string() })?
        }))
    }
}

/// Runs `$body` with the type alias `$t` set to the Rust element type of `$dtype`.
#[macro_export]
macro_rules! dispatch_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Bool => {
                type $t = bool;
                $body
            }
            $crate::DType::I8 => {
                type $t = i8;
                $body
            }
            $crate::DType::I16 => {
                type $t = i16;
                $body
            }
            $crate::DType::I32 => {
                type $t = i32;
                $body
            }
            $crate::DType::I64 => {
                type $t = i64;
                $body
            }
            $crate::DType::U8 => {
                type $t = u8;
                $body
            }
            $crate::DType::U16 => {
                type $t = u16;
                $body
            }
            $crate::DType::U32 => {
                type $t = u32;
                $body
            }
            $crate::DType::U64 => {
                type $t = u64;
                $body
            }
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}
pub(crate) use dispatch_dtype;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn astype_truncates_and_saturates_like_numpy() {
        let c = Chunk::from_f64_vec(&[4], vec![1.9, -1.9, 300.0, f64::NAN], DType::F64).unwrap();
        let i = c.astype(DType::I32);
        assert_eq!(i.to_f64_vec(), vec![1.0, -1.0, 300.0, 0.0]);
        let b = c.astype(DType::Bool);
        assert_eq!(b.to_f64_vec(), vec![1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn full_and_scalar() {
        let c = Chunk::full(&[], Scalar::Int(7), DType::U8);
        assert_eq!(c.scalar(), Some(Scalar::Int(7)));
        assert_eq!(c.nbytes(), 1);
    }
}
