//! Data types and NumPy's type-promotion rules.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The element type of a chunk, named as NumPy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// `bool`
    Bool,
    /// `int8`
    I8,
    /// `int16`
    I16,
    /// `int32`
    I32,
    /// `int64`
    I64,
    /// `uint8`
    U8,
    /// `uint16`
    U16,
    /// `uint32`
    U32,
    /// `uint64`
    U64,
    /// `float32`
    F32,
    /// `float64`
    F64,
}

/// All dtypes, in a fixed order (handy for tests and parsing).
pub const ALL_DTYPES: [DType; 11] = [
    DType::Bool,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F32,
    DType::F64,
];

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// True for `float32` and `float64`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for the signed integer types.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// True for the unsigned integer types.
    pub fn is_unsigned_int(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }

    /// True for any integer type (not bool).
    pub fn is_int(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    /// NumPy's name for the dtype (`"float32"`, `"int16"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Parses NumPy names (`"float32"`, `"f4"`, `"<f4"`, `"i2"`, `"bool"`, `"|b1"`...).
    ///
    /// ```
    /// use gridflow_array::DType;
    /// assert_eq!(DType::parse("<f4"), Some(DType::F32));
    /// assert_eq!(DType::parse("int16"), Some(DType::I16));
    /// ```
    pub fn parse(s: &str) -> Option<DType> {
        let t = s.trim_start_matches(['<', '>', '|', '=']);
        Some(match t {
            "bool" | "b1" | "?" => DType::Bool,
            "int8" | "i1" => DType::I8,
            "int16" | "i2" => DType::I16,
            "int32" | "i4" => DType::I32,
            "int64" | "i8" | "int" => DType::I64,
            "uint8" | "u1" => DType::U8,
            "uint16" | "u2" => DType::U16,
            "uint32" | "u4" => DType::U32,
            "uint64" | "u8" => DType::U64,
            "float32" | "f4" => DType::F32,
            "float64" | "f8" | "float" => DType::F64,
            _ => return None,
        })
    }

    /// The smallest signed integer type holding every value of `self` (a signed or
    /// unsigned integer type), or `None` when only float64 would do (uint64).
    fn signed_container(self) -> Option<DType> {
        Some(match self {
            DType::U8 => DType::I16,
            DType::U16 => DType::I32,
            DType::U32 => DType::I64,
            DType::U64 => return None,
            other => other,
        })
    }

    /// The float type that holds every value of an integer or bool type, as NumPy picks it.
    fn float_container(self) -> DType {
        match self {
            DType::Bool | DType::I8 | DType::U8 | DType::I16 | DType::U16 => DType::F32,
            DType::F32 => DType::F32,
            _ => DType::F64,
        }
    }

    /// The float type a ufunc such as `sqrt` or `exp` produces for this input: floats keep
    /// their type, 8- and 16-bit integers give float32 (NumPy's float16 is not supported),
    /// wider integers float64.
    pub fn ufunc_float(self) -> DType {
        if self.is_float() {
            self
        } else {
            self.float_container()
        }
    }

    /// The dtype of `mean`, `var` and `std` (float64 for integers, as NumPy).
    pub fn mean_dtype(self) -> DType {
        if self.is_float() { self } else { DType::F64 }
    }

    /// The dtype of `sum` and `prod` (int64/uint64 for integers and bool, as NumPy on 64-bit).
    pub fn sum_dtype(self) -> DType {
        match self {
            DType::Bool | DType::I8 | DType::I16 | DType::I32 | DType::I64 => DType::I64,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => DType::U64,
            f => f,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// NumPy's `result_type` for two array dtypes.
///
/// ```
/// use gridflow_array::{promote, DType};
/// assert_eq!(promote(DType::U8, DType::I8), DType::I16);
/// assert_eq!(promote(DType::I32, DType::F32), DType::F64);
/// assert_eq!(promote(DType::I16, DType::F32), DType::F32);
/// assert_eq!(promote(DType::U64, DType::I64), DType::F64);
/// ```
pub fn promote(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    match (a, b) {
        (Bool, x) | (x, Bool) => x,
        (F64, _) | (_, F64) => F64,
        (F32, x) | (x, F32) => x.float_container(),
        _ => {
            // Both integers.
            let (sa, sb) = (a.is_signed_int(), b.is_signed_int());
            if sa == sb {
                return if a.size() >= b.size() { a } else { b };
            }
            let (s, u) = if sa { (a, b) } else { (b, a) };
            match u.signed_container() {
                None => F64,
                Some(uc) => {
                    if s.size() >= uc.size() {
                        s
                    } else {
                        uc
                    }
                }
            }
        }
    }
}

/// A single value: a fill value, an operand in `x + 1.5`, or the result of a full reduction.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// A signed integer (Python `int`).
    Int(i64),
    /// An unsigned integer beyond `i64::MAX`.
    UInt(u64),
    /// A float (Python `float`).
    Float(f64),
}

impl Scalar {
    /// The value as f64 (lossy for huge integers).
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::Int(i) => i as f64,
            Scalar::UInt(u) => u as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The dtype NumPy gives this value as a standalone array.
    pub fn natural_dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::UInt(_) => DType::U64,
            Scalar::Float(_) => DType::F64,
        }
    }

    /// NumPy 2 (NEP 50) promotion of an array of dtype `array` with this Python scalar:
    /// the scalar is "weak" and takes the array's kind where it fits.
    ///
    /// ```
    /// use gridflow_array::{DType, Scalar};
    /// assert_eq!(Scalar::Float(2.0).promote_with(DType::F32), DType::F32);
    /// assert_eq!(Scalar::Float(2.0).promote_with(DType::I16), DType::F64);
    /// assert_eq!(Scalar::Int(2).promote_with(DType::U8), DType::U8);
    /// ```
    pub fn promote_with(self, array: DType) -> DType {
        match self {
            Scalar::Bool(_) => array,
            Scalar::Int(_) | Scalar::UInt(_) => {
                if array == DType::Bool {
                    DType::I64
                } else {
                    array
                }
            }
            Scalar::Float(_) => {
                if array.is_float() {
                    array
                } else {
                    DType::F64
                }
            }
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::UInt(u) => write!(f, "{u}"),
            Scalar::Float(x) => write!(f, "{x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_matches_numpy_table() {
        use DType::*;
        // Values from numpy.result_type.
        let cases = [
            (Bool, I8, I8),
            (U8, I8, I16),
            (U16, I16, I32),
            (U32, I32, I64),
            (U32, I64, I64),
            (U64, I8, F64),
            (I8, F32, F32),
            (U16, F32, F32),
            (I32, F32, F64),
            (U32, F32, F64),
            (I64, F32, F64),
            (F32, F64, F64),
            (U8, U32, U32),
            (I16, I64, I64),
            (Bool, F32, F32),
        ];
        for (a, b, want) in cases {
            assert_eq!(promote(a, b), want, "{a} + {b}");
            assert_eq!(promote(b, a), want, "{b} + {a}");
        }
    }

    #[test]
    fn parse_round_trips_names() {
        for d in ALL_DTYPES {
            assert_eq!(DType::parse(d.name()), Some(d));
        }
        assert_eq!(DType::parse("<c16"), None);
    }
}
