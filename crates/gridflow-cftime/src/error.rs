//! The error type of the calendar layer.

use crate::Calendar;
use thiserror::Error;

/// Problems with calendar names, dates, date strings, CF units, frequencies and ranges.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CftimeError {
    /// A calendar name that CF does not define.
    #[error(
        "unknown calendar {name:?}; valid calendars are standard, gregorian, proleptic_gregorian, \
         julian, noleap, 365_day, all_leap, 366_day and 360_day"
    )]
    UnknownCalendar {
        /// The name as given.
        name: String,
    },
    /// Date fields that do not name a day and time of the calendar.
    #[error("invalid date {date} in the {calendar} calendar: {reason}")]
    InvalidDate {
        /// The fields as given, formatted `YYYY-MM-DDTHH:MM:SS.ffffff`.
        date: String,
        /// The calendar they were checked against.
        calendar: Calendar,
        /// Which field is wrong and why.
        reason: String,
    },
    /// A date string that cannot be parsed or names no valid date.
    #[error("cannot parse date string {input:?} in the {calendar} calendar: {reason}")]
    InvalidDateString {
        /// The string as given.
        input: String,
        /// The calendar it was read in.
        calendar: Calendar,
        /// What is wrong with it.
        reason: String,
    },
    /// A CF units string that cannot be parsed.
    #[error("invalid CF time units {units:?}: {reason}")]
    InvalidUnits {
        /// The units string as given.
        units: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A number that cannot be turned into a time under some units.
    #[error("cannot decode the value {value} under {units:?}: {reason}")]
    Decode {
        /// The number, as text.
        value: String,
        /// The units it was decoded with.
        units: String,
        /// Why it cannot be decoded.
        reason: String,
    },
    /// A frequency string that cannot be parsed.
    #[error(
        "invalid frequency {freq:?}: {reason}; accepted forms are an optional positive multiple \
         followed by us, ms, s, min, h, D, MS, ME, QS, QE, YS or YE (QS/QE/YS/YE may take an \
         anchor month such as QS-DEC), e.g. \"3h\", \"1D\", \"2MS\""
    )]
    InvalidFrequency {
        /// The frequency as given.
        freq: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Arguments of a date range that do not describe one.
    #[error("invalid date range from {start:?}: {reason}")]
    InvalidRange {
        /// The start string as given.
        start: String,
        /// What is wrong.
        reason: String,
    },
}

/// The result type of the calendar layer.
pub type Result<T, E = CftimeError> = std::result::Result<T, E>;
