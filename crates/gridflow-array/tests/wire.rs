//! Array values across processes (`WireValue`): every dtype, transposed blocks and
//! reduction partials come back equal; malformed headers and bodies are errors, not panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_array::dtype::ALL_DTYPES;
use gridflow_array::kernels::reduce::Partial;
use gridflow_array::{Chunk, Value};
use gridflow_runtime::WireValue;
use ndarray::{ArrayD, IxDyn};

fn round_trip(v: &Value) -> Value {
    let mut header = Vec::new();
    v.write_header(&mut header);
    Value::from_parts(&header, v.body().into_owned()).unwrap()
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Chunk(x), Value::Chunk(y)) => x == y,
        (Value::Partial(x), Value::Partial(y)) => x == y,
        _ => false,
    }
}

#[test]
fn every_dtype_round_trips_with_its_shape() {
    for d in ALL_DTYPES {
        let values: Vec<f64> = (0..24).map(|i| f64::from(i % 3)).collect();
        let c = Chunk::from_f64_vec(&[2, 3, 4], values, d).unwrap();
        let v = Value::Chunk(c);
        let back = round_trip(&v);
        assert!(same(&v, &back), "{d:?}");
        // The body is the elements' memory: no per-element encoding.
        assert_eq!(v.body().len(), 24 * d.size(), "{d:?}");
    }
    let empty =
        Value::Chunk(Chunk::from_f64_vec(&[0, 5], vec![], gridflow_array::DType::F32).unwrap());
    assert!(same(&empty, &round_trip(&empty)));
}

#[test]
fn a_transposed_block_arrives_in_logical_order() {
    let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let t = a.reversed_axes();
    let v = Value::Chunk(Chunk::F64(t.clone()));
    match round_trip(&v) {
        Value::Chunk(Chunk::F64(b)) => assert_eq!(b, t),
        _ => panic!("not an f64 chunk"),
    }
}

#[test]
fn partials_round_trip() {
    let p = Partial::Mean {
        sum: ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![1.5, f64::NAN]).unwrap(),
        count: ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![3, 0]).unwrap(),
    };
    let v = Value::Partial(Box::new(p));
    let back = round_trip(&v);
    match (&v, &back) {
        (Value::Partial(a), Value::Partial(b)) => match (&**a, &**b) {
            (Partial::Mean { sum: s1, count: c1 }, Partial::Mean { sum: s2, count: c2 }) => {
                assert_eq!(c1, c2);
                assert_eq!(s1[[0, 0]], s2[[0, 0]]);
                assert!(s2[[0, 1]].is_nan());
            }
            _ => panic!("wrong partial"),
        },
        _ => panic!("not a partial"),
    }
}

#[test]
fn malformed_values_are_errors() {
    let v =
        Value::Chunk(Chunk::from_f64_vec(&[4], vec![1.0; 4], gridflow_array::DType::F64).unwrap());
    let mut header = Vec::new();
    v.write_header(&mut header);
    let body = v.body().into_owned();
    let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        (vec![], body.clone(), "empty value header"),
        (vec![9], body.clone(), "unknown value kind"),
        (
            vec![0, 200, 1, 4, 0, 0, 0, 0, 0, 0, 0],
            body.clone(),
            "unknown dtype",
        ),
        (header[..4].to_vec(), body.clone(), "shape bytes"),
        (header.clone(), body[..31].to_vec(), "needs 32 bytes"),
        (
            vec![0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0],
            vec![0, 7],
            "bool chunk holds the byte 7",
        ),
        (
            vec![
                0, 10, 2, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                255, 255,
            ],
            vec![],
            "too large",
        ),
        (vec![1, 0xff, 0xff], vec![], "partial reduction state"),
    ];
    for (h, b, want) in cases {
        let e = Value::from_parts(&h, b).map(|_| ()).unwrap_err();
        assert!(e.contains(want), "{want}: got {e}");
    }
}

fn f64s(shape: &[usize], v: Vec<f64>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

fn i64s(shape: &[usize], v: Vec<i64>) -> ArrayD<i64> {
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

#[test]
fn every_partial_round_trips_and_its_body_is_raw_memory() {
    let s = [2, 3];
    let chunk = |d| Chunk::from_f64_vec(&s, vec![1.0, 2.0, 0.0, 4.0, 5.0, 1.0], d).unwrap();
    let partials = vec![
        Partial::Sum(chunk(gridflow_array::DType::F64)),
        Partial::Prod(chunk(gridflow_array::DType::I64)),
        Partial::Mean {
            sum: f64s(&s, vec![1.0, 2.5, f64::INFINITY, 0.0, -1.0, 3.0]),
            count: i64s(&s, vec![1, 2, 3, 0, 5, 6]),
        },
        Partial::Moments {
            count: i64s(&s, vec![1, 2, 3, 4, 5, 6]),
            mean: f64s(&s, vec![0.5; 6]),
            m2: f64s(&s, vec![2.0; 6]),
        },
        Partial::Extreme(chunk(gridflow_array::DType::F32)),
        Partial::Count(i64s(&s, vec![7; 6])),
        Partial::Logical(
            ArrayD::from_shape_vec(IxDyn(&s), vec![true, false, true, true, false, false]).unwrap(),
        ),
        Partial::Arg {
            value: chunk(gridflow_array::DType::U16),
            index: i64s(&s, vec![-1, 0, 1, 2, 3, 4]),
        },
    ];
    for p in partials {
        let bytes = p.nbytes();
        let v = Value::Partial(Box::new(p));
        assert!(same(&v, &round_trip(&v)), "{v:?}");
        // Element bytes are the body (not serde-encoded into the header).
        assert_eq!(v.body().len(), bytes, "{v:?}");
        let mut header = Vec::new();
        v.write_header(&mut header);
        assert!(header.len() < 64, "{v:?}: header of {} bytes", header.len());
    }
}

#[test]
fn malformed_partials_are_errors() {
    let p = Partial::Mean {
        sum: f64s(&[2], vec![1.0, 2.0]),
        count: i64s(&[2], vec![1, 1]),
    };
    let v = Value::Partial(Box::new(p));
    let mut header = Vec::new();
    v.write_header(&mut header);
    let body = v.body().into_owned();
    let mut wrong_shape = header.clone();
    // The count array's only dimension: 2 -> 1 (with a body one element shorter).
    let at = wrong_shape.len() - 8;
    wrong_shape[at] = 1;
    let mut wrong_dtype = header.clone();
    wrong_dtype[3] = wrong_dtype[wrong_dtype.len() - 10];
    let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        (header.clone(), body[..20].to_vec(), "bytes"),
        (
            header.clone(),
            [body.clone(), vec![0]].concat(),
            "left over",
        ),
        (wrong_shape, body[..24].to_vec(), "shapes"),
        (wrong_dtype, body.clone(), "expected a float64 array"),
        (vec![1, 42, 0], vec![], "unknown partial variant"),
        (
            vec![1, 2, 1, 10, 1, 2, 0, 0, 0, 0, 0, 0, 0],
            vec![0; 16],
            "too few arrays",
        ),
        (vec![1, 2, 3], vec![], "header of array 0 missing"),
    ];
    for (h, b, want) in cases {
        let e = Value::from_parts(&h, b).map(|_| ()).unwrap_err();
        assert!(e.contains(want), "{want}: got {e}");
    }
}
