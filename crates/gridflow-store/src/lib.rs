//! Zarr v2 and v3 stores for gridflow, on local disk, HTTP, S3, Google Cloud Storage and
//! Azure Blob Storage.
//!
//! * [`ZarrStore::open`] a path, `file://`, `http(s)://`, `s3://bucket/prefix`,
//!   `gs://bucket/prefix` or `az://container/prefix` (`abfs[s]://`) URL, with
//!   [`StoreOptions`] (settable by name: [`StoreOptions::set`]);
//! * [`ZarrStore::open_group`] reads consolidated metadata when present (one request);
//! * [`ZarrArray::to_chunked`] gives a lazy [`gridflow_array::ChunkedArray`] whose read
//!   tasks fetch and decode store chunks on the executor's threads;
//! * [`ZarrArray::read_region`] reads only the inner chunks of sharded arrays it needs;
//! * [`to_zarr`] writes a chunked array (v2 with consolidated metadata, or v3) in parallel;
//! * [`kerchunk`] reference sets (JSON version 0 and 1) open as read-only stores whose chunks
//!   are byte ranges of other files (netCDF-4/HDF5 ones, typically): [`ZarrStore::open`]
//!   recognises a reference file by its content;
//! * [`netcdf_write::write_netcdf`] writes netCDF-4 files (pure Rust);
//! * [`staging`] puts local outputs in place only when complete (temporary sibling + rename).
//!
//! * [`netcdf::NetcdfFile`] reads netCDF-3 and netCDF-4 files as lazy chunked arrays, local
//!   ones from disk and remote ones by byte ranges ([`netcdf_remote`]).
//!
//! Call [`register`] once per process that runs read tasks (the `"zarr"` and `"netcdf"`
//! source kinds).

pub mod array;
mod aws_profile;
mod blosc;
pub mod clouds;
pub mod error;
pub mod fetch;
mod http;
pub mod kerchunk;
pub mod metadata;
pub mod netcdf;
pub mod netcdf_remote;
pub mod netcdf_write;
pub mod staging;
pub mod storage;
mod strings;
pub mod write;

pub use array::{Dim, ZarrArray, ZarrGroup, ZarrSource, ZarrStore, decoded_bytes};
pub use error::{Result, StoreError};
pub use metadata::ZarrFormat;
pub use storage::{StoreOptions, StoreUrl};
pub use strings::{MAX_STRING_ELEMENTS, StringArray, is_string_entry, write_string_array};
pub use write::{
    ArrayWrite, Compression, WriteMode, WriteOptions, check_not_input, clear_store,
    consolidate_metadata, input_stores, to_zarr, to_zarr_with, write_group_attrs, write_with,
};

/// Registers the `"zarr"` chunk-source kind, so read tasks can be rebuilt from their spec
/// (call it in every process that deserializes or runs read tasks; idempotent).
pub fn register() {
    gridflow_array::register_source_kind("zarr", |spec| Ok(array::source_from_spec(spec)?));
    gridflow_array::register_source_kind("netcdf", |spec| Ok(netcdf::source_from_spec(spec)?));
    write::register_write_kernel();
}
