//! Calendar-free dates and time-axis tick selection.
//!
//! Tick selection never needs to know the calendar: it looks for the samples where the
//! civil year, month, day, hour or minute changes, so it works the same for `standard`,
//! `noleap`, `360_day` or any other CF calendar the caller decoded.

use std::fmt;

/// Civil date-time components of one sample, in whatever calendar the data uses.
///
/// No calendar rules are applied: February 30 is fine for a `360_day` calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DateParts {
    /// Year (astronomical numbering: may be zero or negative).
    pub year: i32,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
}

impl DateParts {
    /// A date-time from its components.
    pub const fn new(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> Self {
        Self {
            year,
            month,
            day,
            hour,
            minute,
        }
    }

    /// Midnight at the start of a day.
    pub const fn ymd(year: i32, month: u32, day: u32) -> Self {
        Self::new(year, month, day, 0, 0)
    }

    /// Whether each component is in its range (month 1-12, day 1-31, hour 0-23, minute 0-59).
    pub const fn is_valid(&self) -> bool {
        self.month >= 1
            && self.month <= 12
            && self.day >= 1
            && self.day <= 31
            && self.hour < 24
            && self.minute < 60
    }

    /// Minutes on a uniform 31-day-month scale. Only used to interpolate a boundary between
    /// two neighbouring samples, where the error is a fraction of one sampling step.
    fn approx_minutes(&self) -> f64 {
        let months = i64::from(self.year) * 12 + i64::from(self.month) - 1;
        let days = months * 31 + i64::from(self.day) - 1;
        (days * 1440 + i64::from(self.hour) * 60 + i64::from(self.minute)) as f64
    }

    fn month_index(&self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }
}

impl fmt::Display for DateParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:02}-{:02} {:02}:{:02}",
            year_str(self.year),
            self.month,
            self.day,
            self.hour,
            self.minute
        )
    }
}

/// Four-digit years, with a sign for years before year 0.
fn year_str(year: i32) -> String {
    if year < 0 {
        format!("-{:04}", year.unsigned_abs())
    } else {
        format!("{year:04}")
    }
}

/// The calendar unit and step between time-axis ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickUnit {
    /// Every n years (at January 1 of years divisible by n).
    Years(u32),
    /// Every n months (months counted from January of year 0).
    Months(u32),
    /// Days 1, 1+n, 1+2n, … of each month (the last, shorter bucket absorbs the month's end).
    Days(u32),
    /// Every n hours from midnight.
    Hours(u32),
    /// Every n minutes from the full hour.
    Minutes(u32),
}

/// Candidates from coarse to fine.
const CANDIDATES: &[TickUnit] = &[
    TickUnit::Years(100_000),
    TickUnit::Years(50_000),
    TickUnit::Years(20_000),
    TickUnit::Years(10_000),
    TickUnit::Years(5000),
    TickUnit::Years(2000),
    TickUnit::Years(1000),
    TickUnit::Years(500),
    TickUnit::Years(200),
    TickUnit::Years(100),
    TickUnit::Years(50),
    TickUnit::Years(20),
    TickUnit::Years(10),
    TickUnit::Years(5),
    TickUnit::Years(2),
    TickUnit::Years(1),
    TickUnit::Months(6),
    TickUnit::Months(3),
    TickUnit::Months(2),
    TickUnit::Months(1),
    TickUnit::Days(10),
    TickUnit::Days(5),
    TickUnit::Days(2),
    TickUnit::Days(1),
    TickUnit::Hours(12),
    TickUnit::Hours(6),
    TickUnit::Hours(3),
    TickUnit::Hours(2),
    TickUnit::Hours(1),
    TickUnit::Minutes(30),
    TickUnit::Minutes(15),
    TickUnit::Minutes(10),
    TickUnit::Minutes(5),
    TickUnit::Minutes(2),
    TickUnit::Minutes(1),
];

impl TickUnit {
    fn step(self) -> u32 {
        match self {
            Self::Years(n)
            | Self::Months(n)
            | Self::Days(n)
            | Self::Hours(n)
            | Self::Minutes(n) => n.max(1),
        }
    }

    /// Day-of-month bucket; for n > 1 days 29-31 join the last bucket so no month ends in a
    /// one- or two-day stub.
    fn day_bucket(self, day: u32) -> u32 {
        let n = self.step();
        let b = (day.max(1) - 1) / n;
        if n > 1 { b.min(28 / n) } else { b }
    }

    /// The bucket a date falls in; a tick sits where this changes.
    fn key(self, d: &DateParts) -> i64 {
        let n = i64::from(self.step());
        let day_key = d.month_index() * 32 + i64::from(d.day);
        match self {
            Self::Years(_) => i64::from(d.year).div_euclid(n),
            Self::Months(_) => d.month_index().div_euclid(n),
            Self::Days(_) => d.month_index() * 32 + i64::from(self.day_bucket(d.day)),
            Self::Hours(_) => day_key * 24 + i64::from(d.hour) / n,
            Self::Minutes(_) => (day_key * 24 + i64::from(d.hour)) * 60 + i64::from(d.minute) / n,
        }
    }

    /// The first instant of the bucket holding `d`.
    fn bucket_start(self, d: &DateParts) -> DateParts {
        let n = self.step();
        match self {
            Self::Years(_) => {
                let y = i64::from(d.year).div_euclid(i64::from(n)) * i64::from(n);
                DateParts::ymd(clamp_year(y), 1, 1)
            }
            Self::Months(_) => {
                let m = d.month_index().div_euclid(i64::from(n)) * i64::from(n);
                from_month_index(m, 1)
            }
            Self::Days(_) => DateParts::ymd(d.year, d.month, self.day_bucket(d.day) * n + 1),
            Self::Hours(_) => DateParts::new(d.year, d.month, d.day, d.hour / n * n, 0),
            Self::Minutes(_) => DateParts::new(d.year, d.month, d.day, d.hour, d.minute / n * n),
        }
    }

    /// The bucket start before bucket start `b`, when it is known without a calendar:
    /// never back across a month start for days, nor a midnight for hours and minutes.
    fn previous_start(self, b: &DateParts) -> Option<DateParts> {
        let n = self.step();
        match self {
            Self::Years(_) => {
                let y = i64::from(b.year) - i64::from(n);
                (y >= i64::from(i32::MIN)).then(|| DateParts::ymd(clamp_year(y), 1, 1))
            }
            Self::Months(_) => Some(from_month_index(b.month_index() - i64::from(n), 1)),
            Self::Days(_) => (b.day > n).then(|| DateParts::ymd(b.year, b.month, b.day - n)),
            Self::Hours(_) => {
                (b.hour >= n).then(|| DateParts::new(b.year, b.month, b.day, b.hour - n, 0))
            }
            Self::Minutes(_) if b.minute >= n => {
                Some(DateParts::new(b.year, b.month, b.day, b.hour, b.minute - n))
            }
            Self::Minutes(_) => {
                (b.hour > 0).then(|| DateParts::new(b.year, b.month, b.day, b.hour - 1, 59 / n * n))
            }
        }
    }

    /// The bucket start after bucket start `b`, when it is known without a calendar: days
    /// up to the 28th (which every month has), hours and minutes within the day.
    fn next_start(self, b: &DateParts) -> Option<DateParts> {
        let n = self.step();
        match self {
            Self::Years(_) => {
                let y = i64::from(b.year) + i64::from(n);
                (y <= i64::from(i32::MAX)).then(|| DateParts::ymd(clamp_year(y), 1, 1))
            }
            Self::Months(_) => Some(from_month_index(b.month_index() + i64::from(n), 1)),
            Self::Days(_) => (b.day + n <= 28).then(|| DateParts::ymd(b.year, b.month, b.day + n)),
            Self::Hours(_) => {
                (b.hour + n < 24).then(|| DateParts::new(b.year, b.month, b.day, b.hour + n, 0))
            }
            Self::Minutes(_) if b.minute + n < 60 => {
                Some(DateParts::new(b.year, b.month, b.day, b.hour, b.minute + n))
            }
            Self::Minutes(_) => {
                (b.hour + 1 < 24).then(|| DateParts::new(b.year, b.month, b.day, b.hour + 1, 0))
            }
        }
    }

    /// Main label of a tick at bucket start `b`.
    fn label(self, b: &DateParts) -> String {
        match self {
            Self::Years(_) => b.year.to_string(),
            Self::Months(_) => format!("{}-{:02}", year_str(b.year), b.month),
            Self::Days(_) => format!("{:02}-{:02}", b.month, b.day),
            Self::Hours(_) | Self::Minutes(_) => format!("{:02}:{:02}", b.hour, b.minute),
        }
    }

    /// The part of the date a label leaves out, shown under the first tick and wherever it
    /// changes.
    fn context(self, b: &DateParts) -> Option<String> {
        match self {
            Self::Years(_) | Self::Months(_) => None,
            Self::Days(_) => Some(year_str(b.year)),
            Self::Hours(_) | Self::Minutes(_) => {
                Some(format!("{}-{:02}-{:02}", year_str(b.year), b.month, b.day))
            }
        }
    }
}

fn clamp_year(y: i64) -> i32 {
    i32::try_from(y).unwrap_or(if y < 0 { i32::MIN } else { i32::MAX })
}

fn from_month_index(m: i64, day: u32) -> DateParts {
    let year = clamp_year(m.div_euclid(12));
    // rem_euclid(12) is in 0..12, so the conversion cannot fail.
    let month = u32::try_from(m.rem_euclid(12)).unwrap_or(0) + 1;
    DateParts::ymd(year, month, day)
}

/// One tick on a time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTick {
    /// Position on the x axis, in the same units as the plot's `x`.
    pub x: f64,
    /// The boundary this tick marks (e.g. 1850-03-01 00:00 for a monthly tick).
    pub date: DateParts,
    /// Main label, e.g. `"1850"`, `"1850-03"`, `"03-05"` or `"06:00"`.
    pub label: String,
    /// Second line with the date context a short label leaves out (the year for day ticks,
    /// the date for hour ticks); set on the first tick and wherever the context changes.
    pub context: Option<String>,
}

/// Ticks for a time axis, and the unit they were chosen at.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeTicks {
    /// The calendar step between ticks.
    pub unit: TickUnit,
    /// Ticks in increasing `x`.
    pub ticks: Vec<TimeTick>,
}

/// Choose time-axis ticks: the finest calendar step (years, months, days, hours, minutes)
/// giving at most `max_ticks` boundaries inside the data.
///
/// `x[i]` is the axis position of sample `i`, named by `dates[i]`; dates should increase
/// with `x`. A tick sits where a boundary is crossed between two samples, its position
/// interpolated between them. Samples with non-finite `x` and out-of-order dates are
/// skipped. When no boundary falls inside the data (e.g. a single sample), the first and
/// last usable samples are labelled with their full date.
pub fn time_ticks(x: &[f64], dates: &[DateParts], max_ticks: usize) -> TimeTicks {
    let max_ticks = max_ticks.max(1);
    let n = x.len().min(dates.len());
    let (x, dates) = (&x[..n], &dates[..n]);
    let mut best: Option<(TickUnit, Vec<TimeTick>)> = None;
    for &unit in CANDIDATES {
        match ticks_for_unit(unit, x, dates, max_ticks) {
            // A finer unit must add ticks: sparse samples otherwise keep "00:00" at every
            // daily sample all the way down to minutes.
            Some(ticks) if ticks.len() > best.as_ref().map_or(0, |(_, b)| b.len()) => {
                best = Some((unit, ticks));
            }
            Some(_) => {}
            // Finer units only give more ticks.
            None => break,
        }
    }
    match best {
        Some((unit, ticks)) => TimeTicks { unit, ticks },
        None => fallback_ticks(x, dates),
    }
}

/// Full-date labels on the first and last usable samples.
fn fallback_ticks(x: &[f64], dates: &[DateParts]) -> TimeTicks {
    let mut ticks = Vec::new();
    let usable: Vec<usize> = (0..x.len()).filter(|&i| x[i].is_finite()).collect();
    let ends = match (usable.first(), usable.last()) {
        (Some(&a), Some(&b)) if a != b => vec![a, b],
        (Some(&a), _) => vec![a],
        _ => vec![],
    };
    for i in ends {
        let d = dates[i];
        let (label, context) = if d.hour == 0 && d.minute == 0 {
            (
                format!("{}-{:02}-{:02}", year_str(d.year), d.month, d.day),
                None,
            )
        } else {
            (
                format!("{:02}:{:02}", d.hour, d.minute),
                Some(format!("{}-{:02}-{:02}", year_str(d.year), d.month, d.day)),
            )
        };
        ticks.push(TimeTick {
            x: x[i],
            date: d,
            label,
            context,
        });
    }
    TimeTicks {
        unit: TickUnit::Minutes(1),
        ticks,
    }
}

/// Ticks at one unit, or `None` once there are more than `max_ticks`.
fn ticks_for_unit(
    unit: TickUnit,
    x: &[f64],
    dates: &[DateParts],
    max_ticks: usize,
) -> Option<Vec<TimeTick>> {
    let mut ticks: Vec<TimeTick> = Vec::new();
    let mut prev: Option<usize> = None;
    let mut pending: Vec<DateParts> = Vec::new();
    for i in 0..x.len() {
        if !x[i].is_finite() {
            continue;
        }
        let d = dates[i];
        match prev {
            None => {
                if unit.bucket_start(&d) == d {
                    ticks.push(make_tick(unit, x[i], d));
                }
            }
            Some(p) => {
                let pd = dates[p];
                if d <= pd {
                    continue;
                }
                if unit.key(&d) != unit.key(&pd) {
                    // Boundaries in (pd, d]: forwards from pd's bucket and backwards from
                    // d's, as far as each is known without a calendar.
                    pending.clear();
                    let mut b = unit.next_start(&unit.bucket_start(&pd));
                    while let Some(bd) = b.filter(|bd| *bd <= d) {
                        pending.push(bd);
                        if ticks.len() + pending.len() > max_ticks {
                            return None;
                        }
                        b = unit.next_start(&bd);
                    }
                    let mut b = Some(unit.bucket_start(&d));
                    while let Some(bd) = b.filter(|bd| *bd > pd) {
                        pending.push(bd);
                        if ticks.len() + pending.len() > 2 * max_ticks + 2 {
                            return None;
                        }
                        b = unit.previous_start(&bd);
                    }
                    pending.sort_unstable();
                    pending.dedup();
                    if ticks.len() + pending.len() > max_ticks {
                        return None;
                    }
                    let (t0, t1) = (pd.approx_minutes(), d.approx_minutes());
                    for bd in &pending {
                        let frac = if t1 > t0 {
                            ((bd.approx_minutes() - t0) / (t1 - t0)).clamp(0.0, 1.0)
                        } else {
                            1.0
                        };
                        let bx = x[p] + (x[i] - x[p]) * frac;
                        ticks.push(make_tick(unit, bx, *bd));
                    }
                }
            }
        }
        if ticks.len() > max_ticks {
            return None;
        }
        prev = Some(i);
    }
    // Context on the first tick and wherever it changes.
    let mut last_context: Option<String> = None;
    for t in &mut ticks {
        if t.context.is_some() && t.context == last_context {
            t.context = None;
        } else if t.context.is_some() {
            last_context.clone_from(&t.context);
        }
    }
    Some(ticks)
}

fn make_tick(unit: TickUnit, x: f64, b: DateParts) -> TimeTick {
    TimeTick {
        x,
        date: b,
        label: unit.label(&b),
        context: unit.context(&b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_buckets_absorb_month_end() {
        let u = TickUnit::Days(10);
        assert_eq!(u.day_bucket(1), 0);
        assert_eq!(u.day_bucket(11), 1);
        assert_eq!(u.day_bucket(21), 2);
        assert_eq!(u.day_bucket(31), 2);
        assert_eq!(TickUnit::Days(1).day_bucket(31), 30);
    }

    #[test]
    fn negative_years_bucket_downwards() {
        let u = TickUnit::Years(100);
        assert_eq!(u.bucket_start(&DateParts::ymd(-50, 6, 1)).year, -100);
        assert_eq!(year_str(-50), "-0050");
    }

    #[test]
    fn boundaries_between_coarse_samples_are_interpolated() {
        // 6-hourly samples with 3-hourly ticks: 03:00 lies halfway between 00:00 and 06:00.
        let dates: Vec<_> = (0..5)
            .map(|i| DateParts::new(2000, 1, 1, i * 6, 0))
            .collect();
        let x: Vec<f64> = (0..5).map(|i| f64::from(i) * 0.25).collect();
        let t = ticks_for_unit(TickUnit::Hours(3), &x, &dates, 20).unwrap();
        let xs: Vec<f64> = t.iter().map(|t| t.x).collect();
        assert_eq!(xs.len(), 9);
        assert!((xs[1] - 0.125).abs() < 1e-9, "{xs:?}");
    }
}
