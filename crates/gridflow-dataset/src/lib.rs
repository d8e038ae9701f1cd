//! Labeled, lazy n-d datasets for gridflow: the xarray half of the system.
//!
//! A [`Variable`] is a chunked array with named dimensions, attributes and an encoding; a
//! [`DataArray`] adds a name, coordinates and indexes; a [`Dataset`] holds several variables
//! over shared dimensions. Selection works by label ([`DataArray::sel`]) or position
//! ([`DataArray::isel`]), reductions and arithmetic work by dimension name, and
//! [`DataArray::groupby`] / [`DataArray::resample`] reduce groups with map-reduce inside the
//! task graph. [`open_zarr`] reads Zarr stores with CF decoding (every CF calendar through
//! [`gridflow_cftime`]).
//!
//! ```
//! use gridflow_array::{ChunkedArray, DType};
//! use gridflow_dataset::{Coords, DataArray, Label, Method, SelOptions, Selector, Variable};
//! let lat = Variable::from_f64("lat", vec![60.0, 30.0, 0.0, -30.0, -60.0]).unwrap();
//! let mut coords = Coords::new();
//! coords.insert("lat".into(), lat);
//! let data = ChunkedArray::arange(0.0, 10.0, 1.0, 5, DType::F64).unwrap();
//! let data = data.rechunk([10]).unwrap();
//! let da = DataArray::new(
//!     Variable::new(["lat", "lon"], ChunkedArray::ones(&[5, 2], [5, 2], DType::F64).unwrap()).unwrap(),
//!     coords,
//!     Some("x"),
//! )
//! .unwrap();
//! let near = da
//!     .sel(&[("lat", Selector::Label(Label::Float(25.0)))], &SelOptions { method: Method::Nearest, tolerance: None })
//!     .unwrap();
//! assert_eq!(near.dims(), ["lon"]);
//! # let _ = data;
//! ```

pub mod align;
pub mod cf;
pub mod combine;
pub mod dataarray;
pub mod dataset;
pub mod error;
pub mod groupby;
pub mod index;
pub mod netcdf;
pub mod netcdf_write;
pub mod repr;
pub mod variable;

pub use align::{Join, align};
pub use cf::{DecodeOptions, OpenOptions, ToZarrOptions, decode_cf, open_zarr};
pub use combine::{CombineAttrs, CombineOptions, combine_by_coords};
pub use dataarray::{Coords, DataArray, Reduction};
pub use dataset::Dataset;
pub use error::{DatasetError, Result};
pub use gridflow_cftime as cftime;
pub use groupby::{GroupBy, Rolling, Weighted};
pub use index::{
    Index, IndexValues, Label, Method, Order, SelOptions, Selector, Tolerance, parse_duration,
};
pub use netcdf::{Combine, open_dataset, open_mfdataset, open_netcdf};
pub use netcdf_write::ToNetcdfOptions;
pub use variable::{Attrs, IndexSel, NAT, ValueKind, Variable};
