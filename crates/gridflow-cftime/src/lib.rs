//! CF calendars and time units for gridflow.
//!
//! Climate model output counts time as numbers in units such as `"days since 1850-01-01"` on
//! one of the CF calendars ([`Calendar`]). This crate converts between those numbers
//! ([`CfUnits`]), civil fields ([`DateTime`]) and *ticks*: `i64` microseconds since
//! 1970-01-01T00:00:00 in the same calendar, a monotone timeline a time index stores as a
//! `Vec<i64>` plus one calendar. It also formats and parses ISO strings (including partial
//! strings for selection), and steps through frequencies ([`Frequency`], [`date_range`]) the
//! way xarray does for cftime indexes. Results match cftime 1.6 and xarray (see the reference
//! tests), and every conversion is O(1) day-number arithmetic.
//!
//! ```
//! use gridflow_cftime::{Calendar, CfUnits, date_range, season};
//! let cal: Calendar = "360_day".parse()?;
//! let units = CfUnits::parse("days since 1850-01-01", cal)?;
//! let t = units.decode(59.125)?.ok_or("missing")?;
//! assert_eq!(cal.format_iso(t), "1850-02-30T03:00:00");
//! assert_eq!(units.encode(t), 59.125);
//! let dt = cal.from_ticks(t);
//! assert_eq!((cal.dayofyear(&dt), season(dt.month())), (60, "DJF"));
//! let months = date_range(cal, "1850-01", Some("1850-12-30"), None, "MS")?;
//! assert_eq!(months.len(), 12);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod calendar;
mod datetime;
mod error;
mod freq;
mod iso;
mod units;

pub use calendar::{Calendar, season};
pub use datetime::DateTime;
pub use error::{CftimeError, Result};
pub use freq::{Frequency, MAX_RANGE_LEN, date_range};
pub use units::{CfUnits, TimeUnit};

/// Microseconds per day: one day in ticks.
pub const US_PER_DAY: i64 = calendar::US_PER_DAY;
