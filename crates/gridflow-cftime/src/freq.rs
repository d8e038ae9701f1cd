//! Frequencies (`3h`, `D`, `MS`, `ME`, `QS-DEC`, `YS`, …), resampling bins and date ranges.

use crate::calendar::{US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND};
use crate::{Calendar, CftimeError, Result};
use std::fmt;

/// The most values [`date_range`] will produce.
pub const MAX_RANGE_LEN: usize = 100_000_000;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// A fixed span of this many microseconds per unit.
    Fixed(i64),
    /// Calendar periods of `months` (1, 3 or 12) months whose starts (or ends) fall in months
    /// congruent to `anchor` (0 = January) modulo `months`.
    Months { months: i64, anchor: i64, end: bool },
}

/// A pandas/xarray frequency: a positive multiple of a fixed span (`us`, `ms`, `s`, `min`, `h`,
/// `D`) or of a calendar period anchored at its start (`MS`, `QS`, `YS`) or end (`ME`, `QE`,
/// `YE`). Quarters and years take an anchor month (`QS-DEC` starts quarters in Dec, Mar, Jun
/// and Sep; `QS` is `QS-JAN`, `QE` is `QE-DEC`, `YS` is `YS-JAN`, `YE` is `YE-DEC`). The
/// aliases xarray still accepts with a deprecation warning (`H`, `T`, `S`, `L`, `U`, `M`, `Q`,
/// `A`, `Y`, `AS`) mean the same here.
///
/// ```
/// use gridflow_cftime::{Calendar, Frequency};
/// let cal = Calendar::NoLeap;
/// let f = Frequency::parse("2MS")?;
/// assert!(f.is_anchored());
/// let t = cal.parse_datetime("2000-01-20")?;
/// assert_eq!(cal.format_iso(f.advance(cal, t, 1)), "2000-03-01T00:00:00");
/// assert_eq!(Frequency::parse("6h")?.to_string(), "6h");
/// # Ok::<(), gridflow_cftime::CftimeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frequency {
    multiple: i64,
    kind: Kind,
}

impl Frequency {
    /// Parses `[n]BASE[-MON]`, e.g. `"3h"`, `"h"`, `"D"`, `"1D"`, `"30min"`, `"s"`, `"MS"`,
    /// `"2MS"`, `"ME"`, `"QS-DEC"`, `"YS"`, `"YE"`. The multiple must be positive. Names are
    /// case-sensitive, as in pandas (`ms` is milliseconds, `MS` month start).
    pub fn parse(s: &str) -> Result<Frequency> {
        let fail = |reason: String| CftimeError::InvalidFrequency {
            freq: s.to_string(),
            reason,
        };
        let text = s.trim();
        let body = text.strip_prefix('+').unwrap_or(text);
        if body.starts_with('-') {
            return Err(fail("negative multiples are not supported".to_string()));
        }
        let digits = body
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len());
        let (number, base) = body.split_at(digits);
        let multiple: i64 = if number.is_empty() {
            1
        } else {
            number
                .parse()
                .map_err(|_| fail(format!("the multiple {number:?} is too large")))?
        };
        if multiple == 0 {
            return Err(fail("the multiple must be positive".to_string()));
        }
        let (name, anchor) = match base.split_once('-') {
            Some((name, month)) => {
                let index = MONTHS.iter().position(|m| *m == month).ok_or_else(|| {
                    fail(format!("unknown anchor month {month:?} (use JAN … DEC)"))
                })?;
                (name, Some(index as i64))
            }
            None => (base, None),
        };
        // (kind, whether it takes an anchor month)
        let fixed = |micros: i64| (Kind::Fixed(micros), false);
        let periods = |months: i64, default: i64, end: bool| {
            let anchor = anchor.unwrap_or(default);
            (
                Kind::Months {
                    months,
                    anchor,
                    end,
                },
                months > 1,
            )
        };
        let (kind, takes_anchor) = match name {
            "us" | "U" => fixed(1),
            "ms" | "L" => fixed(1_000),
            "s" | "S" => fixed(US_PER_SECOND),
            "min" | "T" => fixed(US_PER_MINUTE),
            "h" | "H" => fixed(US_PER_HOUR),
            "D" => fixed(US_PER_DAY),
            "MS" => periods(1, 0, false),
            "ME" | "M" => periods(1, 0, true),
            "QS" => periods(3, 0, false),
            "QE" | "Q" => periods(3, 11, true),
            "YS" | "AS" => periods(12, 0, false),
            "YE" | "Y" | "A" => periods(12, 11, true),
            "" => return Err(fail("the unit is missing".to_string())),
            other => {
                let hint = match other {
                    "d" => " (did you mean \"D\"?)",
                    "m" => " (did you mean \"min\" or \"ME\"?)",
                    "W" => " (weekly frequencies are not supported)",
                    _ => "",
                };
                return Err(fail(format!("unknown unit {other:?}{hint}")));
            }
        };
        if anchor.is_some() && !takes_anchor {
            return Err(fail(format!("{name:?} does not take an anchor month")));
        }
        if let Kind::Fixed(micros) = kind
            && multiple.checked_mul(micros).is_none()
        {
            return Err(fail(
                "the span does not fit in 64-bit microseconds".to_string(),
            ));
        }
        Ok(Frequency { multiple, kind })
    }

    /// The multiple `n` of `nBASE`.
    pub fn multiple(&self) -> i64 {
        self.multiple
    }

    /// True for calendar-anchored frequencies (month, quarter and year starts and ends),
    /// whose steps vary in length; false for fixed spans.
    pub fn is_anchored(&self) -> bool {
        matches!(self.kind, Kind::Months { .. })
    }

    /// True for end-anchored frequencies (`ME`, `QE`, `YE`): resampling bins are closed on the
    /// right and labelled by their right edge, as in pandas and xarray.
    pub fn is_end_anchored(&self) -> bool {
        matches!(self.kind, Kind::Months { end: true, .. })
    }

    /// The step in microseconds of a fixed frequency (`multiple` times the unit), `None` for
    /// anchored ones.
    pub fn fixed_micros(&self) -> Option<i64> {
        match self.kind {
            Kind::Fixed(micros) => Some(self.multiple * micros),
            Kind::Months { .. } => None,
        }
    }

    /// The label of the resampling bin that contains `ticks`, as
    /// `DataArray.resample(time=freq)` in xarray labels it for a cftime index whose first
    /// timestamp lies in the day starting at `origin` (pass midnight of the first timestamp's
    /// day, pandas' `origin="start_day"`):
    ///
    /// - fixed spans: bins `[origin + k·step, origin + (k+1)·step)`, labelled by their start;
    /// - `MS`/`QS`/`YS` (times `n`): bins start at 00:00 on the first day of every `n`-th
    ///   period counted from the period containing `origin`; the label is that start (the
    ///   largest one not after `ticks`);
    /// - `ME`/`QE`/`YE` (times `n`): closed on the right, labelled on the right: the bin of a
    ///   month-end label L holds every time up to the end of L's last day, so the label is the
    ///   last day (at 00:00) of the first period-end month not before `ticks`' month, stepping
    ///   `n` periods from the first period end not before `origin`'s month. The label can be
    ///   later than `ticks`.
    ///
    /// ```
    /// use gridflow_cftime::{Calendar, Frequency};
    /// let cal = Calendar::Standard;
    /// let t = cal.parse_datetime("2000-02-10T12:00")?;
    /// let origin = cal.parse_datetime("2000-01-01")?;
    /// let me = Frequency::parse("ME")?;
    /// assert_eq!(cal.format_iso(me.floor(cal, t, origin)), "2000-02-29T00:00:00");
    /// let h6 = Frequency::parse("6h")?;
    /// assert_eq!(cal.format_iso(h6.floor(cal, t, origin)), "2000-02-10T12:00:00");
    /// # Ok::<(), gridflow_cftime::CftimeError>(())
    /// ```
    pub fn floor(&self, cal: Calendar, ticks: i64, origin: i64) -> i64 {
        match self.kind {
            Kind::Fixed(micros) => {
                let step = i128::from(self.multiple) * i128::from(micros);
                let offset = i128::from(ticks) - i128::from(origin);
                clamp_i64(i128::from(origin) + offset.div_euclid(step) * step)
            }
            Kind::Months {
                months,
                anchor,
                end,
            } => {
                let t = cal.from_ticks(ticks);
                let o = cal.from_ticks(origin);
                let mt = cal.month_index(t.year(), t.month());
                let mo = cal.month_index(o.year(), o.month());
                let step = months.saturating_mul(self.multiple);
                let label = if end {
                    // First period end at or after the origin's month, then every `step`.
                    let first = mo + (anchor - mo).rem_euclid(months);
                    first - (first - mt).div_euclid(step) * step
                } else {
                    // Last period start at or before the origin's month, then every `step`.
                    let first = mo - (mo - anchor).rem_euclid(months);
                    first + (mt - first).div_euclid(step) * step
                };
                month_day_ticks(cal, label, end, 0)
            }
        }
    }

    /// `ticks` moved by `n` steps of this frequency (negative goes back), as adding
    /// `n * offset` does for cftime dates in xarray: fixed spans add `n·step`; anchored
    /// frequencies move to the `n`-th period start (end) after `ticks`, counting `ticks` itself
    /// as one when it lies on a period start (end) day, and keep the time of day. Saturates at
    /// the ends of the timeline.
    pub fn advance(&self, cal: Calendar, ticks: i64, n: i64) -> i64 {
        match self.kind {
            Kind::Fixed(micros) => clamp_i64(
                i128::from(ticks) + i128::from(n) * i128::from(self.multiple) * i128::from(micros),
            ),
            Kind::Months { .. } => self.shift(cal, ticks, n.saturating_mul(self.multiple)),
        }
    }

    /// Moves by `count` single periods (ignoring the multiple), as cftime offsets apply.
    fn shift(&self, cal: Calendar, ticks: i64, count: i64) -> i64 {
        let Kind::Months {
            months,
            anchor,
            end,
        } = self.kind
        else {
            return ticks;
        };
        let dt = cal.from_ticks(ticks);
        let mt = cal.month_index(dt.year(), dt.month());
        // Months since the last period boundary month (0 when in one).
        let since = (mt - anchor).rem_euclid(months);
        let boundary_day = if end {
            cal.days_in_month(dt.year(), dt.month())
        } else {
            1
        };
        let mut n = count;
        if n > 0 {
            if since == 0 && dt.day() < boundary_day {
                n -= 1;
            }
        } else if since > 0 || dt.day() > boundary_day {
            n += 1;
        }
        let target = mt
            .saturating_add(n.saturating_mul(months))
            .saturating_sub(since);
        month_day_ticks(cal, target, end, ticks.rem_euclid(US_PER_DAY))
    }

    /// Whether `ticks` lies on a period boundary day (any time of day), as cftime's `onOffset`.
    fn on_offset(&self, cal: Calendar, ticks: i64) -> bool {
        match self.kind {
            Kind::Fixed(_) => true,
            Kind::Months {
                months,
                anchor,
                end,
            } => {
                let dt = cal.from_ticks(ticks);
                let mt = cal.month_index(dt.year(), dt.month());
                let day = if end {
                    cal.days_in_month(dt.year(), dt.month())
                } else {
                    1
                };
                (mt - anchor).rem_euclid(months) == 0 && dt.day() == day
            }
        }
    }

    /// The first tick at or after `ticks` that is on the frequency (identity for fixed ones).
    pub fn rollforward(&self, cal: Calendar, ticks: i64) -> i64 {
        if self.on_offset(cal, ticks) {
            ticks
        } else {
            self.shift(cal, ticks, 1)
        }
    }
}

/// Ticks of the first (or last, if `end`) day of month index `index`, plus `time_of_day`.
fn month_day_ticks(cal: Calendar, index: i64, end: bool, time_of_day: i64) -> i64 {
    let (year, month) = cal.month_from_index(index);
    let day = if end {
        cal.days_in_month(year, month)
    } else {
        1
    };
    let days = cal.days_from_civil(year, month, day);
    clamp_i64(i128::from(days) * i128::from(US_PER_DAY) + i128::from(time_of_day))
}

fn clamp_i64(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl fmt::Display for Frequency {
    /// The canonical spelling, e.g. `3h`, `D`, `2MS`, `QS-DEC`, `YE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.multiple != 1 {
            write!(f, "{}", self.multiple)?;
        }
        match self.kind {
            Kind::Fixed(micros) => f.write_str(match micros {
                1 => "us",
                1_000 => "ms",
                US_PER_SECOND => "s",
                US_PER_MINUTE => "min",
                US_PER_HOUR => "h",
                _ => "D",
            }),
            Kind::Months {
                months,
                anchor,
                end,
            } => {
                let name = match (months, end) {
                    (1, false) => return f.write_str("MS"),
                    (1, true) => return f.write_str("ME"),
                    (3, false) => "QS",
                    (3, true) => "QE",
                    (_, false) => "YS",
                    (_, true) => "YE",
                };
                let default = if end { 11 } else { 0 };
                if months == 12 && anchor == default {
                    f.write_str(name)
                } else {
                    write!(f, "{name}-{}", MONTHS[anchor.rem_euclid(12) as usize])
                }
            }
        }
    }
}

/// Ticks from `start` on the grid of `freq`, as `xarray.date_range(start, end, periods, freq,
/// calendar, use_cftime=True)`: give exactly one of `end` (inclusive when it falls on the
/// grid) or `periods`. `start` and `end` may be partial strings (`"1900"`, `"1900-03"`), which
/// mean their first instant. An anchored frequency first rolls `start` forward to its next
/// period start (end) day, keeping the time of day; fixed frequencies step from `start` as
/// is. An `end` before the start gives an empty range.
///
/// ```
/// use gridflow_cftime::{Calendar, date_range};
/// let cal = Calendar::Day360;
/// let t = date_range(cal, "2000-01-15", Some("2000-04-30"), None, "MS")?;
/// let iso: Vec<String> = t.iter().map(|&t| cal.format_iso(t)).collect();
/// assert_eq!(iso, ["2000-02-01T00:00:00", "2000-03-01T00:00:00", "2000-04-01T00:00:00"]);
/// assert_eq!(date_range(cal, "2000-02-29", None, Some(3), "D")?.len(), 3);
/// # Ok::<(), gridflow_cftime::CftimeError>(())
/// ```
pub fn date_range(
    cal: Calendar,
    start: &str,
    end: Option<&str>,
    periods: Option<usize>,
    freq: &str,
) -> Result<Vec<i64>> {
    let fail = |reason: String| CftimeError::InvalidRange {
        start: start.to_string(),
        reason,
    };
    let f = Frequency::parse(freq)?;
    let first = f.rollforward(cal, cal.parse_datetime(start)?);
    let mut out = Vec::new();
    match (end, periods) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "give either an end or a number of periods, not both".to_string(),
            ));
        }
        (None, None) => return Err(fail("give an end or a number of periods".to_string())),
        (None, Some(n)) => {
            if n > MAX_RANGE_LEN {
                return Err(fail(format!(
                    "{n} periods exceed the limit of {MAX_RANGE_LEN}"
                )));
            }
            out.reserve(n);
            let mut t = first;
            for i in 0..n {
                out.push(t);
                if i + 1 < n {
                    let next = f.advance(cal, t, 1);
                    if next <= t {
                        return Err(fail(
                            "the range runs past the end of the timeline".to_string(),
                        ));
                    }
                    t = next;
                }
            }
        }
        (Some(end_text), None) => {
            let last = cal.parse_datetime(end_text)?;
            if last < first {
                return Ok(out);
            }
            let estimate = match f.fixed_micros() {
                Some(step) => (i128::from(last) - i128::from(first)) / i128::from(step) + 1,
                None => {
                    let span_days = (i128::from(last) - i128::from(first)) / i128::from(US_PER_DAY);
                    span_days / (28 * i128::from(f.multiple)) + 2
                }
            };
            if estimate > MAX_RANGE_LEN as i128 {
                return Err(fail(format!(
                    "about {estimate} values up to {end_text:?} exceed the limit of {MAX_RANGE_LEN}"
                )));
            }
            let mut t = first;
            while t <= last {
                out.push(t);
                let next = f.advance(cal, t, 1);
                if next <= t {
                    break;
                }
                t = next;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        for (text, canonical) in [
            ("3h", "3h"),
            ("h", "h"),
            ("H", "h"),
            ("D", "D"),
            ("1D", "D"),
            ("MS", "MS"),
            ("ME", "ME"),
            ("M", "ME"),
            ("YS", "YS"),
            ("AS", "YS"),
            ("YE", "YE"),
            ("A", "YE"),
            ("min", "min"),
            ("T", "min"),
            ("s", "s"),
            ("6h", "6h"),
            ("2MS", "2MS"),
            ("QS-DEC", "QS-DEC"),
            ("QS", "QS-JAN"),
            ("QE", "QE-DEC"),
            ("YS-JUL", "YS-JUL"),
            ("250ms", "250ms"),
            ("us", "us"),
        ] {
            assert_eq!(
                Frequency::parse(text).unwrap().to_string(),
                canonical,
                "{text}"
            );
        }
        for bad in [
            "",
            "0D",
            "-1D",
            "3x",
            "d",
            "W",
            "MS-DEC",
            "QS-XYZ",
            "99999999999999999999D",
        ] {
            let err = Frequency::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("accepted forms"),
                "{err}"
            );
        }
    }
}
