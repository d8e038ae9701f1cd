//! Alignment, broadcasting and the reshaping operations of data arrays and datasets, checked
//! against values worked out by hand on small arrays.
#![allow(clippy::unwrap_used)]

use gridflow_array::kernels::BinaryOp;
use gridflow_array::{Chunk, ChunkedArray, DType, LocalExecutor};
use gridflow_dataset::{Coords, DataArray, Dataset, IndexSel, Reduction, Variable};
use indexmap::IndexMap;

fn array(
    dims: &[&str],
    shape: &[usize],
    values: Vec<f64>,
    coords: &[(&str, Vec<f64>)],
) -> DataArray {
    let chunk = Chunk::from_f64_vec(shape, values, DType::F64).unwrap();
    let chunks: Vec<usize> = shape.iter().map(|&s| s.div_ceil(2).max(1)).collect();
    let data = ChunkedArray::from_chunk(chunk, chunks).unwrap();
    let mut c = Coords::new();
    for (name, v) in coords {
        c.insert(
            (*name).to_owned(),
            Variable::from_f64(name, v.clone()).unwrap(),
        );
    }
    DataArray::new(Variable::new(dims.to_vec(), data).unwrap(), c, Some("x")).unwrap()
}

fn vals(da: &DataArray) -> Vec<f64> {
    da.compute_with(&LocalExecutor::threads(2))
        .unwrap()
        .to_f64_vec()
        .unwrap()
}

#[test]
fn arithmetic_inner_joins_labels_and_broadcasts_new_dims() {
    // a: lat [0, 10, 20, 30]; b: lat [10, 20, 30, 40] and a new dim "t"
    let a = array(
        &["lat"],
        &[4],
        vec![1.0, 2.0, 3.0, 4.0],
        &[("lat", vec![0.0, 10.0, 20.0, 30.0])],
    );
    let b = array(
        &["t", "lat"],
        &[2, 4],
        vec![10.0, 20.0, 30.0, 40.0, 100.0, 200.0, 300.0, 400.0],
        &[("lat", vec![10.0, 20.0, 30.0, 40.0]), ("t", vec![0.0, 1.0])],
    );
    let s = a.binary(BinaryOp::Add, &b).unwrap();
    // dims: a's, then b's new ones; labels: the common ones in a's order
    assert_eq!(s.dims(), ["lat", "t"]);
    assert_eq!(
        s.coord("lat").unwrap().to_f64_vec().unwrap(),
        vec![10.0, 20.0, 30.0]
    );
    // lat=10: a=2, b=(10, 100); lat=20: a=3, b=(20, 200); lat=30: a=4, b=(30, 300)
    assert_eq!(vals(&s), vec![12.0, 102.0, 23.0, 203.0, 34.0, 304.0]);
    // mismatched sizes without labels are an error naming the dimension
    let c = array(&["lat"], &[3], vec![1.0, 2.0, 3.0], &[]);
    let d = array(&["lat"], &[4], vec![1.0, 2.0, 3.0, 4.0], &[]);
    let e = c.binary(BinaryOp::Add, &d).unwrap_err().to_string();
    assert!(
        e.contains("\"lat\"") && e.contains('3') && e.contains('4'),
        "{e}"
    );
}

#[test]
fn concat_merge_and_reshaping() {
    let a = array(
        &["time", "x"],
        &[2, 2],
        vec![1.0, 2.0, 3.0, 4.0],
        &[("time", vec![0.0, 1.0])],
    );
    let b = array(
        &["time", "x"],
        &[1, 2],
        vec![5.0, 6.0],
        &[("time", vec![2.0])],
    );
    let c = DataArray::concat(&[a.clone(), b], "time", None).unwrap();
    assert_eq!(c.shape(), [3, 2]);
    assert_eq!(
        c.coord("time").unwrap().to_f64_vec().unwrap(),
        vec![0.0, 1.0, 2.0]
    );
    assert_eq!(vals(&c), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let members = Variable::from_strings("member", vec!["r1".into(), "r2".into()]).unwrap();
    let n = DataArray::concat(&[a.clone(), a.clone()], "member", Some(members)).unwrap();
    assert_eq!(n.dims(), ["member", "time", "x"]);
    assert_eq!(n.indexes()["member"].label_string(1), "r2");

    let t = a.transpose(&["x", "time"]).unwrap();
    assert_eq!(vals(&t), vec![1.0, 3.0, 2.0, 4.0]);
    assert!(a.transpose(&["x"]).is_err());
    let e = a.expand_dims("level").unwrap();
    assert_eq!(e.shape(), [1, 2, 2]);
    assert_eq!(e.squeeze(None).unwrap().dims(), ["time", "x"]);
    assert!(
        a.squeeze(Some("x"))
            .unwrap_err()
            .to_string()
            .contains("length 2")
    );
    let r = a.rename_dims(&[("x", "lon")]).unwrap();
    assert_eq!(r.dims(), ["time", "lon"]);
    let ch = a.chunk(&[("time", 1)]).unwrap();
    assert_eq!(ch.data().chunks()[0], vec![1, 1]);
    let p = a.persist_with(&LocalExecutor::threads(2)).unwrap();
    assert_eq!(vals(&p), vals(&a));
    let with = a
        .assign_coords(&[("x", Variable::from_f64("x", vec![5.0, 7.0]).unwrap())])
        .unwrap();
    let picked = with
        .sel(
            &[(
                "x",
                gridflow_dataset::Selector::Label(gridflow_dataset::Label::Float(7.0)),
            )],
            &Default::default(),
        )
        .unwrap();
    assert_eq!(vals(&picked), vec![2.0, 4.0]);
    assert!(
        a.assign_coords(&[("x", Variable::from_f64("x", vec![1.0]).unwrap())])
            .is_err()
    );

    // datasets: merge unions variables, rejects conflicting labels
    let ds1 = Dataset::from_dataarray(&a).unwrap();
    let mut v2 = IndexMap::new();
    v2.insert("y".to_owned(), a.variable().clone());
    let ds2 = Dataset::new(v2, a.coords().clone(), Default::default()).unwrap();
    let m = Dataset::merge(&[ds1.clone(), ds2]).unwrap();
    assert_eq!(m.data_vars().keys().collect::<Vec<_>>(), ["x", "y"]);
    let shifted = a
        .assign_coords(&[("time", Variable::from_f64("time", vec![5.0, 6.0]).unwrap())])
        .unwrap();
    let err =
        Dataset::merge(&[ds1.clone(), Dataset::from_dataarray(&shifted).unwrap()]).unwrap_err();
    assert!(err.to_string().contains("time"), "{err}");
    let renamed = ds1.rename(&[("x", "tas")]).unwrap();
    assert!(renamed.get("tas").is_ok());
    assert!(ds1.rename(&[("nope", "a")]).is_err());
    let red = ds1.reduce(Reduction::Sum, Some(&["time"]), None).unwrap();
    assert_eq!(vals(&red.get("x").unwrap()), vec![4.0, 6.0]);
    let sel = ds1.isel(&[("time", IndexSel::Int(-1))]).unwrap();
    assert_eq!(vals(&sel.get("x").unwrap()), vec![3.0, 4.0]);
}

#[test]
fn groupby_on_a_plain_coordinate() {
    // groups by the values of a non-time coordinate, sorted
    let a = array(
        &["station"],
        &[5],
        vec![1.0, 2.0, 3.0, 4.0, 5.0],
        &[("station", vec![0.0, 1.0, 2.0, 3.0, 4.0])],
    );
    let region = Variable::from_strings(
        "station",
        ["b", "a", "b", "a", "c"].map(String::from).to_vec(),
    )
    .unwrap();
    let a = a.assign_coords(&[("region", region)]).unwrap();
    let g = a
        .groupby("region")
        .unwrap()
        .reduce(Reduction::Sum, None)
        .unwrap();
    assert_eq!(g.dims(), ["region"]);
    assert_eq!(g.indexes()["region"].label_string(0), "a");
    assert_eq!(vals(&g), vec![6.0, 4.0, 5.0]);
    let m = a
        .groupby("region")
        .unwrap()
        .reduce(Reduction::Median, None)
        .unwrap();
    assert_eq!(vals(&m), vec![3.0, 2.0, 5.0]);
}
