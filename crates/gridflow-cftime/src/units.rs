//! CF time units (`<unit> since <reference>`): parsing, decoding and encoding.

use crate::calendar::{US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND};
use crate::iso::lex;
use crate::{Calendar, CftimeError, DateTime, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The unit of a CF time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// 86,400 seconds.
    Days,
    /// 3,600 seconds.
    Hours,
    /// 60 seconds.
    Minutes,
    /// Seconds.
    Seconds,
    /// 1/1,000 second.
    Milliseconds,
    /// 1/1,000,000 second.
    Microseconds,
}

impl TimeUnit {
    /// All units, longest first.
    pub const ALL: [TimeUnit; 6] = [
        TimeUnit::Days,
        TimeUnit::Hours,
        TimeUnit::Minutes,
        TimeUnit::Seconds,
        TimeUnit::Milliseconds,
        TimeUnit::Microseconds,
    ];

    /// Microseconds in one unit.
    pub fn micros(&self) -> i64 {
        match self {
            TimeUnit::Days => US_PER_DAY,
            TimeUnit::Hours => US_PER_HOUR,
            TimeUnit::Minutes => US_PER_MINUTE,
            TimeUnit::Seconds => US_PER_SECOND,
            TimeUnit::Milliseconds => 1_000,
            TimeUnit::Microseconds => 1,
        }
    }

    /// The CF name: "days", "hours", "minutes", "seconds", "milliseconds" or "microseconds".
    pub fn name(&self) -> &'static str {
        match self {
            TimeUnit::Days => "days",
            TimeUnit::Hours => "hours",
            TimeUnit::Minutes => "minutes",
            TimeUnit::Seconds => "seconds",
            TimeUnit::Milliseconds => "milliseconds",
            TimeUnit::Microseconds => "microseconds",
        }
    }

    /// A unit from any spelling cftime accepts (`day`, `d`, `hr`, `h`, `min`, `sec`, `s`,
    /// `msec`, `ms`, `microsec`, …, any case), plus `us`, `usec` and `usecs`.
    ///
    /// ```
    /// use gridflow_cftime::TimeUnit;
    /// assert_eq!(TimeUnit::from_cf("HRS"), Some(TimeUnit::Hours));
    /// assert_eq!(TimeUnit::from_cf("months"), None);
    /// ```
    pub fn from_cf(name: &str) -> Option<TimeUnit> {
        let unit =
            match name.to_ascii_lowercase().as_str() {
                "days" | "day" | "d" => TimeUnit::Days,
                "hours" | "hour" | "hrs" | "hr" | "h" => TimeUnit::Hours,
                "minutes" | "minute" | "mins" | "min" => TimeUnit::Minutes,
                "seconds" | "second" | "secs" | "sec" | "s" => TimeUnit::Seconds,
                "milliseconds" | "millisecond" | "millisecs" | "millisec" | "msecs" | "msec"
                | "ms" => TimeUnit::Milliseconds,
                "microseconds" | "microsecond" | "microsecs" | "microsec" | "usecs" | "usec"
                | "us" => TimeUnit::Microseconds,
                _ => return None,
            };
        Some(unit)
    }

    /// Whether cftime snaps a result one microsecond off a whole second (units of a second
    /// or longer), see [`CfUnits::decode`].
    fn snaps(&self) -> bool {
        !matches!(self, TimeUnit::Milliseconds | TimeUnit::Microseconds)
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TimeUnit {
    type Err = CftimeError;

    fn from_str(s: &str) -> Result<Self> {
        TimeUnit::from_cf(s.trim()).ok_or_else(|| CftimeError::InvalidUnits {
            units: s.to_string(),
            reason: unknown_unit_reason(s.trim()),
        })
    }
}

fn unknown_unit_reason(unit: &str) -> String {
    let lower = unit.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "month" | "months" | "year" | "years" | "common_year" | "common_years"
    ) {
        format!(
            "{unit:?} units have no fixed length in general (cftime allows months only for \
             360_day and common_years only for noleap); they are not supported"
        )
    } else {
        format!(
            "unknown time unit {unit:?}; expected days, hours, minutes, seconds, milliseconds \
             or microseconds (or an abbreviation such as d, h, hr, min, s, sec, ms, msec, us)"
        )
    }
}

/// Parsed CF time units: numbers count `unit`s since `reference` (shifted by a time zone
/// offset) in `calendar`.
///
/// ```
/// use gridflow_cftime::{Calendar, CfUnits};
/// let units = CfUnits::parse("hours since 1970-01-01 00:00:00 +05:30", Calendar::Standard)?;
/// assert_eq!(units.tz_offset_minutes, 330);
/// let t = units.decode(6.0)?.ok_or("NaN")?;
/// assert_eq!(Calendar::Standard.format_iso(t), "1970-01-01T00:30:00");
/// assert_eq!(units.encode(t), 6.0);
/// assert_eq!(units.to_string(), "hours since 1970-01-01 00:00:00 +05:30");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CfUnits {
    /// The unit numbers count.
    pub unit: TimeUnit,
    /// The reference date and time as written (local to the time zone).
    pub reference: DateTime,
    /// The time zone of the reference, minutes east of UTC (0 when none was given).
    pub tz_offset_minutes: i32,
    /// The calendar of the axis.
    pub calendar: Calendar,
}

impl CfUnits {
    /// Units with a reference in UTC.
    pub fn new(unit: TimeUnit, reference: DateTime, calendar: Calendar) -> CfUnits {
        CfUnits {
            unit,
            reference,
            tz_offset_minutes: 0,
            calendar,
        }
    }

    /// Parses `"<unit> since <date>[ <time>][ <zone>]"` as cftime does: `since` and unit
    /// names in any case; dates like `1850-1-1`, `1850-01-01 00:00:00`,
    /// `1850-01-01T00:00:00Z`, `0001-01-01 00:00:00.0`, `1850-01-01 0:0:0`; zones `Z`, `UTC`,
    /// `GMT`, `+05:30`, `-0600`. A time needs hours and minutes. The reference must exist in
    /// `calendar`. Unlike cftime, unknown trailing text is an error rather than ignored.
    pub fn parse(units: &str, calendar: Calendar) -> Result<CfUnits> {
        let fail = |reason: String| CftimeError::InvalidUnits {
            units: units.to_string(),
            reason,
        };
        let text = units.trim();
        let (unit_text, rest) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| fail("expected \"<unit> since <date>\"".to_string()))?;
        let rest = rest.trim_start();
        let (since, date) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !since.eq_ignore_ascii_case("since") {
            return Err(fail(format!(
                "expected \"<unit> since <date>\", found {since:?} after the unit"
            )));
        }
        let unit =
            TimeUnit::from_cf(unit_text).ok_or_else(|| fail(unknown_unit_reason(unit_text)))?;
        let date = date.trim();
        if date.is_empty() {
            return Err(fail("the reference date is missing".to_string()));
        }
        let f = lex(date, true).map_err(|r| fail(format!("reference date {date:?}: {r}")))?;
        let (Some(month), Some(day)) = (f.month, f.day) else {
            return Err(fail(format!(
                "reference date {date:?} needs a year, month and day (e.g. 1850-01-01)"
            )));
        };
        if f.hour.is_some() && f.minute.is_none() {
            return Err(fail(format!(
                "reference date {date:?}: a time needs hours and minutes (HH:MM)"
            )));
        }
        let microsecond = f.fraction.map(cftime_fraction).unwrap_or(0);
        let reference = DateTime::new(
            calendar,
            f.year,
            month,
            day,
            f.hour.unwrap_or(0),
            f.minute.unwrap_or(0),
            f.second.unwrap_or(0),
            microsecond,
        )
        .map_err(|e| match e {
            CftimeError::InvalidDate { reason, .. } => {
                fail(format!("reference date {date:?}: {reason}"))
            }
            other => other,
        })?;
        Ok(CfUnits {
            unit,
            reference,
            tz_offset_minutes: f.tz_minutes.unwrap_or(0),
            calendar,
        })
    }

    /// The tick of value 0: the reference moved to UTC by the time zone offset.
    pub fn reference_ticks(&self) -> i64 {
        self.calendar
            .to_ticks(&self.reference)
            .saturating_sub(i64::from(self.tz_offset_minutes) * US_PER_MINUTE)
    }

    /// The tick a number stands for; `None` for NaN (a missing time).
    ///
    /// Rounds to the microsecond exactly as cftime's `num2date` does on x86-64: the value
    /// times the unit in microseconds is formed in 80-bit extended precision, rounded half to
    /// even, and, for units of a second or longer, a result one microsecond past (or short of)
    /// a whole second is taken from the floor (or ceiling) instead, which removes float noise
    /// such as 1/3 day. An error for ±inf or a result outside the `i64` timeline names the
    /// value and units.
    pub fn decode(&self, value: f64) -> Result<Option<i64>> {
        self.decode_at(value, self.reference_ticks())
    }

    /// [`CfUnits::decode`] for many values.
    pub fn decode_slice(&self, values: &[f64]) -> Result<Vec<Option<i64>>> {
        let reference = self.reference_ticks();
        values
            .iter()
            .map(|&v| self.decode_at(v, reference))
            .collect()
    }

    fn decode_at(&self, value: f64, reference: i64) -> Result<Option<i64>> {
        if value.is_nan() {
            return Ok(None);
        }
        let fail = |reason: &str| CftimeError::Decode {
            value: value.to_string(),
            units: self.to_string(),
            reason: reason.to_string(),
        };
        if value.is_infinite() {
            return Err(fail("it is not a finite number"));
        }
        let offset = scale_like_cftime(value, self.unit.micros(), self.unit.snaps())
            .and_then(|o| i64::try_from(o).ok())
            .ok_or_else(|| fail("the offset in microseconds does not fit in 64 bits"))?;
        reference
            .checked_add(offset)
            .map(Some)
            .ok_or_else(|| fail("the time lies outside the 64-bit microsecond timeline"))
    }

    /// The tick an integer stands for, exactly (cftime's integer path).
    pub fn decode_i64(&self, value: i64) -> Result<i64> {
        value
            .checked_mul(self.unit.micros())
            .and_then(|o| self.reference_ticks().checked_add(o))
            .ok_or_else(|| CftimeError::Decode {
                value: value.to_string(),
                units: self.to_string(),
                reason: "the time lies outside the 64-bit microsecond timeline".to_string(),
            })
    }

    /// The number a tick stands for (cftime's `date2num`): exact when the offset is a whole
    /// number of units, otherwise the correctly rounded quotient. Multiples of 3 hours in
    /// days (k/8) are exact, so encoding never drifts.
    pub fn encode(&self, ticks: i64) -> f64 {
        let delta = i128::from(ticks) - i128::from(self.reference_ticks());
        let unit = i128::from(self.unit.micros());
        if delta % unit == 0 {
            return (delta / unit) as f64;
        }
        if delta.unsigned_abs() < 1 << 53 {
            // Both operands are exact in f64, so IEEE division rounds correctly.
            return delta as f64 / unit as f64;
        }
        // |delta| < 2^65: scale by 2^62 so the integer quotient keeps more than 64 bits, fold
        // the remainder into a sticky bit, and let the u128 -> f64 conversion round once.
        let n = delta.unsigned_abs() << 62;
        let q = n / unit.unsigned_abs();
        let sticky = u128::from(n % unit.unsigned_abs() != 0);
        let two_to_minus_62 = f64::from_bits((1023 - 62) << 52);
        let magnitude = (q | sticky) as f64 * two_to_minus_62;
        if delta < 0 { -magnitude } else { magnitude }
    }

    /// The number of whole units from the reference to `ticks`, when it is a whole number
    /// (what cftime returns as an integer); `None` otherwise or if it does not fit.
    pub fn encode_exact(&self, ticks: i64) -> Option<i64> {
        let delta = i128::from(ticks) - i128::from(self.reference_ticks());
        let unit = i128::from(self.unit.micros());
        if delta % unit == 0 {
            i64::try_from(delta / unit).ok()
        } else {
            None
        }
    }
}

impl fmt::Display for CfUnits {
    /// CF text that [`CfUnits::parse`] reads back to the same value, e.g.
    /// `days since 1850-01-01 00:00:00` or `hours since 1970-01-01 00:00:00.500000 -06:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reference;
        write!(f, "{} since ", self.unit)?;
        r.fmt_date(f)?;
        write!(f, " {:02}:{:02}:{:02}", r.hour(), r.minute(), r.second())?;
        if r.microsecond() != 0 {
            let digits = format!("{:06}", r.microsecond());
            // cftime reads fractions through a float and truncates; a trailing 1e-13 makes
            // the digits read back as written (e.g. ".000249" alone reads as 248 µs).
            if cftime_fraction(&digits) == r.microsecond() {
                write!(f, ".{digits}")?;
            } else {
                write!(f, ".{digits}0000001")?;
            }
        }
        let tz = self.tz_offset_minutes;
        if tz != 0 {
            let sign = if tz < 0 { '-' } else { '+' };
            write!(
                f,
                " {sign}{:02}:{:02}",
                tz.unsigned_abs() / 60,
                tz.unsigned_abs() % 60
            )?;
        }
        Ok(())
    }
}

/// Microseconds of a fraction-of-second digit string as cftime computes them:
/// `int(float("0." + digits) * 1e6)`, which truncates float noise (".000249" gives 248).
fn cftime_fraction(digits: &str) -> u32 {
    let x: f64 = format!("0.{digits}").parse().unwrap_or(0.0);
    (x * 1e6) as u32
}

/// `value * factor` rounded to an integer as cftime's `num2date` does: the product in x87
/// extended precision (64-bit significand), `rint` (half to even), then for snapping units a
/// result ≡ 1 (mod 10^6) is replaced by the floor and ≡ 999999 by the ceiling of the product.
/// `None` when the product is far outside the `i64` range.
fn scale_like_cftime(value: f64, factor: i64, snap: bool) -> Option<i128> {
    if value == 0.0 {
        return Some(0);
    }
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = i128::from(bits & ((1u64 << 52) - 1));
    let (mut mantissa, mut exp) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    // Exact product of the magnitudes: below 2^53 * 2^37 = 2^90.
    mantissa *= i128::from(factor);
    // Round to 64 significant bits, nearest-even, like the long double multiply.
    let bit_len = 128 - mantissa.leading_zeros() as i32;
    if bit_len > 64 {
        let drop = bit_len - 64;
        let mut kept = mantissa >> drop;
        let rem = mantissa & ((1 << drop) - 1);
        let half = 1i128 << (drop - 1);
        if rem > half || (rem == half && kept & 1 == 1) {
            kept += 1;
        }
        mantissa = kept;
        exp += drop;
    }
    let negative = value < 0.0;
    let signed = if negative { -mantissa } else { mantissa };
    if exp >= 0 {
        // An integer already; 2^65 and more is outside i64 anyway.
        let len = 128 - mantissa.leading_zeros() as i32;
        return if len + exp > 100 {
            None
        } else {
            Some(signed << exp)
        };
    }
    // floor and the remainder in units of 2^-k; k is capped because |signed| < 2^65, so a
    // larger shift gives the same floor and the same side of one half.
    let k = (-exp).min(120);
    let floor = signed >> k;
    let rem = signed - (floor << k);
    let half = 1i128 << (k - 1);
    let ceil = floor + i128::from(rem != 0);
    let mut rounded = if rem > half || (rem == half && floor & 1 == 1) {
        floor + 1
    } else {
        floor
    };
    if snap {
        match rounded.rem_euclid(1_000_000) {
            1 => rounded = floor,
            999_999 => rounded = ceil,
            _ => {}
        }
    }
    Some(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_rounds_half_even_and_snaps() {
        assert_eq!(scale_like_cftime(2.5, 1, false), Some(2));
        assert_eq!(scale_like_cftime(3.5, 1, false), Some(4));
        assert_eq!(scale_like_cftime(-2.5, 1, false), Some(-2));
        assert_eq!(scale_like_cftime(-0.5, 1, false), Some(0));
        assert_eq!(
            scale_like_cftime(1.0 / 3.0, US_PER_DAY, true),
            Some(28_800_000_000)
        );
        // 1.0000005 s: rint gives 1000001 µs, snapped to the floor.
        assert_eq!(
            scale_like_cftime(1.0000005, US_PER_SECOND, true),
            Some(1_000_000)
        );
        assert_eq!(
            scale_like_cftime(1.0000005, US_PER_SECOND, false),
            Some(1_000_001)
        );
        assert_eq!(scale_like_cftime(1e-300, US_PER_DAY, true), Some(0));
        assert_eq!(scale_like_cftime(-1e-300, US_PER_DAY, true), Some(0));
        assert_eq!(scale_like_cftime(1e300, 1, false), None);
        assert_eq!(
            scale_like_cftime(9.2e18, 1, false),
            Some(9_200_000_000_000_000_000)
        );
    }

    #[test]
    fn fraction_like_cftime() {
        assert_eq!(cftime_fraction("5"), 500_000);
        assert_eq!(cftime_fraction("000249"), 248);
        assert_eq!(cftime_fraction("0002490000001"), 249);
        assert_eq!(cftime_fraction("123456789"), 123_456);
    }
}
