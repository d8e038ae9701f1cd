//! Calendar-free civil date and time fields.

use crate::{Calendar, CftimeError, Result};
use std::fmt;

/// A date and time of day as civil fields, without a calendar attached.
///
/// Build one with [`DateTime::new`] (validated against a calendar) or get one from
/// [`Calendar::from_ticks`]. Years follow the calendar's numbering (no year 0 in the
/// standard and Julian calendars). The derived ordering (year, month, day, hour, minute,
/// second, microsecond) is chronological. `Display` gives the ISO form cftime's `isoformat()`
/// does: `1850-01-01T03:00:00`, with `.ffffff` only when microseconds are non-zero.
///
/// ```
/// use gridflow_cftime::{Calendar, DateTime};
/// let dt = DateTime::new(Calendar::Day360, 2000, 2, 30, 12, 0, 0, 0)?;
/// assert_eq!((dt.month(), dt.day()), (2, 30));
/// assert_eq!(dt.to_string(), "2000-02-30T12:00:00");
/// assert!(DateTime::new(Calendar::NoLeap, 2000, 2, 29, 0, 0, 0, 0).is_err());
/// # Ok::<(), gridflow_cftime::CftimeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    microsecond: u32,
}

impl DateTime {
    /// Date and time fields checked against `cal`: the month, the day in that month (and the
    /// 1582 gap of the standard calendar), year 0 where it does not exist, the time of day,
    /// and that the instant fits the `i64` microsecond timeline.
    #[allow(clippy::too_many_arguments)] // one argument per civil field, as the API is specified
    pub fn new(
        cal: Calendar,
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        microsecond: u32,
    ) -> Result<DateTime> {
        let dt = DateTime::from_fields(year, month, day, hour, minute, second, microsecond);
        cal.check_fields(year, month, day, hour, minute, second, microsecond)
            .map_err(|reason| CftimeError::InvalidDate {
                date: dt.to_string(),
                calendar: cal,
                reason,
            })?;
        Ok(dt)
    }

    /// Midnight of a day, checked against `cal` like [`DateTime::new`].
    pub fn ymd(cal: Calendar, year: i32, month: u32, day: u32) -> Result<DateTime> {
        DateTime::new(cal, year, month, day, 0, 0, 0, 0)
    }

    /// Fields taken as they are (callers guarantee validity).
    #[inline]
    pub(crate) const fn from_fields(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        microsecond: u32,
    ) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            microsecond,
        }
    }

    /// The year, in the calendar's numbering.
    #[inline]
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    #[inline]
    pub fn month(&self) -> u32 {
        self.month
    }

    /// The day of the month, from 1.
    #[inline]
    pub fn day(&self) -> u32 {
        self.day
    }

    /// The hour, 0–23.
    #[inline]
    pub fn hour(&self) -> u32 {
        self.hour
    }

    /// The minute, 0–59.
    #[inline]
    pub fn minute(&self) -> u32 {
        self.minute
    }

    /// The second, 0–59.
    #[inline]
    pub fn second(&self) -> u32 {
        self.second
    }

    /// The microsecond, 0–999999.
    #[inline]
    pub fn microsecond(&self) -> u32 {
        self.microsecond
    }

    /// The date part as `YYYY-MM-DD` (years below 0 as `-YYYY`, as cftime writes them).
    pub(crate) fn fmt_date(&self, f: &mut impl fmt::Write) -> fmt::Result {
        if self.year < 0 {
            write!(f, "{:05}-{:02}-{:02}", self.year, self.month, self.day)
        } else {
            write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_date(f)?;
        write!(f, "T{:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        if self.microsecond != 0 {
            write!(f, ".{:06}", self.microsecond)?;
        }
        Ok(())
    }
}
