//! Arithmetic on Python scalars (`int`, `float`, `bool`) as Python does it, except that
//! gridflow's ints are 64-bit: where Python would grow a big integer, this is an overflow
//! error naming the operation, never a wrapped value. Division by zero is an error
//! (Python's `ZeroDivisionError`); arrays keep NumPy's semantics elsewhere (inf/NaN, 0 for
//! integer `//` and `%`).

use gridflow_array::kernels::BinaryOp as Op;

/// A Python number; `bool` counts as an `int` (as in Python) but remembers it was one, so
/// `True & False` stays a bool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    /// `True` / `False`.
    Bool(bool),
    /// An `int` (64-bit here).
    Int(i64),
    /// A `float`.
    Float(f64),
}

impl Num {
    fn int(self) -> Option<i64> {
        match self {
            Num::Bool(b) => Some(i64::from(b)),
            Num::Int(i) => Some(i),
            Num::Float(_) => None,
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Bool(b) => f64::from(u8::from(b)),
            // Python rounds big ints to the nearest float too.
            Num::Int(i) => i as f64,
            Num::Float(x) => x,
        }
    }
}

/// What `a op b` gives for two Python scalars, or the error message Python's exception
/// would carry (prefixed with its name).
pub fn binary(op: Op, a: Num, b: Num) -> Result<Num, String> {
    if let (Num::Bool(x), Num::Bool(y)) = (a, b) {
        match op {
            Op::And => return Ok(Num::Bool(x & y)),
            Op::Or => return Ok(Num::Bool(x | y)),
            Op::Xor => return Ok(Num::Bool(x ^ y)),
            _ => {}
        }
    }
    if let Some(c) = compare(op, a, b) {
        return Ok(Num::Bool(c));
    }
    match (a.int(), b.int()) {
        (Some(x), Some(y)) => int_binary(op, x, y),
        _ => float_binary(op, a.float(), b.float()),
    }
}

fn compare(op: Op, a: Num, b: Num) -> Option<bool> {
    let ord = match (a.int(), b.int()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.float().partial_cmp(&b.float()),
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    Some(match op {
        Op::Eq => ord == Some(Equal),
        Op::Ne => ord != Some(Equal),
        Op::Lt => ord == Some(Less),
        Op::Le => matches!(ord, Some(Less | Equal)),
        Op::Gt => ord == Some(Greater),
        Op::Ge => matches!(ord, Some(Greater | Equal)),
        _ => return None,
    })
}

fn overflow(x: i64, op: &str, y: i64) -> String {
    format!(
        "OverflowError: {x} {op} {y} does not fit in a 64-bit integer (gridflow's ints are \
         64-bit; use a float, e.g. {x}.0 {op} {y})"
    )
}

fn int_binary(op: Op, x: i64, y: i64) -> Result<Num, String> {
    let checked = |r: Option<i64>, sym: &str| r.map(Num::Int).ok_or_else(|| overflow(x, sym, y));
    match op {
        Op::Add => checked(x.checked_add(y), "+"),
        Op::Sub => checked(x.checked_sub(y), "-"),
        Op::Mul => checked(x.checked_mul(y), "*"),
        Op::Div => {
            if y == 0 {
                return Err("ZeroDivisionError: division by zero".into());
            }
            Ok(Num::Float(x as f64 / y as f64))
        }
        Op::FloorDiv => {
            if y == 0 {
                return Err("ZeroDivisionError: integer division or modulo by zero".into());
            }
            let q = x.checked_div(y).ok_or_else(|| overflow(x, "//", y))?;
            // Rust truncates; Python floors.
            let floor = x.checked_rem(y).is_some_and(|r| r != 0) && ((x < 0) != (y < 0));
            checked(if floor { q.checked_sub(1) } else { Some(q) }, "//")
        }
        Op::Mod => {
            if y == 0 {
                return Err("ZeroDivisionError: integer modulo by zero".into());
            }
            // i64::MIN % -1 overflows in Rust; it is 0.
            let r = x.checked_rem(y).unwrap_or(0);
            // r and y have opposite signs here, so the sum cannot overflow.
            Ok(Num::Int(if r != 0 && ((r < 0) != (y < 0)) {
                r.wrapping_add(y)
            } else {
                r
            }))
        }
        Op::Pow => {
            if y < 0 {
                if x == 0 {
                    return Err(
                        "ZeroDivisionError: 0.0 cannot be raised to a negative power".into(),
                    );
                }
                // A negative exponent gives a float, as in Python.
                return float_binary(Op::Pow, x as f64, y as f64);
            }
            let r = match (x, u32::try_from(y)) {
                (0 | 1, _) => Some(if y == 0 { 1 } else { x }),
                (-1, _) => Some(if y % 2 == 0 { 1 } else { -1 }),
                (_, Ok(e)) => x.checked_pow(e),
                (_, Err(_)) => None,
            };
            checked(r, "**")
        }
        Op::And => Ok(Num::Int(x & y)),
        Op::Or => Ok(Num::Int(x | y)),
        Op::Xor => Ok(Num::Int(x ^ y)),
        other => Err(format!(
            "TypeError: {} does not apply to numbers",
            other.name()
        )),
    }
}

/// Python's float `//` and `%` (Objects/floatobject.c `_float_div_mod`): the remainder has
/// the divisor's sign and the quotient is rounded so that `q * y + r == x` closely.
fn float_div_mod(x: f64, y: f64) -> (f64, f64) {
    let mut m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(y);
    }
    let q = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 { f + 1.0 } else { f }
    } else {
        0.0f64.copysign(x / y)
    };
    (q, m)
}

fn float_binary(op: Op, x: f64, y: f64) -> Result<Num, String> {
    Ok(Num::Float(match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
        Op::Div => {
            if y == 0.0 {
                return Err("ZeroDivisionError: float division by zero".into());
            }
            x / y
        }
        Op::FloorDiv => {
            if y == 0.0 {
                return Err("ZeroDivisionError: float floor division by zero".into());
            }
            float_div_mod(x, y).0
        }
        Op::Mod => {
            if y == 0.0 {
                return Err("ZeroDivisionError: float modulo by zero".into());
            }
            float_div_mod(x, y).1
        }
        Op::Pow => {
            if x == 0.0 && y < 0.0 {
                return Err("ZeroDivisionError: 0.0 cannot be raised to a negative power".into());
            }
            if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
                return Err(format!(
                    "ValueError: {x} ** {y} is a complex number, which gridflow does not support"
                ));
            }
            let r = x.powf(y);
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                return Err(format!(
                    "OverflowError: {x} ** {y} is out of the float range"
                ));
            }
            r
        }
        other => {
            return Err(format!(
                "TypeError: {} does not apply to floats",
                other.name()
            ));
        }
    }))
}

/// `-a` as Python does it (`-True` is `-1`; `-(-2**63)` overflows).
pub fn neg(a: Num) -> Result<Num, String> {
    match a {
        Num::Float(x) => Ok(Num::Float(-x)),
        other => {
            let i = other.int().unwrap_or(0);
            i.checked_neg()
                .map(Num::Int)
                .ok_or_else(|| format!("OverflowError: -({i}) does not fit in a 64-bit integer"))
        }
    }
}

/// `~a`: bitwise inversion of an int (`~True` is `-2`, as in Python); floats have none.
pub fn invert(a: Num) -> Result<Num, String> {
    match a.int() {
        Some(i) => Ok(Num::Int(!i)),
        None => Err("TypeError: bad operand type for unary ~: 'float'".into()),
    }
}

/// Python's truth value of a number.
pub fn truthy(a: Num) -> bool {
    match a {
        Num::Bool(b) => b,
        Num::Int(i) => i != 0,
        Num::Float(x) => x != 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Num::{Bool, Float, Int};

    fn ok(op: Op, a: Num, b: Num) -> Num {
        binary(op, a, b).unwrap_or_else(|e| panic!("{op:?} {a:?} {b:?}: {e}"))
    }

    fn error(op: Op, a: Num, b: Num) -> String {
        match binary(op, a, b) {
            Ok(v) => panic!("{op:?} {a:?} {b:?} gave {v:?}"),
            Err(e) => e,
        }
    }

    // Expected values are what CPython 3.11 prints for the same expressions.
    #[test]
    fn integers_follow_python_and_overflow_is_an_error() {
        assert_eq!(ok(Op::FloorDiv, Int(-7), Int(2)), Int(-4));
        assert_eq!(ok(Op::Mod, Int(-7), Int(2)), Int(1));
        assert_eq!(ok(Op::Mod, Int(7), Int(-2)), Int(-1));
        assert_eq!(ok(Op::Mod, Int(i64::MIN), Int(-1)), Int(0));
        assert_eq!(ok(Op::Pow, Int(2), Int(10)), Int(1024));
        assert_eq!(ok(Op::Pow, Int(2), Int(-1)), Float(0.5));
        assert_eq!(ok(Op::Pow, Int(-1), Int(i64::MAX)), Int(-1));
        assert_eq!(ok(Op::Pow, Int(2), Int(62)), Int(1 << 62));
        assert_eq!(ok(Op::Div, Int(1), Int(2)), Float(0.5));
        assert_eq!(ok(Op::Add, Bool(true), Int(1)), Int(2));
        assert_eq!(ok(Op::And, Bool(true), Bool(false)), Bool(false));
        assert_eq!(ok(Op::Xor, Int(6), Int(3)), Int(5));
        assert_eq!(ok(Op::Lt, Int(i64::MAX - 1), Int(i64::MAX)), Bool(true));
        for (op, a, b) in [
            (Op::Add, i64::MAX, 1),
            (Op::Sub, i64::MIN, 1),
            (Op::Mul, 1 << 32, 1 << 32),
            (Op::Pow, 2, 64),
            (Op::Pow, 3, 1 << 40),
            (Op::FloorDiv, i64::MIN, -1),
        ] {
            assert!(
                error(op, Int(a), Int(b)).starts_with("OverflowError"),
                "{op:?}"
            );
        }
        assert!(neg(Int(i64::MIN)).is_err());
        assert_eq!(invert(Bool(true)), Ok(Int(-2)));
    }

    #[test]
    fn division_by_zero_is_python_zero_division_error() {
        let cases = [
            (Op::Div, Int(1), Int(0), "division by zero"),
            (
                Op::FloorDiv,
                Int(1),
                Int(0),
                "integer division or modulo by zero",
            ),
            (Op::Mod, Int(1), Int(0), "integer modulo by zero"),
            (
                Op::Pow,
                Int(0),
                Int(-1),
                "0.0 cannot be raised to a negative power",
            ),
            (Op::Div, Float(1.0), Int(0), "float division by zero"),
            (
                Op::FloorDiv,
                Float(1.0),
                Int(0),
                "float floor division by zero",
            ),
            (Op::Mod, Float(1.0), Float(0.0), "float modulo"),
            (
                Op::Pow,
                Float(0.0),
                Float(-1.0),
                "0.0 cannot be raised to a negative power",
            ),
        ];
        for (op, a, b, message) in cases {
            let e = error(op, a, b);
            assert!(e.starts_with("ZeroDivisionError: "), "{e}");
            assert!(e.contains(message), "{e}");
        }
    }

    #[test]
    fn floats_follow_python() {
        assert_eq!(ok(Op::FloorDiv, Float(-7.5), Int(2)), Float(-4.0));
        assert_eq!(ok(Op::Mod, Float(-7.5), Int(2)), Float(0.5));
        assert_eq!(ok(Op::FloorDiv, Float(5.0), Float(0.1)), Float(49.0));
        assert_eq!(ok(Op::Mul, Float(1e308), Int(10)), Float(f64::INFINITY));
        let Float(q) = ok(Op::FloorDiv, Float(f64::INFINITY), Int(1)) else {
            panic!("a float")
        };
        assert!(q.is_nan());
        assert!(error(Op::Pow, Float(10.0), Float(400.0)).starts_with("OverflowError"));
        assert!(error(Op::Pow, Int(-8), Float(0.5)).contains("complex"));
        assert_eq!(ok(Op::Eq, Int(1), Float(1.0)), Bool(true));
        assert_eq!(ok(Op::Ne, Float(f64::NAN), Float(f64::NAN)), Bool(true));
    }
}
