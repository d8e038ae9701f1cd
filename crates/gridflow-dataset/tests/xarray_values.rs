//! gridflow's labeled operations on the committed fixtures equal what xarray computes on the
//! same stores (`tests/fixtures/generate.py` writes both the stores and `expected.json`).
#![allow(clippy::unwrap_used, clippy::panic)]

use gridflow_array::kernels::BinaryOp;
use gridflow_array::{LocalExecutor, Scalar};
use gridflow_dataset::{
    DataArray, Dataset, IndexSel, Label, Method, OpenOptions, Reduction, SelOptions, Selector,
    ValueKind, open_zarr,
};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open(name: &str) -> Dataset {
    open_zarr(
        fixtures().join(name).to_str().unwrap(),
        &OpenOptions::default(),
    )
    .unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= rel * w.abs().max(1e-12);
        assert!(ok, "{what}[{i}]: gridflow {g} vs xarray {w}");
    }
}

fn values(da: &DataArray) -> Vec<f64> {
    da.compute_with(&LocalExecutor::threads(2))
        .unwrap()
        .to_f64_vec()
        .unwrap()
}

fn time_labels(da: &DataArray, dim: &str) -> Vec<String> {
    let ix = da.indexes().get(dim).unwrap();
    (0..ix.len()).map(|i| ix.label_string(i)).collect()
}

fn label(v: f64) -> Selector {
    Selector::Label(Label::Float(v))
}

fn nearest() -> SelOptions {
    SelOptions {
        method: Method::Nearest,
        tolerance: None,
    }
}

fn slice(a: &str, b: &str) -> Selector {
    Selector::Slice {
        start: Some(Label::Str(a.into())),
        stop: Some(Label::Str(b.into())),
        step: None,
    }
}

#[test]
fn daily_reductions_and_selection() {
    let e = &expected()["daily_360"];
    let ds = open("daily_360.zarr");
    let t = ds.get("tas").unwrap();
    assert_eq!(t.dims(), strings(&e["dims"]).as_slice());
    let shape: Vec<usize> = e["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(t.shape(), shape.as_slice());
    let tl = time_labels(&t, "time");
    assert_eq!(
        [tl[0].clone(), tl[tl.len() - 1].clone()].to_vec(),
        strings(&e["time_first_last"])
    );
    // float32 data accumulate in float64: results within 1e-6 of xarray
    assert_close(
        &values(&t.mean(Some(&["time"])).unwrap()),
        &floats(&e["time_mean"]),
        1e-6,
        "time_mean",
    );
    assert_close(
        &values(&t.mean(None).unwrap()),
        &[e["global_mean"].as_f64().unwrap()],
        1e-6,
        "global_mean",
    );
    let sd = t
        .reduce(Reduction::Std(1), Some(&["time"]), None)
        .unwrap()
        .isel(&[("lon", IndexSel::Int(0))])
        .unwrap();
    assert_close(&values(&sd), &floats(&e["std_time_ddof1"]), 1e-5, "std");
    let med = t
        .reduce(Reduction::Median, Some(&["time"]), None)
        .unwrap()
        .isel(&[("lat", IndexSel::Int(0))])
        .unwrap();
    assert_close(&values(&med), &floats(&e["median_time"]), 1e-6, "median");
    let cnt = t
        .reduce(Reduction::Count, Some(&["time"]), None)
        .unwrap()
        .isel(&[("lon", IndexSel::Int(2))])
        .unwrap();
    assert_close(&values(&cnt), &floats(&e["count_time"]), 0.0, "count");

    let s = &e["sel_nearest"];
    let p = t
        .sel(
            &[
                ("lat", label(s["lat"].as_f64().unwrap())),
                ("lon", label(s["lon"].as_f64().unwrap())),
            ],
            &nearest(),
        )
        .unwrap();
    assert_eq!(p.dims(), ["time"]);
    let p10 = p.isel(&[("time", IndexSel::range(0, 10))]).unwrap();
    assert_close(
        &values(&p10),
        &floats(&s["values_first10"]),
        0.0,
        "sel nearest",
    );
    let found = t.sel(&[("lat", label(31.0))], &nearest()).unwrap();
    assert_eq!(
        found.coord("lat").unwrap().to_f64_vec().unwrap(),
        vec![s["lat_found"].as_f64().unwrap()]
    );

    let sl = t
        .sel(
            &[(
                "lat",
                Selector::Slice {
                    start: Some(Label::Float(-40.0)),
                    stop: Some(Label::Float(40.0)),
                    step: None,
                },
            )],
            &SelOptions::default(),
        )
        .unwrap()
        .isel(&[("time", IndexSel::Int(0)), ("lon", IndexSel::Int(0))])
        .unwrap();
    assert_close(&values(&sl), &floats(&e["sel_slice_lat"]), 0.0, "lat slice");

    let part = t
        .sel(
            &[("time", Selector::Label(Label::Str("1850-03".into())))],
            &SelOptions::default(),
        )
        .unwrap();
    assert_eq!(
        part.shape()[0] as u64,
        e["sel_partial"]["n"].as_u64().unwrap()
    );
    assert_close(
        &values(&part.mean(None).unwrap()),
        &[e["sel_partial"]["mean"].as_f64().unwrap()],
        1e-6,
        "partial mean",
    );

    let ts = t
        .sel(
            &[("time", slice("1850-02", "1850-03"))],
            &SelOptions::default(),
        )
        .unwrap();
    let labels = time_labels(&ts, "time");
    assert_eq!(
        labels.len() as u64,
        e["sel_time_slice"]["n"].as_u64().unwrap()
    );
    assert_eq!(labels[0], e["sel_time_slice"]["first"].as_str().unwrap());
    assert_eq!(
        labels[labels.len() - 1],
        e["sel_time_slice"]["last"].as_str().unwrap()
    );

    let masked = t
        .binary_scalar(BinaryOp::Sub, Scalar::Float(273.15), false)
        .unwrap()
        .where_(
            &t.binary_scalar(BinaryOp::Gt, Scalar::Float(280.0), false)
                .unwrap(),
            None,
        )
        .unwrap();
    assert_close(
        &values(&masked.mean(None).unwrap()),
        &[e["where"].as_f64().unwrap()],
        1e-6,
        "where",
    );
    let nulls = t
        .isnull()
        .unwrap()
        .reduce(Reduction::Sum, None, None)
        .unwrap();
    assert_eq!(values(&nulls), vec![e["isnull_sum"].as_f64().unwrap()]);
}

#[test]
fn daily_groupby_resample_weighted_rolling() {
    let e = &expected()["daily_360"];
    let ds = open("daily_360.zarr");
    let t = ds.get("tas").unwrap();
    let lon0 = |da: DataArray| da.isel(&[("lon", IndexSel::Int(0))]).unwrap();

    let gm = t
        .groupby("time.month")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap();
    assert_eq!(gm.dims(), ["month", "lat", "lon"]);
    let months: Vec<f64> = gm.coord("month").unwrap().to_f64_vec().unwrap();
    assert_close(
        &months,
        &floats(&e["groupby_month_mean"]["month"]),
        0.0,
        "month labels",
    );
    assert_close(
        &values(&lon0(gm.clone())),
        &floats(&e["groupby_month_mean"]["values"]),
        1e-6,
        "groupby month",
    );

    let gs = t
        .groupby("time.season")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap();
    assert_eq!(
        time_labels(&gs, "season"),
        strings(&e["groupby_season_mean"]["season"])
    );
    let gs1 = gs.isel(&[("lon", IndexSel::Int(1))]).unwrap();
    assert_close(
        &values(&gs1),
        &floats(&e["groupby_season_mean"]["values"]),
        1e-6,
        "groupby season",
    );

    let gy = t
        .groupby("time.year")
        .unwrap()
        .reduce(Reduction::Max, None)
        .unwrap()
        .isel(&[("lon", IndexSel::Int(3))])
        .unwrap();
    assert_close(
        &values(&gy),
        &floats(&e["groupby_year_max"]["values"]),
        0.0,
        "groupby year max",
    );
    let gsd = t
        .groupby("time.month")
        .unwrap()
        .reduce(Reduction::Std(0), None)
        .unwrap();
    let gsd = gsd
        .isel(&[("lat", IndexSel::Int(2)), ("lon", IndexSel::Int(2))])
        .unwrap();
    assert_close(
        &values(&gsd),
        &floats(&e["groupby_month_std"]),
        1e-5,
        "groupby month std",
    );

    let anom = t
        .groupby("time.month")
        .unwrap()
        .binary(BinaryOp::Sub, &gm)
        .unwrap();
    assert_eq!(anom.dims(), strings(&e["anomaly"]["dims"]).as_slice());
    let a = anom
        .isel(&[
            ("lat", IndexSel::Int(1)),
            ("lon", IndexSel::Int(2)),
            ("time", IndexSel::range(0, 40)),
        ])
        .unwrap();
    // anomalies are float32 differences of values near 290 K: compare within 1e-6 of the
    // data's magnitude (one float32 ulp at 290 K is 3e-5)
    let (got, want) = (values(&a), floats(&e["anomaly"]["values_first40"]));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let same = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-6 * 300.0;
        assert!(same, "anomaly: gridflow {g} vs xarray {w}");
    }

    let rs = t
        .resample("time", "MS")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap();
    assert_eq!(
        time_labels(&rs, "time"),
        strings(&e["resample_MS_mean"]["time"])
    );
    let rs0 = rs
        .isel(&[("lat", IndexSel::Int(0)), ("lon", IndexSel::Int(0))])
        .unwrap();
    assert_close(
        &values(&rs0),
        &floats(&e["resample_MS_mean"]["values"]),
        1e-6,
        "resample MS",
    );
    let r5 = t
        .resample("time", "5D")
        .unwrap()
        .reduce(Reduction::Max, None)
        .unwrap();
    assert_eq!(
        r5.shape()[0] as u64,
        e["resample_5D_max"]["n"].as_u64().unwrap()
    );
    assert_eq!(
        time_labels(&r5, "time")[..3].to_vec(),
        strings(&e["resample_5D_max"]["time_first3"])
    );
    let r5v = r5
        .isel(&[
            ("lat", IndexSel::Int(3)),
            ("lon", IndexSel::Int(1)),
            ("time", IndexSel::range(0, 20)),
        ])
        .unwrap();
    assert_close(
        &values(&r5v),
        &floats(&e["resample_5D_max"]["values_first20"]),
        0.0,
        "resample 5D",
    );

    let w = ds
        .get("lat")
        .unwrap()
        .unary(gridflow_array::kernels::UnaryOp::Deg2Rad)
        .unwrap();
    let w = w.unary(gridflow_array::kernels::UnaryOp::Cos).unwrap();
    let wm = t.weighted(&w).unwrap().mean(Some(&["lat", "lon"])).unwrap();
    assert_eq!(wm.dims(), ["time"]);
    let first50 = wm.isel(&[("time", IndexSel::range(0, 50))]).unwrap();
    assert_close(
        &values(&first50),
        &floats(&e["weighted_mean"]["values_first50"]),
        1e-6,
        "weighted",
    );
    let at400 = wm.isel(&[("time", IndexSel::Int(400))]).unwrap();
    assert_close(
        &values(&at400),
        &[e["weighted_mean"]["value_400"].as_f64().unwrap()],
        1e-6,
        "weighted 400",
    );

    let p = t
        .isel(&[("lat", IndexSel::Int(0)), ("lon", IndexSel::Int(0))])
        .unwrap();
    let r = p
        .rolling("time", 5)
        .unwrap()
        .mean()
        .unwrap()
        .isel(&[("time", IndexSel::range(0, 30))])
        .unwrap();
    assert_close(&values(&r), &floats(&e["rolling_mean_5"]), 1e-6, "rolling");
}

#[test]
fn hourly_resample_and_hour_groups() {
    let e = &expected()["hourly_360"];
    let h = open("hourly_360.zarr").get("tas").unwrap();
    assert_eq!(
        time_labels(&h, "time")[..3].to_vec(),
        strings(&e["time_first3"])
    );
    let r = h
        .resample("time", "1D")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap();
    assert_eq!(
        time_labels(&r, "time"),
        strings(&e["resample_1D_mean"]["time"])
    );
    assert_close(
        &values(&r),
        &floats(&e["resample_1D_mean"]["values"]),
        1e-6,
        "resample 1D",
    );
    let g = h
        .groupby("time.hour")
        .unwrap()
        .reduce(Reduction::Mean, None)
        .unwrap();
    assert_close(
        &g.coord("hour").unwrap().to_f64_vec().unwrap(),
        &floats(&e["hour_labels"]),
        0.0,
        "hours",
    );
    assert_close(
        &values(&g),
        &floats(&e["groupby_hour_mean"]),
        1e-6,
        "groupby hour",
    );
}

#[test]
fn descending_latitude() {
    let e = &expected()["descending"];
    let z = open("descending.zarr").get("z").unwrap();
    let s = z
        .sel(
            &[(
                "lat",
                Selector::Slice {
                    start: Some(Label::Float(60.0)),
                    stop: Some(Label::Float(-20.0)),
                    step: None,
                },
            )],
            &SelOptions::default(),
        )
        .unwrap();
    assert_close(
        &s.coord("lat").unwrap().to_f64_vec().unwrap(),
        &floats(&e["slice_lats"]),
        0.0,
        "lats",
    );
    assert_close(
        &values(&s),
        &floats(&e["slice_60_m20"]),
        0.0,
        "slice values",
    );
    let n = z.sel(&[("lat", label(33.0))], &nearest()).unwrap();
    assert_close(&values(&n), &floats(&e["nearest_33"]), 0.0, "nearest");
    assert_eq!(
        n.coord("lat").unwrap().to_f64_vec().unwrap(),
        vec![e["nearest_33_lat"].as_f64().unwrap()]
    );
    let l = z
        .sel(
            &[(
                "lat",
                Selector::List(vec![
                    Label::Float(80.0),
                    Label::Float(0.0),
                    Label::Float(-40.0),
                ]),
            )],
            &SelOptions::default(),
        )
        .unwrap();
    assert_close(&values(&l), &floats(&e["list"]), 0.0, "list");
}

#[test]
fn packed_int16_with_fill_values() {
    let e = &expected()["packed"];
    let ds = open("packed.zarr");
    let p = ds.get("pr").unwrap();
    assert_eq!(p.dtype().name(), e["dtype"].as_str().unwrap());
    assert_close(&values(&p), &floats(&e["values"]), 1e-12, "unpacked");
    let raw = open_zarr(
        fixtures().join("packed.zarr").to_str().unwrap(),
        &OpenOptions {
            decode: gridflow_dataset::DecodeOptions::none(),
            ..OpenOptions::default()
        },
    )
    .unwrap()
    .get("pr")
    .unwrap();
    assert_close(&values(&raw), &floats(&e["raw"]), 0.0, "raw");
}

#[test]
fn every_calendar() {
    let e = &expected()["calendars"];
    for (cal, want) in e.as_object().unwrap() {
        let ds = open(want["store"].as_str().unwrap());
        let v = ds.get("v").unwrap();
        let time = ds.get("time").unwrap();
        assert!(
            matches!(time.variable().kind(), ValueKind::Time(_)),
            "{cal}"
        );
        assert_eq!(time_labels(&v, "time"), strings(&want["iso"]), "{cal}: iso");
        let g = v
            .groupby("time.month")
            .unwrap()
            .reduce(Reduction::Count, None)
            .unwrap();
        let months = g.coord("month").unwrap().to_f64_vec().unwrap();
        assert_close(
            &months,
            &floats(&want["groupby_month_count"]["month"]),
            0.0,
            cal,
        );
        assert_close(
            &values(&g),
            &floats(&want["groupby_month_count"]["count"]),
            0.0,
            cal,
        );
        let seasons = v.groupby("time.season").unwrap();
        assert!(seasons.len() <= 4);
        let doy: Vec<f64> = {
            let cal_ = time.variable().calendar().unwrap();
            let ix = v.indexes().get("time").unwrap();
            let (ticks, _) = ix.time_ticks("doy").unwrap();
            ticks
                .iter()
                .map(|&t| f64::from(cal_.dayofyear(&cal_.from_ticks(t))))
                .collect()
        };
        assert_close(
            &doy,
            &floats(&want["dayofyear"]),
            0.0,
            &format!("{cal} dayofyear"),
        );
    }
}

#[test]
fn errors_name_what_and_where() {
    let ds = open("daily_360.zarr");
    let t = ds.get("tas").unwrap();
    let msg = |r: Result<DataArray, gridflow_dataset::DatasetError>| r.unwrap_err().to_string();
    let m = msg(t.mean(Some(&["height"])));
    assert!(m.contains("height") && m.contains("time, lat, lon"), "{m}");
    let m = msg(t.sel(&[("lat", label(31.0))], &SelOptions::default()));
    assert!(
        m.contains("31") && m.contains("\"lat\"") && m.contains("not found"),
        "{m}"
    );
    let tol = SelOptions {
        method: Method::Nearest,
        tolerance: Some(gridflow_dataset::Tolerance::Value(1.0)),
    };
    let m = msg(t.sel(&[("lat", label(31.0))], &tol));
    assert!(m.contains("tolerance") && m.contains("lat"), "{m}");
    let m = msg(t.sel(
        &[("time", Selector::Label(Label::Str("1850-02-31".into())))],
        &SelOptions::default(),
    ));
    assert!(m.contains("1850-02-31") && m.contains("time"), "{m}");
    let m = msg(t.sel(
        &[("time", Selector::Label(Label::Str("1999".into())))],
        &SelOptions::default(),
    ));
    assert!(m.contains("1999") && m.contains("time"), "{m}");
    // a non-monotonic index cannot be sliced by label
    let shuffled = t
        .isel(&[("lat", IndexSel::List(vec![3, 0, 5, 1]))])
        .unwrap();
    let m = msg(shuffled.sel(
        &[(
            "lat",
            Selector::Slice {
                start: Some(Label::Float(0.0)),
                stop: Some(Label::Float(50.0)),
                step: None,
            },
        )],
        &SelOptions::default(),
    ));
    assert!(m.contains("not monotonic") && m.contains("lat"), "{m}");
    let m = msg(t
        .groupby("time.fortnight")
        .map(|g| g.labels().clone())
        .and_then(|_| t.mean(None)));
    assert!(m.contains("fortnight"), "{m}");
}

#[test]
fn bad_units_and_calendars_name_the_attribute() {
    let dir = std::env::temp_dir().join(format!("gridflow-dataset-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (units, cal, needle) in [
        ("fortnights since 1850-01-01", "noleap", "fortnights"),
        ("days since 1850-13-01", "noleap", "1850-13-01"),
        ("days since 1850-01-01", "martian", "martian"),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        let time = gridflow_dataset::Variable::from_f64("time", vec![0.0, 1.0]).unwrap();
        let mut time = time;
        time.attrs
            .insert("units".into(), Value::String(units.into()));
        time.attrs
            .insert("calendar".into(), Value::String(cal.into()));
        let mut vars = indexmap::IndexMap::new();
        vars.insert("time".to_owned(), time);
        let raw =
            gridflow_dataset::Dataset::new(vars, Default::default(), Default::default()).unwrap();
        raw.to_zarr(
            dir.to_str().unwrap(),
            &gridflow_dataset::ToZarrOptions::default(),
        )
        .unwrap();
        let err = open_zarr(dir.to_str().unwrap(), &OpenOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle) && err.contains("\"time\""), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn written_datasets_round_trip() {
    let ds = open("daily_360.zarr");
    let dir = std::env::temp_dir().join(format!("gridflow-dataset-rt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ds.to_zarr(
        dir.to_str().unwrap(),
        &gridflow_dataset::ToZarrOptions::default(),
    )
    .unwrap();
    let back = open_zarr(dir.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let (a, b) = (ds.get("tas").unwrap(), back.get("tas").unwrap());
    assert_eq!(time_labels(&a, "time"), time_labels(&b, "time"));
    assert_close(&values(&b), &values(&a), 0.0, "round trip");
    assert_eq!(back.attrs.get("title"), ds.attrs.get("title"));
    let packed = open("packed.zarr");
    let _ = std::fs::remove_dir_all(&dir);
    packed
        .to_zarr(
            dir.to_str().unwrap(),
            &gridflow_dataset::ToZarrOptions::default(),
        )
        .unwrap();
    let back = open_zarr(dir.to_str().unwrap(), &OpenOptions::default()).unwrap();
    assert_close(
        &values(&back.get("pr").unwrap()),
        &values(&packed.get("pr").unwrap()),
        1e-12,
        "packed round trip",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reprs_look_like_xarray() {
    let ds = open("daily_360.zarr");
    let text = ds.to_string();
    assert!(text.starts_with("<gridflow.Dataset>"), "{text}");
    assert!(
        text.contains("Dimensions:") && text.contains("time: 720"),
        "{text}"
    );
    assert!(
        text.contains("* time") && text.contains("1850-01-01 00:00:00"),
        "{text}"
    );
    assert!(
        text.contains("tas") && text.contains("(time, lat, lon) float32"),
        "{text}"
    );
    assert!(text.contains("chunksize=(100, 6, 8)"), "{text}");
    assert!(
        text.contains("title:") && text.contains("daily fixture"),
        "{text}"
    );
    let da = ds
        .get("tas")
        .unwrap()
        .reduce(Reduction::Mean, Some(&["time", "lon"]), None)
        .unwrap();
    let text = da.compute().unwrap().to_string();
    assert!(
        text.starts_with("<gridflow.DataArray 'tas' (lat: 6)>"),
        "{text}"
    );
}

/// The fixtures venv's python (created by `bash scripts/test.sh`); in CI it must exist.
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var("GRIDFLOW_FIXTURES_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures-venv")
        });
    let py = venv.join("bin/python");
    if !py.exists() && std::env::var_os("CI").is_some() {
        panic!("CI: no fixtures venv at {}", venv.display());
    }
    py.exists().then_some(py)
}

#[test]
fn unsigned_bytes_v3_fill_values_and_scalar_coordinates_as_xarray() {
    for (fmt, e) in expected()["conventions"].as_object().unwrap() {
        let ds = open(e["store"].as_str().unwrap());
        let flag = ds.get("flag_u").unwrap();
        assert_eq!(
            flag.dtype().name(),
            e["flag_u_dtype"].as_str().unwrap(),
            "{fmt}"
        );
        assert_close(&values(&flag), &floats(&e["flag_u_values"]), 0.0, "flag_u");
        let sum = values(&flag.reduce(Reduction::Sum, None, None).unwrap());
        assert_close(
            &sum,
            &[e["flag_u_sum"].as_f64().unwrap()],
            0.0,
            "flag_u sum",
        );
        let count = values(&flag.reduce(Reduction::Count, None, None).unwrap());
        assert_close(
            &count,
            &[e["flag_u_count"].as_f64().unwrap()],
            0.0,
            "flag_u count",
        );
        let temp = ds.get("temp").unwrap();
        assert_eq!(
            temp.dtype().name(),
            e["temp_dtype"].as_str().unwrap(),
            "{fmt}"
        );
        let count = values(&temp.reduce(Reduction::Count, None, None).unwrap());
        assert_close(
            &count,
            &[e["temp_count"].as_f64().unwrap()],
            0.0,
            "temp count",
        );
        let sum = values(&temp.reduce(Reduction::Sum, None, None).unwrap());
        assert_close(&sum, &[e["temp_sum"].as_f64().unwrap()], 1e-6, "temp sum");
        let mut coords: Vec<&String> = ds.coords().keys().collect();
        coords.sort();
        assert_eq!(
            coords,
            strings(&e["coords"]).iter().collect::<Vec<_>>(),
            "{fmt}"
        );
        let height = ds.coords().get("height").unwrap();
        assert!(height.dims().is_empty(), "{fmt}: height is 0-d");
        assert_eq!(
            height.data().compute().unwrap().to_f64_vec(),
            vec![e["height"].as_f64().unwrap()]
        );
    }
}

#[test]
fn unsigned_and_v3_fill_values_round_trip_through_gridflow_and_xarray() {
    let ds = open("conventions_v2.zarr");
    let want = values(&ds.get("flag_u").unwrap());
    let dir = std::env::temp_dir().join(format!("gridflow-dataset-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (format, sub) in [
        (gridflow_store::ZarrFormat::V2, "v2.zarr"),
        (gridflow_store::ZarrFormat::V3, "v3.zarr"),
    ] {
        let path = dir.join(sub);
        let _ = std::fs::remove_dir_all(&path);
        ds.to_zarr(
            path.to_str().unwrap(),
            &gridflow_dataset::ToZarrOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        // stored as xarray stores it: signed bytes, the flag kept, the raw fill value
        let meta = if format == gridflow_store::ZarrFormat::V2 {
            std::fs::read_to_string(path.join("flag_u/.zattrs")).unwrap()
        } else {
            std::fs::read_to_string(path.join("flag_u/zarr.json")).unwrap()
        };
        assert!(meta.contains("\"_Unsigned\": \"true\""), "{meta}");
        if format == gridflow_store::ZarrFormat::V3 {
            let temp = std::fs::read_to_string(path.join("temp/zarr.json")).unwrap();
            assert!(temp.contains("\"_FillValue\": \"AAAAAAAA+H8=\""), "{temp}");
        }
        let back = open_zarr(path.to_str().unwrap(), &OpenOptions::default()).unwrap();
        assert_close(
            &values(&back.get("flag_u").unwrap()),
            &want,
            0.0,
            "gridflow re-read",
        );
        let Some(py) = venv_python() else { continue };
        let out = std::process::Command::new(py)
            .arg("-c")
            .arg(
                "import sys, json, numpy as np, xarray as xr\n\
                 o = xr.open_zarr(sys.argv[1], consolidated=None)\n\
                 print(json.dumps({'dtype': str(o.flag_u.dtype), 'disk': str(o.flag_u.encoding['dtype']),\n\
                   'v': [None if np.isnan(x) else float(x) for x in o.flag_u.values.ravel()],\n\
                   'temp_nan': int(o.temp.isnull().sum()), 'height': float(o.height)}))",
            )
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["dtype"], "float32", "{sub}");
        assert_eq!(got["disk"], "int8", "{sub}");
        assert_close(&floats(&got["v"]), &want, 0.0, "xarray re-read");
        assert_eq!(got["temp_nan"], 1, "{sub}");
        assert_eq!(got["height"], 2.0, "{sub}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn string_labels(ds: &Dataset, name: &str) -> Vec<String> {
    let v = ds.get(name).unwrap();
    let ValueKind::Strings(table) = v.variable().kind() else {
        panic!("{name} is not a string variable");
    };
    let codes = values(&v);
    codes.iter().map(|&c| table[c as usize].clone()).collect()
}

#[test]
fn string_variables_and_labels_as_xarray_reads_them() {
    let e = expected();
    let stores = e["strings"].as_object().unwrap();
    assert_eq!(stores.len(), 4, "fixed/object x v2/v3");
    for (name, want) in stores {
        let ds = open(name);
        assert_eq!(
            string_labels(&ds, "member_id"),
            strings(&want["member_id"]),
            "{name}"
        );
        assert_eq!(
            string_labels(&ds, "region"),
            strings(&want["region"]),
            "{name}"
        );
        assert_eq!(
            string_labels(&ds, "note"),
            vec![want["note"].as_str().unwrap().to_owned()],
            "{name}"
        );
        // labels index their dimension
        let tas = ds.get("tas").unwrap();
        let r10 = tas
            .sel(
                &[("member_id", Selector::Label(Label::Str("r10i1p1f1".into())))],
                &SelOptions::default(),
            )
            .unwrap();
        assert_close(&values(&r10), &floats(&want["sel_r10"]), 0.0, name);
        let text = ds.to_string();
        assert!(
            text.contains("\"r10i1p1f1\"") && text.contains("note"),
            "{text}"
        );
    }
}

#[test]
fn string_variables_round_trip_through_gridflow_and_xarray() {
    let ds = open("strings_fixed_v2.zarr");
    let dir = std::env::temp_dir().join(format!("gridflow-dataset-str-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (format, sub) in [
        (gridflow_store::ZarrFormat::V2, "v2.zarr"),
        (gridflow_store::ZarrFormat::V3, "v3.zarr"),
    ] {
        let path = dir.join(sub);
        let _ = std::fs::remove_dir_all(&path);
        ds.to_zarr(
            path.to_str().unwrap(),
            &gridflow_dataset::ToZarrOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        let back = open_zarr(path.to_str().unwrap(), &OpenOptions::default()).unwrap();
        for name in ["member_id", "region", "note"] {
            assert_eq!(
                string_labels(&back, name),
                string_labels(&ds, name),
                "{sub} {name}"
            );
        }
        let Some(py) = venv_python() else { continue };
        let out = std::process::Command::new(py)
            .arg("-c")
            .arg(
                "import sys, json, xarray as xr\n\
                 o = xr.open_zarr(sys.argv[1], consolidated=None)\n\
                 print(json.dumps({'member_id': [str(x) for x in o.member_id.values],\n\
                   'region': [str(x) for x in o.region.values], 'note': str(o.note.values),\n\
                   'r10': [float(x) for x in o.tas.sel(member_id='r10i1p1f1').values]}))",
            )
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            strings(&got["member_id"]),
            string_labels(&ds, "member_id"),
            "{sub}"
        );
        assert_eq!(
            strings(&got["region"]),
            string_labels(&ds, "region"),
            "{sub}"
        );
        assert_eq!(
            got["note"].as_str().unwrap(),
            string_labels(&ds, "note")[0],
            "{sub}"
        );
        let want = &expected()["strings"]["strings_fixed_v2.zarr"]["sel_r10"];
        assert_close(&floats(&got["r10"]), &floats(want), 0.0, sub);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_variable_spoils_only_itself() {
    // a variable of a data type gridflow does not read (complex numbers, written by
    // zarr-python) is refused by name while the rest of the store stays usable
    let dir = std::env::temp_dir().join(format!("gridflow-dataset-odd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = fixtures().join("strings_fixed_v2.zarr");
    copy_dir(&src, &dir);
    let zarray = dir.join("tas/.zarray");
    let text = std::fs::read_to_string(&zarray)
        .unwrap()
        .replace("<f4", "<c8");
    std::fs::write(&zarray, text).unwrap();
    let zmeta = dir.join(".zmetadata");
    let text = std::fs::read_to_string(&zmeta)
        .unwrap()
        .replace("<f4", "<c8");
    std::fs::write(&zmeta, text).unwrap();
    let ds = open_zarr(dir.to_str().unwrap(), &OpenOptions::default()).unwrap();
    assert_eq!(string_labels(&ds, "region").len(), 3);
    let err = ds.get("tas").unwrap_err().to_string();
    assert!(err.contains("\"tas\"") && err.contains("<c8"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A non-numeric `_FillValue` attribute (the store crate's `bad_fill_attr.zarr` fixture):
/// CF decoding refuses it, naming the variable, the attribute and the value, as xarray
/// refuses to mask with it.
#[test]
fn non_numeric_fill_value_attribute_is_a_clear_error() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gridflow-store/tests/fixtures/bad_fill_attr.zarr");
    let e = gridflow_dataset::open_zarr(path.to_str().unwrap(), &Default::default())
        .map(|_| ())
        .unwrap_err();
    let m = e.to_string();
    println!("{m}");
    assert!(
        m.contains("tas") && m.contains("_FillValue") && m.contains("\"abc\""),
        "{m}"
    );
}
