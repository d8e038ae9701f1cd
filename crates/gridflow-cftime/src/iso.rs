//! ISO 8601-like date strings: formatting, full and partial parsing.

use crate::calendar::{US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND};
use crate::{Calendar, CftimeError, DateTime, Result};

/// The fields a date string spells out; later fields are present only if earlier ones are.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub year: i32,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub hour: Option<u32>,
    pub minute: Option<u32>,
    pub second: Option<u32>,
    /// The digits after the decimal point of the seconds.
    pub fraction: Option<&'a str>,
    /// Minutes east of UTC, when a zone was given.
    pub tz_minutes: Option<i32>,
}

/// A cursor over an ASCII date string.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.as_bytes().get(self.pos + ahead).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Up to `max` digits (at least one), as text.
    fn digits(&mut self, max: usize, what: &str) -> std::result::Result<&'a str, String> {
        let start = self.pos;
        while self.pos - start < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(format!("expected the {what} at position {start}"));
        }
        Ok(&self.s[start..self.pos])
    }

    fn number(&mut self, max: usize, what: &str) -> std::result::Result<u32, String> {
        let text = self.digits(max, what)?;
        text.parse()
            .map_err(|_| format!("{what} {text:?} is too large"))
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

/// Splits `s` into fields: `[+-]Y[-M[-D[(T| )H[:M[:S[.f]]]]]]`, then (only if `allow_tz`) an
/// optional zone `Z`, `UTC`, `GMT` or `±H[H][[:]MM]`. Months, days and times take one or two
/// digits, as cftime accepts `1850-1-1 0:0:0`.
pub(crate) fn lex(s: &str, allow_tz: bool) -> std::result::Result<Fields<'_>, String> {
    let mut c = Cursor {
        s: s.trim(),
        pos: 0,
    };
    let mut f = Fields::default();
    let negative = c.eat(b'-');
    if !negative {
        c.eat(b'+');
    }
    let year_text = c.digits(usize::MAX, "year")?;
    let year: i64 = year_text
        .parse()
        .map_err(|_| format!("year {year_text:?} is out of range"))?;
    let year = if negative { -year } else { year };
    f.year = i32::try_from(year).map_err(|_| format!("year {year} is out of range"))?;
    if c.peek() == Some(b'-') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
        c.pos += 1;
        f.month = Some(c.number(2, "month")?);
        if c.peek() == Some(b'-') && c.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
            c.pos += 1;
            f.day = Some(c.number(2, "day")?);
            let sep = c.peek();
            if matches!(sep, Some(b'T' | b't' | b' '))
                && c.peek_at(1).is_some_and(|b| b.is_ascii_digit())
            {
                c.pos += 1;
                f.hour = Some(c.number(2, "hour")?);
                if c.eat(b':') {
                    f.minute = Some(c.number(2, "minute")?);
                    if c.eat(b':') {
                        f.second = Some(c.number(2, "second")?);
                        if c.eat(b'.') {
                            f.fraction = Some(c.digits(usize::MAX, "fraction of a second")?);
                        }
                    }
                }
            }
        }
    }
    if allow_tz {
        c.skip_spaces();
        f.tz_minutes = zone(&mut c)?;
    }
    c.skip_spaces();
    if !c.rest().is_empty() {
        return Err(format!("unexpected text {:?} after the date", c.rest()));
    }
    Ok(f)
}

/// An optional time zone: `Z`, `UTC`, `GMT` (offset 0) or `±H[H][[:]MM]`.
fn zone(c: &mut Cursor<'_>) -> std::result::Result<Option<i32>, String> {
    let rest = c.rest();
    for name in ["UTC", "GMT", "Z"] {
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
            c.pos += name.len();
            return Ok(Some(0));
        }
    }
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Ok(None),
    };
    c.pos += 1;
    let hours = c.number(2, "time zone hours")?;
    let mut minutes = 0;
    if c.peek() == Some(b':') || c.peek().is_some_and(|b| b.is_ascii_digit()) {
        c.eat(b':');
        minutes = c.number(2, "time zone minutes")?;
    }
    if minutes > 59 {
        return Err(format!("time zone minutes {minutes} are not in 0-59"));
    }
    Ok(Some(sign * (hours as i32 * 60 + minutes as i32)))
}

/// The finest field a (partial) date string gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Resolution {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Microsecond,
}

impl Calendar {
    /// The ISO form of a tick, as cftime's `isoformat()`: `1850-01-01T03:00:00`, with
    /// `.ffffff` only when microseconds are non-zero.
    ///
    /// ```
    /// use gridflow_cftime::Calendar;
    /// assert_eq!(Calendar::NoLeap.format_iso(3 * 3_600_000_000), "1970-01-01T03:00:00");
    /// assert_eq!(Calendar::NoLeap.format_iso(-1), "1969-12-31T23:59:59.999999");
    /// ```
    pub fn format_iso(&self, ticks: i64) -> String {
        self.from_ticks(ticks).to_string()
    }

    /// The first tick of a full or partial date string (see [`Calendar::parse_partial`]).
    ///
    /// ```
    /// use gridflow_cftime::Calendar;
    /// let cal = Calendar::Day360;
    /// assert_eq!(cal.format_iso(cal.parse_datetime("1900-02-30 06:30")?), "1900-02-30T06:30:00");
    /// # Ok::<(), gridflow_cftime::CftimeError>(())
    /// ```
    pub fn parse_datetime(&self, s: &str) -> Result<i64> {
        Ok(self.parse_bounds(s)?.0)
    }

    /// The half-open tick interval `[start, end)` a full or partial date string covers, the
    /// way xarray selects with strings on a time index: `"1900"` is the whole year,
    /// `"1900-03"` the month, `"1900-03-05"` the day, `"1900-03-05T06"` the hour,
    /// `"1900-03-05 06:30"` the minute, `…:15` the second and a full timestamp with a
    /// fraction (up to 6 digits) one microsecond. `T` or a space separates date and time;
    /// fields after the year take one or two digits. Time zones are not accepted.
    ///
    /// ```
    /// use gridflow_cftime::Calendar;
    /// let cal = Calendar::Day360;
    /// let (start, end) = cal.parse_partial("1900-03")?;
    /// assert_eq!(cal.format_iso(start), "1900-03-01T00:00:00");
    /// assert_eq!(cal.format_iso(end), "1900-04-01T00:00:00");
    /// let err = cal.parse_partial("1900-02-31").unwrap_err().to_string();
    /// assert!(err.contains("day 31 does not exist in month 2"), "{err}");
    /// # Ok::<(), gridflow_cftime::CftimeError>(())
    /// ```
    pub fn parse_partial(&self, s: &str) -> Result<(i64, i64)> {
        match self.parse_bounds(s)? {
            (start, Some(end)) => Ok((start, end)),
            (_, None) => Err(CftimeError::InvalidDateString {
                input: s.to_string(),
                calendar: *self,
                reason: "the end of the interval it covers is past the end of the timeline"
                    .to_string(),
            }),
        }
    }

    /// The first tick of a (partial) string and the end of its interval, if representable.
    fn parse_bounds(&self, s: &str) -> Result<(i64, Option<i64>)> {
        let fail = |reason: String| CftimeError::InvalidDateString {
            input: s.to_string(),
            calendar: *self,
            reason,
        };
        let f = lex(s, false).map_err(fail)?;
        let micro = match f.fraction {
            None => 0,
            Some(d) if d.len() <= 6 => {
                let v: u32 = d.parse().map_err(|_| fail(format!("bad fraction {d:?}")))?;
                v * 10u32.pow(6 - d.len() as u32)
            }
            Some(d) => {
                return Err(fail(format!(
                    "the fraction {d:?} has more than 6 digits (the resolution is 1 microsecond)"
                )));
            }
        };
        let resolution = match (f.month, f.day, f.hour, f.minute, f.second, f.fraction) {
            (None, ..) => Resolution::Year,
            (_, None, ..) => Resolution::Month,
            (_, _, None, ..) => Resolution::Day,
            (_, _, _, None, ..) => Resolution::Hour,
            (_, _, _, _, None, _) => Resolution::Minute,
            (.., None) => Resolution::Second,
            _ => Resolution::Microsecond,
        };
        let (month, day) = (f.month.unwrap_or(1), f.day.unwrap_or(1));
        let (hour, minute, second) = (
            f.hour.unwrap_or(0),
            f.minute.unwrap_or(0),
            f.second.unwrap_or(0),
        );
        self.check_fields(f.year, month, day, hour, minute, second, micro)
            .map_err(fail)?;
        let start = self.to_ticks(&DateTime::from_fields(
            f.year, month, day, hour, minute, second, micro,
        ));
        let end = match resolution {
            Resolution::Year | Resolution::Month => {
                let (year, month) = if resolution == Resolution::Year || month == 12 {
                    (self.next_year(f.year), 1)
                } else {
                    (f.year, month + 1)
                };
                self.check_fields(year, month, 1, 0, 0, 0, 0)
                    .ok()
                    .map(|()| self.to_ticks(&DateTime::from_fields(year, month, 1, 0, 0, 0, 0)))
            }
            Resolution::Day => start.checked_add(US_PER_DAY),
            Resolution::Hour => start.checked_add(US_PER_HOUR),
            Resolution::Minute => start.checked_add(US_PER_MINUTE),
            Resolution::Second => start.checked_add(US_PER_SECOND),
            Resolution::Microsecond => start.checked_add(1),
        };
        Ok((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lex_forms() {
        let f = lex("1850-1-1 0:0:0", true).unwrap();
        assert_eq!(
            (f.year, f.month, f.day, f.hour, f.minute, f.second),
            (1850, Some(1), Some(1), Some(0), Some(0), Some(0))
        );
        let f = lex("1970-01-01 00:00:00 +05:30", true).unwrap();
        assert_eq!(f.tz_minutes, Some(330));
        let f = lex("1970-01-01T00:00:00Z", true).unwrap();
        assert_eq!(f.tz_minutes, Some(0));
        let f = lex("1970-01-01 -0600", true).unwrap();
        assert_eq!((f.hour, f.tz_minutes), (None, Some(-360)));
        let f = lex("0001-01-01 00:00:00.0", true).unwrap();
        assert_eq!(f.fraction, Some("0"));
        let f = lex("-0100-03-01", false).unwrap();
        assert_eq!(f.year, -100);
        assert!(
            lex("1900-01-01 garbage", true)
                .unwrap_err()
                .contains("\"garbage\"")
        );
        assert!(lex("1900-01-01Z", false).is_err());
        assert!(lex("x1900", false).unwrap_err().contains("year"));
    }
}
