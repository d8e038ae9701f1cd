//! The crate's error type.

use std::path::PathBuf;

use crate::date::DateParts;

/// Everything that can go wrong while building, rendering or writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data array that must hold at least one value is empty.
    #[error("nothing to plot: `{what}` is empty")]
    Empty {
        /// Which array (e.g. `"x"`, `"lat"`).
        what: &'static str,
    },
    /// Two arrays that must have one entry per point differ in length.
    #[error("length mismatch: `{left}` has {left_len} values but `{right}` has {right_len}")]
    LengthMismatch {
        /// The first array's name.
        left: &'static str,
        /// The first array's length.
        left_len: usize,
        /// The second array's name.
        right: &'static str,
        /// The second array's length.
        right_len: usize,
    },
    /// A map's values do not fill its lat × lon grid.
    #[error(
        "map `values` has {values_len} entries but lat ({lat_len}) × lon ({lon_len}) needs {}",
        lat_len.saturating_mul(*lon_len)
    )]
    GridMismatch {
        /// Number of latitudes.
        lat_len: usize,
        /// Number of longitudes.
        lon_len: usize,
        /// Number of values given.
        values_len: usize,
    },
    /// A coordinate is NaN, infinite, or a latitude outside −90..=90.
    #[error("invalid `{what}` coordinate at index {index}: {value}")]
    InvalidCoordinate {
        /// Which coordinate (`"lat"` or `"lon"`).
        what: &'static str,
        /// Its position in the array.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A date's components are out of range.
    #[error(
        "invalid date at index {index}: {date} (need month 1-12, day 1-31, hour 0-23, minute 0-59)"
    )]
    InvalidDate {
        /// Its position in the dates array.
        index: usize,
        /// The offending date.
        date: DateParts,
    },
    /// A fixed colour range is not finite or not increasing.
    #[error("invalid colour range {min}..{max}: both ends must be finite and min < max")]
    InvalidColorRange {
        /// Lower end given.
        min: f64,
        /// Upper end given.
        max: f64,
    },
    /// The requested image size is too small to lay out or too large to allocate.
    #[error(
        "invalid image size {width}×{height}: each side must be {}..={} pixels",
        crate::MIN_SIZE,
        crate::MAX_SIZE
    )]
    InvalidSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// `save` was given a path whose extension names no supported format.
    #[error("cannot save {}: unknown extension, expected .png or .svg", path.display())]
    UnknownExtension {
        /// The path given.
        path: PathBuf,
    },
    /// Writing the file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    Encode(String),
    /// The bundled font could not be parsed (a build problem, not a data problem).
    #[error("bundled font could not be loaded: {0}")]
    Font(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
