//! CF calendars: leap rules, day numbers and the tick timeline.
//!
//! Every conversion is O(1) arithmetic on day numbers (no loops over years), so decoding or
//! taking fields of large time axes is cheap.

use crate::{CftimeError, DateTime, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Microseconds in a second.
pub(crate) const US_PER_SECOND: i64 = 1_000_000;
/// Microseconds in a minute.
pub(crate) const US_PER_MINUTE: i64 = 60 * US_PER_SECOND;
/// Microseconds in an hour.
pub(crate) const US_PER_HOUR: i64 = 60 * US_PER_MINUTE;
/// Microseconds in a day.
pub(crate) const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// A CF calendar (CF conventions §4.4.1).
///
/// `Standard` (alias `gregorian`) is the Julian calendar up to 1582-10-04 followed directly by
/// the Gregorian calendar from 1582-10-15; the ten days between do not exist. `Standard` and
/// `Julian` have no year 0 (year -1 is followed by year 1), as in cftime; the other calendars
/// count years astronomically with a year 0.
///
/// ```
/// use gridflow_cftime::Calendar;
/// let cal: Calendar = "365_day".parse()?;
/// assert_eq!(cal, Calendar::NoLeap);
/// assert_eq!(cal.name(), "noleap");
/// assert_eq!(Calendar::Day360.days_in_month(2000, 2), 30);
/// # Ok::<(), gridflow_cftime::CftimeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Calendar {
    /// Mixed Julian/Gregorian calendar (CF `standard`, alias `gregorian`), the CF default.
    #[default]
    #[serde(rename = "standard", alias = "gregorian")]
    Standard,
    /// The Gregorian calendar extended backwards (CF `proleptic_gregorian`).
    #[serde(rename = "proleptic_gregorian")]
    ProlepticGregorian,
    /// The Julian calendar: every fourth year is a leap year (CF `julian`).
    #[serde(rename = "julian")]
    Julian,
    /// 365 days in every year (CF `noleap`, alias `365_day`).
    #[serde(rename = "noleap", alias = "365_day")]
    NoLeap,
    /// 366 days in every year (CF `all_leap`, alias `366_day`).
    #[serde(rename = "all_leap", alias = "366_day")]
    AllLeap,
    /// Twelve months of 30 days (CF `360_day`).
    #[serde(rename = "360_day")]
    Day360,
}

/// Days before each month (index 0..12) in a common year.
const CUM_COMMON: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
/// Days before each month (index 0..12) in a leap year.
const CUM_LEAP: [u32; 13] = [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366];

/// Day of a year that starts on March 1 (so the leap day comes last).
#[inline]
const fn march_day_of_year(month: i64, day: i64) -> i64 {
    let mp = (month + 9) % 12;
    (153 * mp + 2) / 5 + day - 1
}

/// Month and day from a day (0..366) of a March-based year.
#[inline]
fn march_month_day(doy: u32) -> (u32, u32) {
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (month, day)
}

/// Days since proleptic Gregorian 0000-03-01 (astronomical year).
#[inline]
const fn gregorian_raw(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + march_day_of_year(month, day)
}

/// Inverse of [`gregorian_raw`].
#[inline]
fn gregorian_from_raw(z: i64) -> (i64, u32, u32) {
    let era = z.div_euclid(146_097);
    // Within an era everything is small and non-negative: u32 division by constants is cheap.
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let (month, day) = march_month_day(doe - (365 * yoe + yoe / 4 - yoe / 100));
    (
        era * 400 + i64::from(yoe) + i64::from(month <= 2),
        month,
        day,
    )
}

/// Days since Julian 0000-03-01 (astronomical year).
#[inline]
const fn julian_raw(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let cycle = y.div_euclid(4);
    (cycle * 1461) + (y - cycle * 4) * 365 + march_day_of_year(month, day)
}

/// Inverse of [`julian_raw`].
#[inline]
fn julian_from_raw(z: i64) -> (i64, u32, u32) {
    let cycle = z.div_euclid(1461);
    let doc = (z - cycle * 1461) as u32;
    let yoc = (doc - doc / 1460) / 365;
    let (month, day) = march_month_day(doc - 365 * yoc);
    (
        cycle * 4 + i64::from(yoc) + i64::from(month <= 2),
        month,
        day,
    )
}

const GREGORIAN_EPOCH: i64 = gregorian_raw(1970, 1, 1);
const JULIAN_EPOCH: i64 = julian_raw(1970, 1, 1);
/// 1582-10-15, the first Gregorian day of the standard calendar, in days since 1970-01-01.
const SWITCH_DAY: i64 = gregorian_raw(1582, 10, 15) - GREGORIAN_EPOCH;
/// Shift from Julian-epoch day numbers to the standard calendar's timeline, chosen so that
/// Julian 1582-10-04 is the day before [`SWITCH_DAY`].
const JULIAN_TO_STANDARD: i64 = SWITCH_DAY - 1 - (julian_raw(1582, 10, 4) - JULIAN_EPOCH);
/// Julian day number of Gregorian 1970-01-01.
const JDN_1970: i64 = 2_440_588;

#[inline]
fn is_gregorian_leap(astronomical_year: i64) -> bool {
    // Given divisibility by 4: by 100 means by 25, and by 400 means by 16 (and 25).
    let y = astronomical_year;
    y & 3 == 0 && (y % 25 != 0 || y & 15 == 0)
}

#[inline]
fn is_julian_leap(astronomical_year: i64) -> bool {
    astronomical_year & 3 == 0
}

/// The meteorological season of a month: "DJF", "MAM", "JJA" or "SON" ("" outside 1–12).
///
/// ```
/// assert_eq!(gridflow_cftime::season(1), "DJF");
/// assert_eq!(gridflow_cftime::season(9), "SON");
/// ```
#[inline]
pub fn season(month: u32) -> &'static str {
    match month {
        12 | 1 | 2 => "DJF",
        3..=5 => "MAM",
        6..=8 => "JJA",
        9..=11 => "SON",
        _ => "",
    }
}

impl Calendar {
    /// All calendars, once each.
    pub const ALL: [Calendar; 6] = [
        Calendar::Standard,
        Calendar::ProlepticGregorian,
        Calendar::Julian,
        Calendar::NoLeap,
        Calendar::AllLeap,
        Calendar::Day360,
    ];

    /// The CF name: "standard", "proleptic_gregorian", "julian", "noleap", "all_leap" or
    /// "360_day".
    pub fn name(&self) -> &'static str {
        match self {
            Calendar::Standard => "standard",
            Calendar::ProlepticGregorian => "proleptic_gregorian",
            Calendar::Julian => "julian",
            Calendar::NoLeap => "noleap",
            Calendar::AllLeap => "all_leap",
            Calendar::Day360 => "360_day",
        }
    }

    /// Whether year 0 exists (false for `Standard` and `Julian`, as cftime's defaults).
    #[inline]
    pub fn has_year_zero(&self) -> bool {
        !matches!(self, Calendar::Standard | Calendar::Julian)
    }

    /// Whether `year` has a leap day (cftime's `is_leap_year`; `Standard` uses the Julian rule
    /// before 1582). Year 0 of a calendar without one is reported as not leap.
    #[inline]
    pub fn is_leap_year(&self, year: i32) -> bool {
        if year == 0 && !self.has_year_zero() {
            return false;
        }
        let a = self.astronomical(year);
        match self {
            Calendar::Standard if year > 1581 => is_gregorian_leap(a),
            Calendar::Standard | Calendar::Julian => is_julian_leap(a),
            Calendar::ProlepticGregorian => is_gregorian_leap(a),
            Calendar::NoLeap | Calendar::Day360 => false,
            Calendar::AllLeap => true,
        }
    }

    /// The last day number of a month (cftime's `daysinmonth`), 0 for a month outside 1–12.
    ///
    /// October 1582 of the standard calendar reports 31, as cftime and xarray do, although
    /// only 21 of its days exist.
    #[inline]
    pub fn days_in_month(&self, year: i32, month: u32) -> u32 {
        if !(1..=12).contains(&month) {
            return 0;
        }
        if *self == Calendar::Day360 {
            return 30;
        }
        let i = month as usize;
        let cum = if self.is_leap_year(year) {
            &CUM_LEAP
        } else {
            &CUM_COMMON
        };
        cum[i] - cum[i - 1]
    }

    /// The number of days that exist in `year` (355 for 1582 in the standard calendar; 0 for
    /// a year 0 that does not exist).
    pub fn days_in_year(&self, year: i32) -> u32 {
        match self {
            Calendar::Day360 => 360,
            Calendar::NoLeap => 365,
            Calendar::AllLeap => 366,
            _ if year == 0 && !self.has_year_zero() => 0,
            Calendar::Standard if year == 1582 => 355,
            _ if self.is_leap_year(year) => 366,
            _ => 365,
        }
    }

    /// The astronomical year number (year 0 = 1 BC) of a calendar year.
    #[inline]
    pub(crate) fn astronomical(&self, year: i32) -> i64 {
        let y = i64::from(year);
        if !self.has_year_zero() && y < 0 {
            y + 1
        } else {
            y
        }
    }

    /// The calendar year of an astronomical year number (saturating at the i32 range).
    #[inline]
    pub(crate) fn civil_year(&self, astronomical: i64) -> i32 {
        let y = if !self.has_year_zero() && astronomical <= 0 {
            astronomical - 1
        } else {
            astronomical
        };
        y.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// The calendar year after `year` (skipping a missing year 0).
    pub(crate) fn next_year(&self, year: i32) -> i32 {
        self.civil_year(self.astronomical(year) + 1)
    }

    /// Days since 1970-01-01 of this calendar. Fields are not validated: a day past the end of
    /// its month counts on into the next.
    #[inline]
    pub(crate) fn days_from_civil(&self, year: i32, month: u32, day: u32) -> i64 {
        let a = self.astronomical(year);
        let (m, d) = (i64::from(month.clamp(1, 12)), i64::from(day));
        let cum = |table: &[u32; 13]| i64::from(table[(month.clamp(1, 12) - 1) as usize]);
        match self {
            Calendar::ProlepticGregorian => gregorian_raw(a, m, d) - GREGORIAN_EPOCH,
            Calendar::Julian => julian_raw(a, m, d) - JULIAN_EPOCH,
            Calendar::Standard => {
                if (year, month, day) >= (1582, 10, 15) {
                    gregorian_raw(a, m, d) - GREGORIAN_EPOCH
                } else {
                    julian_raw(a, m, d) - JULIAN_EPOCH + JULIAN_TO_STANDARD
                }
            }
            Calendar::NoLeap => (a - 1970) * 365 + cum(&CUM_COMMON) + d - 1,
            Calendar::AllLeap => (a - 1970) * 366 + cum(&CUM_LEAP) + d - 1,
            Calendar::Day360 => (a - 1970) * 360 + (m - 1) * 30 + d - 1,
        }
    }

    /// Year (calendar numbering), month and day of a day number since 1970-01-01.
    #[inline]
    pub(crate) fn civil_from_days(&self, days: i64) -> (i32, u32, u32) {
        let fixed_year = |len: i64, cum: &[u32; 13]| {
            let doy = days.rem_euclid(len) as u32;
            // Months are at most 31 days long, so doy / 31 never overshoots the month index.
            let mut i = (doy / 31) as usize;
            while i < 11 && cum[i + 1] <= doy {
                i += 1;
            }
            (1970 + days.div_euclid(len), i as u32 + 1, doy - cum[i] + 1)
        };
        let (a, month, day) = match self {
            Calendar::ProlepticGregorian => gregorian_from_raw(days + GREGORIAN_EPOCH),
            Calendar::Julian => julian_from_raw(days + JULIAN_EPOCH),
            Calendar::Standard if days >= SWITCH_DAY => gregorian_from_raw(days + GREGORIAN_EPOCH),
            Calendar::Standard => julian_from_raw(days - JULIAN_TO_STANDARD + JULIAN_EPOCH),
            Calendar::NoLeap => fixed_year(365, &CUM_COMMON),
            Calendar::AllLeap => fixed_year(366, &CUM_LEAP),
            Calendar::Day360 => {
                let doy = days.rem_euclid(360) as u32;
                (1970 + days.div_euclid(360), doy / 30 + 1, doy % 30 + 1)
            }
        };
        (self.civil_year(a), month, day)
    }

    /// Microseconds since 1970-01-01T00:00:00 of this calendar: a monotone integer timeline.
    ///
    /// `dt` should be valid in this calendar (see [`DateTime::new`]); a date from another
    /// calendar is counted arithmetically (Feb 30 becomes the second day after Feb 28 in a
    /// 365-day calendar). The result saturates at the ends of `i64`.
    ///
    /// ```
    /// use gridflow_cftime::{Calendar, DateTime};
    /// let cal = Calendar::Day360;
    /// let dt = DateTime::new(cal, 1970, 2, 1, 0, 0, 0, 0)?;
    /// assert_eq!(cal.to_ticks(&dt), 30 * 86_400_000_000);
    /// assert_eq!(cal.from_ticks(30 * 86_400_000_000), dt);
    /// # Ok::<(), gridflow_cftime::CftimeError>(())
    /// ```
    #[inline]
    pub fn to_ticks(&self, dt: &DateTime) -> i64 {
        let days = self.days_from_civil(dt.year(), dt.month(), dt.day());
        // i128 because the first day's midnight may lie below i64::MIN while the tick does not.
        let ticks = i128::from(days) * i128::from(US_PER_DAY) + i128::from(time_of_day(dt));
        ticks.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The date and time at `ticks` microseconds since 1970-01-01T00:00:00 of this calendar.
    /// Every `i64` is a valid tick, and `to_ticks(&from_ticks(t)) == t`.
    #[inline]
    pub fn from_ticks(&self, ticks: i64) -> DateTime {
        let days = ticks.div_euclid(US_PER_DAY);
        let (year, month, day) = self.civil_from_days(days);
        // Seconds of the day fit in u32, whose divisions by constants are cheap.
        // Wrapping: near i64::MIN the day's midnight underflows, the difference does not.
        let tod = ticks.wrapping_sub(days.wrapping_mul(US_PER_DAY)) as u64;
        let secs = (tod / US_PER_SECOND as u64) as u32;
        let microsecond = (tod % US_PER_SECOND as u64) as u32;
        let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
        DateTime::from_fields(year, month, day, hour, minute, second, microsecond)
    }

    /// Midnight at the start of the day containing `ticks`: the `origin` to pass to
    /// [`crate::Frequency::floor`] for pandas' `origin="start_day"`.
    pub fn start_of_day(&self, ticks: i64) -> i64 {
        ticks - ticks.rem_euclid(US_PER_DAY)
    }

    /// Day of the year, 1-based, as cftime's `dayofyr`: from the month and day alone, so
    /// 1582-10-15 of the standard calendar is day 288 although ten days before it are missing.
    #[inline]
    pub fn dayofyear(&self, dt: &DateTime) -> u32 {
        let m = dt.month().clamp(1, 12) as usize;
        match self {
            Calendar::Day360 => (m as u32 - 1) * 30 + dt.day(),
            _ if self.is_leap_year(dt.year()) => CUM_LEAP[m - 1] + dt.day(),
            _ => CUM_COMMON[m - 1] + dt.day(),
        }
    }

    /// Day of the week, Monday = 0 … Sunday = 6, as cftime's `dayofwk`. For the idealized
    /// calendars it continues cftime's count of days from year 0 of that calendar.
    #[inline]
    pub fn dayofweek(&self, dt: &DateTime) -> u32 {
        let days = self.days_from_civil(dt.year(), dt.month(), dt.day());
        let offset = match self {
            Calendar::Standard | Calendar::ProlepticGregorian => JDN_1970,
            Calendar::Julian => JDN_1970 + JULIAN_TO_STANDARD,
            Calendar::NoLeap => 1970 * 365,
            Calendar::AllLeap => 1970 * 366,
            Calendar::Day360 => 1970 * 360,
        };
        (days + offset).rem_euclid(7) as u32
    }

    /// `dt` moved by `n` months (negative goes back), keeping the time of day; the day is
    /// clamped to the length of the new month. In the standard calendar a day that lands in
    /// the 1582 gap (Oct 5–14) moves on to 1582-10-15.
    ///
    /// ```
    /// use gridflow_cftime::{Calendar, DateTime};
    /// let cal = Calendar::NoLeap;
    /// let jan31 = DateTime::new(cal, 2000, 1, 31, 6, 0, 0, 0)?;
    /// assert_eq!(cal.add_months(&jan31, 1), DateTime::new(cal, 2000, 2, 28, 6, 0, 0, 0)?);
    /// # Ok::<(), gridflow_cftime::CftimeError>(())
    /// ```
    pub fn add_months(&self, dt: &DateTime, n: i32) -> DateTime {
        let index = self.month_index(dt.year(), dt.month()) + i64::from(n);
        let (year, month) = self.month_from_index(index);
        let mut day = dt.day().min(self.days_in_month(year, month));
        if *self == Calendar::Standard && (year, month) == (1582, 10) && (5..=14).contains(&day) {
            day = 15;
        }
        DateTime::from_fields(
            year,
            month,
            day,
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond(),
        )
    }

    /// Months since astronomical year 0, January.
    pub(crate) fn month_index(&self, year: i32, month: u32) -> i64 {
        self.astronomical(year) * 12 + i64::from(month.clamp(1, 12)) - 1
    }

    /// Inverse of [`Calendar::month_index`]: (calendar year, month).
    pub(crate) fn month_from_index(&self, index: i64) -> (i32, u32) {
        let year = self.civil_year(index.div_euclid(12));
        (year, index.rem_euclid(12) as u32 + 1)
    }

    /// Checks date fields against this calendar; the error text says which field and why.
    #[allow(clippy::too_many_arguments)] // one argument per civil field
    pub(crate) fn check_fields(
        &self,
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        microsecond: u32,
    ) -> std::result::Result<(), String> {
        if !(1..=12).contains(&month) {
            return Err(format!("month {month} is not in 1-12"));
        }
        if year == 0 && !self.has_year_zero() {
            return Err(format!(
                "year 0 does not exist in the {self} calendar (year -1 is followed by year 1)"
            ));
        }
        let last = self.days_in_month(year, month);
        if day == 0 || day > last {
            return Err(format!(
                "day {day} does not exist in month {month} of year {year} in the {self} \
                 calendar (the month has {last} days)"
            ));
        }
        if *self == Calendar::Standard && (year, month) == (1582, 10) && (5..=14).contains(&day) {
            return Err(
                "1582-10-05 to 1582-10-14 do not exist in the standard calendar (1582-10-04 \
                 is followed by 1582-10-15)"
                    .to_string(),
            );
        }
        for (name, value, max) in [
            ("hour", hour, 23),
            ("minute", minute, 59),
            ("second", second, 59),
            ("microsecond", microsecond, 999_999),
        ] {
            if value > max {
                return Err(format!("{name} {value} is not in 0-{max}"));
            }
        }
        let tod = i64::from(hour) * US_PER_HOUR
            + i64::from(minute) * US_PER_MINUTE
            + i64::from(second) * US_PER_SECOND
            + i64::from(microsecond);
        let ticks = i128::from(self.days_from_civil(year, month, day)) * i128::from(US_PER_DAY)
            + i128::from(tod);
        i64::try_from(ticks).map(|_| ()).map_err(|_| {
            "it lies outside the 64-bit microsecond timeline (about 292,000 years either \
                 side of 1970)"
                .to_string()
        })
    }
}

/// Microseconds since midnight.
#[inline]
pub(crate) fn time_of_day(dt: &DateTime) -> i64 {
    i64::from(dt.hour()) * US_PER_HOUR
        + i64::from(dt.minute()) * US_PER_MINUTE
        + i64::from(dt.second()) * US_PER_SECOND
        + i64::from(dt.microsecond())
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Calendar {
    type Err = CftimeError;

    /// Parses a CF calendar name, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standard" | "gregorian" => Ok(Calendar::Standard),
            "proleptic_gregorian" => Ok(Calendar::ProlepticGregorian),
            "julian" => Ok(Calendar::Julian),
            "noleap" | "365_day" => Ok(Calendar::NoLeap),
            "all_leap" | "366_day" => Ok(Calendar::AllLeap),
            "360_day" => Ok(Calendar::Day360),
            _ => Err(CftimeError::UnknownCalendar {
                name: s.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_constants() {
        assert_eq!(JULIAN_TO_STANDARD, 13);
        // 1582-10-15 (Gregorian) is 141,427 days before 1970-01-01.
        assert_eq!(SWITCH_DAY, -141_427);
        assert_eq!(GREGORIAN_EPOCH, 719_468);
    }

    #[test]
    fn civil_round_trip_over_days() {
        for cal in Calendar::ALL {
            let mut previous: Option<(i32, u32, u32)> = None;
            for days in -800_000..800_000_i64 {
                let (y, m, d) = cal.civil_from_days(days);
                assert_eq!(cal.days_from_civil(y, m, d), days, "{cal} {y}-{m}-{d}");
                assert!(
                    cal.check_fields(y, m, d, 0, 0, 0, 0).is_ok(),
                    "{cal} {y}-{m}-{d}"
                );
                if let Some(p) = previous {
                    assert!(p < (y, m, d), "{cal}: {p:?} then {y}-{m}-{d}");
                }
                previous = Some((y, m, d));
            }
        }
    }

    #[test]
    fn standard_gap() {
        let cal = Calendar::Standard;
        assert_eq!(cal.civil_from_days(SWITCH_DAY - 1), (1582, 10, 4));
        assert_eq!(cal.civil_from_days(SWITCH_DAY), (1582, 10, 15));
        let err = cal.check_fields(1582, 10, 10, 0, 0, 0, 0).unwrap_err();
        assert!(
            err.contains("1582-10-04 is followed by 1582-10-15"),
            "{err}"
        );
    }

    #[test]
    fn parse_names() {
        for (name, cal) in [
            ("Gregorian", Calendar::Standard),
            (" STANDARD ", Calendar::Standard),
            ("proleptic_gregorian", Calendar::ProlepticGregorian),
            ("Julian", Calendar::Julian),
            ("365_day", Calendar::NoLeap),
            ("NoLeap", Calendar::NoLeap),
            ("366_day", Calendar::AllLeap),
            ("all_leap", Calendar::AllLeap),
            ("360_DAY", Calendar::Day360),
        ] {
            assert_eq!(name.parse::<Calendar>().unwrap(), cal, "{name}");
        }
        let err = "lunar".parse::<Calendar>().unwrap_err().to_string();
        assert!(
            err.contains("\"lunar\"") && err.contains("360_day"),
            "{err}"
        );
        for cal in Calendar::ALL {
            assert_eq!(cal.name().parse::<Calendar>().unwrap(), cal);
        }
    }
}
