//! The embedded sample: a CMIP6-like Zarr store and an intake-esm catalog listing it.
//!
//! The store mimics the Pangeo CMIP6 ARCO store of NIMS-KMA KACE-1-0-G historical 3-hourly
//! near-surface air temperature (r1i1p1f1, gr): Zarr v2 with consolidated metadata, the N96
//! grid (144 × 192), 3-hourly steps on the `360_day` calendar in `days since 1850-01-01`,
//! CMIP6/CF attributes, blosc-lz4 chunks of 600 steps × the whole globe. The values are
//! physically plausible: a latitude gradient, a seasonal cycle flipping between
//! hemispheres, a diurnal cycle following local solar time, and weather-like noise.
//!
//! Its encodings are CMIP6's: every data variable has the zarr `fill_value` 1e20 and a
//! `missing_value` attribute of 1e20 (float32-rounded, as CMOR writes them and as xarray
//! writes `_FillValue`/`missing_value` encodings to Zarr v2), and a few `tas` values are
//! masked (stored as 1e20, read as NaN after CF decoding; see [`MASK_CELLS`]), so every reader
//! has to apply CF masking as it must on the Pangeo stores.

use anyhow::{Context, Result};
use gridflow_array::{ChunkedArray, DType};
use gridflow_dataset::{Attrs, Coords, Dataset, ToZarrOptions, Variable};
use gridflow_store::{Compression, WriteMode, ZarrFormat};
use indexmap::IndexMap;
use serde_json::{Value, json};
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

/// The N96 grid: 144 latitudes, 192 longitudes.
pub const NLAT: usize = 144;
/// Longitudes of the N96 grid.
pub const NLON: usize = 192;
/// 3-hourly steps in a 360-day year.
pub const STEPS_PER_YEAR: usize = 360 * 8;
/// Time steps per chunk, as in the Pangeo store (≈ 66 MB of float32 per chunk).
pub const TIME_CHUNK: usize = 600;

/// CMIP6's fill value: 1e20 rounded to float32 (1.0000000200408773e20), the zarr
/// `fill_value` and `missing_value` of every data variable of the Pangeo CMIP6 stores.
pub const FILL_VALUE: f64 = 1e20_f32 as f64;

/// Every this many time steps (30 days), one step has masked `tas` values.
pub const MASK_EVERY: usize = 240;
/// The masked step within each [`MASK_EVERY`] steps (day 12.5 of each 30-day month).
pub const MASK_STEP: usize = 100;
/// The (lat, lon) grid indices masked at the masked steps: the cell nearest Milan (the demo's
/// point, 45.625°N 10.3125°E), one next to the South Pole, one in the equatorial Pacific.
pub const MASK_CELLS: [(usize, usize); 3] = [(108, 5), (0, 0), (72, 96)];

/// Whether the sample's `tas` is masked (missing) at time step `k` (0-based), grid cell
/// (`i`, `j`): 3 cells at one step of every 30 days, 36 values a year. (The store builds
/// the same pattern lazily, in [`synthetic_tas`].)
#[cfg(test)]
fn masked(k: usize, i: usize, j: usize) -> bool {
    k % MASK_EVERY == MASK_STEP && MASK_CELLS.contains(&(i, j))
}

/// The catalog path of the main store, relative to the sample directory (the Pangeo bucket
/// layout).
pub const STORE_PATH: &str =
    "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r1i1p1f1/3hr/tas/gr/v20191125";

/// Latitudes of cell centres (south to north).
pub fn lat_values() -> Vec<f64> {
    (0..NLAT).map(|i| -89.375 + 1.25 * i as f64).collect()
}

/// Longitudes of cell centres (0 to 360 east).
pub fn lon_values() -> Vec<f64> {
    (0..NLON).map(|j| 0.9375 + 1.875 * j as f64).collect()
}

/// A lazy near-surface air temperature field (K) of `nt` 3-hourly steps from
/// 1850-01-01T03:00, built from broadcasting elementwise operations only.
pub fn synthetic_tas(nt: usize, time_chunk: usize, seed: u64) -> Result<ChunkedArray> {
    let days = ChunkedArray::arange(
        0.125,
        (nt as f64 + 1.0) * 0.125 - 1e-9,
        0.125,
        time_chunk,
        DType::F64,
    )?
    .expand_dims(1)?
    .expand_dims(2)?;
    let lat = ChunkedArray::from_ndarray(ndarray::Array1::from(lat_values()).into_dyn(), [0])?
        .expand_dims(1)?;
    let lon = ChunkedArray::from_ndarray(ndarray::Array1::from(lon_values()).into_dyn(), [0])?;
    let coslat = lat.deg2rad()?.cos()?;
    let sinlat = lat.deg2rad()?.sin()?;
    // ~240 K at the poles, ~285 K at the equator, with stationary waves (land and sea)
    let waves = lon
        .deg2rad()?
        .mul(2.0)?
        .cos()?
        .mul(&coslat.mul(&coslat)?.mul(4.0)?)?
        .add(
            &lon.deg2rad()?
                .mul(3.0)?
                .add(1.0)?
                .sin()?
                .mul(&sinlat.mul(&coslat)?.mul(5.0)?)?,
        )?;
    let base = coslat.mul(45.0)?.add(240.0)?.add(&waves)?;
    let season = days
        .mul(2.0 * PI / 360.0)?
        .sub(PI / 2.0)?
        .sin()?
        .mul(&sinlat.mul(12.0)?)?;
    let local_hour = days.rem(1.0)?.mul(24.0)?.add(&lon.div(15.0)?)?;
    let diurnal = local_hour
        .sub(9.0)?
        .mul(2.0 * PI / 24.0)?
        .sin()?
        .mul(&coslat.mul(4.0)?)?;
    let noise = ChunkedArray::random(&[nt, NLAT, NLON], [time_chunk, NLAT, NLON], seed)?
        .sub(0.5)?
        .mul(3.0)?;
    let tas = base
        .add(&season)?
        .add(&diurnal)?
        .add(&noise)?
        .astype(DType::F32)?;
    // the masked values ([`masked`]): a time pattern times a cell pattern, broadcast
    let masked_step = ChunkedArray::arange(0.0, nt as f64, 1.0, time_chunk, DType::F64)?
        .rem(MASK_EVERY as f64)?
        .eq(MASK_STEP as f64)?
        .expand_dims(1)?
        .expand_dims(2)?;
    let mut cells = ndarray::Array2::<bool>::from_elem((NLAT, NLON), false);
    for (i, j) in MASK_CELLS {
        if let Some(c) = cells.get_mut((i, j)) {
            *c = true;
        }
    }
    let masked_cell = ChunkedArray::from_ndarray(cells.into_dyn(), [NLAT, NLON])?;
    let missing = masked_step.and(&masked_cell)?;
    Ok(gridflow_array::where_(&missing, f64::NAN, &tas)?)
}

/// CMIP6's encodings of a float data variable: missing values (NaN) are written as
/// [`FILL_VALUE`], which is also its `missing_value` attribute.
fn cmip6_fill(mut v: Variable) -> Variable {
    v.encoding.insert("_FillValue".into(), json!(FILL_VALUE));
    v.encoding.insert("missing_value".into(), json!(FILL_VALUE));
    v
}

fn obj(pairs: &[(&str, Value)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn coord_f64(dim: &str, values: Vec<f64>, attrs: Attrs) -> Result<Variable> {
    Ok(Variable::from_f64(dim, values)?.with_attrs(attrs))
}

fn bounds(centres: &[f64], half: f64) -> Result<Variable> {
    let n = centres.len();
    let v: Vec<f64> = centres.iter().flat_map(|c| [c - half, c + half]).collect();
    let chunk = gridflow_array::Chunk::from_f64_vec(&[n, 2], v, DType::F64)?;
    Ok(Variable::new(
        ["x", "bnds"],
        ChunkedArray::from_chunk(chunk, [n, 2])?,
    )?)
}

fn rename_first_dim(v: Variable, dim: &str) -> Result<Variable> {
    let dims = [dim.to_owned(), "bnds".to_owned()];
    Ok(Variable::new(dims, v.data().clone())?.with_attrs(v.attrs.clone()))
}

/// The sample dataset, lazily: `nt` 3-hourly steps of tas (2880 per 360-day year).
pub fn sample_dataset(nt: usize, time_chunk: usize) -> Result<Dataset> {
    let time_values: Vec<f64> = (1..=nt).map(|k| k as f64 * 0.125).collect();
    let mut time = coord_f64(
        "time",
        time_values,
        obj(&[
            ("axis", json!("T")),
            ("long_name", json!("time")),
            ("standard_name", json!("time")),
            ("units", json!("days since 1850-01-01")),
            ("calendar", json!("360_day")),
        ]),
    )?;
    time =
        Variable::new(["time"], time.data().rechunk([nt.max(1)])?)?.with_attrs(time.attrs.clone());
    let lat = coord_f64(
        "lat",
        lat_values(),
        obj(&[
            ("axis", json!("Y")),
            ("bounds", json!("lat_bnds")),
            ("long_name", json!("Latitude")),
            ("standard_name", json!("latitude")),
            ("units", json!("degrees_north")),
        ]),
    )?;
    let lon = coord_f64(
        "lon",
        lon_values(),
        obj(&[
            ("axis", json!("X")),
            ("bounds", json!("lon_bnds")),
            ("long_name", json!("Longitude")),
            ("standard_name", json!("longitude")),
            ("units", json!("degrees_east")),
        ]),
    )?;
    let tas = Variable::new(["time", "lat", "lon"], synthetic_tas(nt, time_chunk, 1850)?)?
        .with_attrs(obj(&[
            ("cell_measures", json!("area: areacella")),
            ("cell_methods", json!("area: mean time: point")),
            (
                "comment",
                json!("near-surface (usually, 2 meter) air temperature"),
            ),
            ("coordinates", json!("height")),
            ("history", json!("synthetic sample written by gridflow")),
            ("long_name", json!("Near-Surface Air Temperature")),
            ("standard_name", json!("air_temperature")),
            ("units", json!("K")),
        ]));
    let height = Variable::new(
        Vec::<String>::new(),
        ChunkedArray::from_chunk(
            gridflow_array::Chunk::from_f64_vec(&[], vec![2.0], DType::F64)?,
            Vec::<usize>::new(),
        )?,
    )?
    .with_attrs(obj(&[
        ("axis", json!("Z")),
        ("long_name", json!("height")),
        ("positive", json!("up")),
        ("standard_name", json!("height")),
        ("units", json!("m")),
    ]));
    let mut vars = IndexMap::new();
    vars.insert(
        "lat_bnds".to_owned(),
        cmip6_fill(rename_first_dim(bounds(&lat_values(), 0.625)?, "lat")?),
    );
    vars.insert(
        "lon_bnds".to_owned(),
        cmip6_fill(rename_first_dim(bounds(&lon_values(), 0.9375)?, "lon")?),
    );
    vars.insert("tas".to_owned(), cmip6_fill(tas));
    let mut coords = Coords::new();
    coords.insert("height".into(), height);
    coords.insert("lat".into(), lat);
    coords.insert("lon".into(), lon);
    coords.insert("time".into(), time);
    let attrs = obj(&[
        ("Conventions", json!("CF-1.7 CMIP-6.2")),
        ("activity_id", json!("CMIP")),
        (
            "experiment",
            json!("all-forcing simulation of the recent past"),
        ),
        ("experiment_id", json!("historical")),
        ("frequency", json!("3hr")),
        (
            "grid",
            json!("native atmosphere N96 grid (144x192 latxlon)"),
        ),
        ("grid_label", json!("gr")),
        (
            "institution",
            json!(
                "National Institute of Meteorological Sciences/Korea Meteorological Administration"
            ),
        ),
        ("institution_id", json!("NIMS-KMA")),
        ("mip_era", json!("CMIP6")),
        ("nominal_resolution", json!("250 km")),
        ("realm", json!("atmos")),
        ("source_id", json!("KACE-1-0-G")),
        ("source_type", json!("AOGCM")),
        ("table_id", json!("3hr")),
        (
            "title",
            json!("KACE-1-0-G output prepared for CMIP6 (synthetic gridflow sample)"),
        ),
        ("variable_id", json!("tas")),
        ("variant_label", json!("r1i1p1f1")),
        ("member_id", json!("r1i1p1f1")),
        ("version_id", json!("v20191125")),
    ]);
    Ok(Dataset::new(vars, coords, attrs)?)
}

/// Where the sample lives.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The main store.
    pub store: PathBuf,
    /// The intake-esm collection JSON.
    pub catalog: PathBuf,
    /// Whether it was written now (false: an existing sample was reused).
    pub written: bool,
}

const CATALOG_COLUMNS: &str = "activity_id,institution_id,source_id,experiment_id,member_id,table_id,variable_id,grid_label,zstore,dcpp_init_year,version";

/// Writes the sample (store + catalog) under `dir` unless a sample of the same size is
/// already there. Writing is lazy and parallel, block by block.
pub fn ensure_sample(dir: &Path, steps: usize) -> Result<Sample> {
    let store = dir.join(STORE_PATH);
    let catalog = dir.join("pangeo-cmip6.json");
    let stamp = dir.join(".gridflow-sample");
    let want = format!(
        "steps={steps} chunk={TIME_CHUNK} format=2 fill={FILL_VALUE:e} masked={MASK_EVERY}/{MASK_STEP}/{MASK_CELLS:?}"
    );
    let have = std::fs::read_to_string(&stamp).unwrap_or_default();
    if have.trim() == want && store.join(".zmetadata").exists() && catalog.exists() {
        return Ok(Sample {
            store,
            catalog,
            written: false,
        });
    }
    if let Some(parent) = store.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if steps == 0 {
        anyhow::bail!("the sample needs at least one time step");
    }
    let ds = sample_dataset(steps, TIME_CHUNK)?;
    let url = store.to_str().context("the sample path is not UTF-8")?;
    ds.to_zarr(
        url,
        &ToZarrOptions {
            format: ZarrFormat::V2,
            mode: WriteMode::Overwrite,
            compression: Compression::BloscLz4 { clevel: 5 },
            consolidated: true,
            ..ToZarrOptions::default()
        },
    )
    .with_context(|| format!("writing the sample store {}", store.display()))?;
    write_catalog(dir)?;
    // the sample's own files: replaced whole (temp + rename) when the sample is rewritten
    crate::common::write_file(&stamp, want.as_bytes(), true)?;
    Ok(Sample {
        store,
        catalog,
        written: true,
    })
}

/// The intake-esm catalog: the Pangeo CMIP6 collection spec and a CSV listing the sample
/// store and a few other entries (other members and variables that are not present
/// locally, as in any real catalog subset).
fn write_catalog(dir: &Path) -> Result<()> {
    let dir =
        &std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let spec = json!({
        "esmcat_version": "0.1.0",
        "id": "glade-cmip6",
        "description": "This is an ESM collection for CMIP6 Zarr data residing in Pangeo's Google Storage (gridflow sample subset).",
        "catalog_file": "pangeo-cmip6.csv",
        "attributes": [
            {"column_name": "activity_id", "vocabulary": "https://raw.githubusercontent.com/WCRP-CMIP/CMIP6_CVs/master/CMIP6_activity_id.json"},
            {"column_name": "source_id", "vocabulary": "https://raw.githubusercontent.com/WCRP-CMIP/CMIP6_CVs/master/CMIP6_source_id.json"},
            {"column_name": "institution_id", "vocabulary": "https://raw.githubusercontent.com/WCRP-CMIP/CMIP6_CVs/master/CMIP6_institution_id.json"},
            {"column_name": "experiment_id", "vocabulary": "https://raw.githubusercontent.com/WCRP-CMIP/CMIP6_CVs/master/CMIP6_experiment_id.json"},
            {"column_name": "member_id", "vocabulary": ""},
            {"column_name": "table_id", "vocabulary": "https://raw.githubusercontent.com/WCRP-CMIP/CMIP6_CVs/master/CMIP6_table_id.json"},
            {"column_name": "variable_id", "vocabulary": ""},
            {"column_name": "grid_label", "vocabulary": "https://raw.githubusercontent.com/WCRP-CMIP/CMIP6_CVs/master/CMIP6_grid_label.json"},
            {"column_name": "version", "vocabulary": ""},
            {"column_name": "dcpp_start_year", "vocabulary": ""}
        ],
        "assets": {"column_name": "zstore", "format": "zarr"},
        "aggregation_control": {
            "variable_column_name": "variable_id",
            "groupby_attrs": ["activity_id", "institution_id", "source_id", "experiment_id", "table_id", "grid_label"],
            "aggregations": [
                {"type": "union", "attribute_name": "variable_id"},
                {"type": "join_new", "attribute_name": "member_id", "options": {"coords": "minimal", "compat": "override"}},
                {"type": "join_new", "attribute_name": "dcpp_init_year", "options": {"coords": "minimal", "compat": "override"}}
            ]
        }
    });
    let mut csv = String::from(CATALOG_COLUMNS);
    csv.push('\n');
    let rows = [
        (
            "CMIP",
            "NIMS-KMA",
            "KACE-1-0-G",
            "historical",
            "r1i1p1f1",
            "3hr",
            "tas",
            "gr",
            STORE_PATH,
            "20191125",
        ),
        (
            "CMIP",
            "NIMS-KMA",
            "KACE-1-0-G",
            "historical",
            "r2i1p1f1",
            "3hr",
            "tas",
            "gr",
            "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r2i1p1f1/3hr/tas/gr/v20191125",
            "20191125",
        ),
        (
            "CMIP",
            "NIMS-KMA",
            "KACE-1-0-G",
            "historical",
            "r1i1p1f1",
            "3hr",
            "pr",
            "gr",
            "CMIP6/CMIP/NIMS-KMA/KACE-1-0-G/historical/r1i1p1f1/3hr/pr/gr/v20191125",
            "20191125",
        ),
        (
            "ScenarioMIP",
            "NIMS-KMA",
            "KACE-1-0-G",
            "ssp585",
            "r1i1p1f1",
            "3hr",
            "tas",
            "gr",
            "CMIP6/ScenarioMIP/NIMS-KMA/KACE-1-0-G/ssp585/r1i1p1f1/3hr/tas/gr/v20191125",
            "20191125",
        ),
        (
            "CMIP",
            "NCAR",
            "CESM2",
            "historical",
            "r1i1p1f1",
            "Amon",
            "tas",
            "gn",
            "CMIP6/CMIP/NCAR/CESM2/historical/r1i1p1f1/Amon/tas/gn/v20190308",
            "20190308",
        ),
    ];
    for (a, i, s, e, m, t, v, g, z, ver) in rows {
        // assets are absolute paths so the catalog works from any directory
        let path = dir.join(z);
        let zstore = path.to_string_lossy();
        csv.push_str(&format!(
            "{a},{i},{s},{e},{m},{t},{v},{g},{zstore},,{ver}\n"
        ));
    }
    let json_path = dir.join("pangeo-cmip6.json");
    crate::common::write_file(
        &json_path,
        serde_json::to_string_pretty(&spec)?.as_bytes(),
        true,
    )?;
    let csv_path = dir.join("pangeo-cmip6.csv");
    crate::common::write_file(&csv_path, csv.as_bytes(), true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_masked_values_are_nan_exactly_where_masked_says() {
        // two masked steps (100 and 340), across a block boundary
        let nt = 2 * MASK_EVERY + 1;
        let tas = synthetic_tas(nt, 150, 1850).unwrap().compute().unwrap();
        let values = tas.to_f64_vec();
        let mut nans = 0;
        for (n, v) in values.iter().enumerate() {
            let (k, i, j) = (n / (NLAT * NLON), n / NLON % NLAT, n % NLON);
            assert_eq!(
                v.is_nan(),
                masked(k, i, j),
                "step {k}, cell ({i}, {j}): {v}"
            );
            nans += usize::from(v.is_nan());
        }
        assert_eq!(nans, 2 * MASK_CELLS.len());
    }
}
