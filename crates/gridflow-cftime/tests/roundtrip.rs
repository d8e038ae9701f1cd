//! Round trips over many ticks, exact encoding, parse errors and partial strings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gridflow_cftime::{
    Calendar, CfUnits, CftimeError, DateTime, Frequency, TimeUnit, US_PER_DAY, date_range,
};

/// Deterministic pseudo-random ticks over the whole i64 range plus dense runs near 1970,
/// the 1582 switch and year 1.
fn sample_ticks() -> Vec<i64> {
    let mut out = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push(x as i64);
        out.push((x >> 20) as i64 - (1 << 43)); // about ±280 years around 1970
    }
    for centre in [0, -141_427 * US_PER_DAY, -719_162 * US_PER_DAY] {
        for k in -3_000..3_000 {
            out.push(centre + k * 7 * 3_600_000_000 + k);
        }
    }
    out
}

#[test]
fn ticks_to_fields_and_back_in_every_calendar() {
    let ticks = sample_ticks();
    for cal in Calendar::ALL {
        let mut previous: Option<(i64, DateTime)> = None;
        let mut sorted = ticks.clone();
        sorted.sort_unstable();
        for &t in &sorted {
            let dt = cal.from_ticks(t);
            assert_eq!(cal.to_ticks(&dt), t, "{cal} {t} {dt}");
            let checked = DateTime::new(
                cal,
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.microsecond(),
            );
            assert_eq!(checked, Ok(dt), "{cal} {t}");
            if let Some((pt, pdt)) = previous
                && pt < t
            {
                assert!(pdt < dt, "{cal}: order {pdt} then {dt}");
            }
            previous = Some((t, dt));
            assert!(cal.dayofyear(&dt) >= 1 && cal.dayofyear(&dt) <= 366);
            assert!(cal.dayofweek(&dt) < 7);
            let iso = cal.format_iso(t);
            assert_eq!(cal.parse_datetime(&iso), Ok(t), "{cal} {iso}");
        }
    }
}

#[test]
fn consecutive_days_advance_the_weekday() {
    for cal in Calendar::ALL {
        for day in -1_000_000..-999_000_i64 {
            let a = cal.from_ticks(day * US_PER_DAY);
            let b = cal.from_ticks((day + 1) * US_PER_DAY);
            assert_eq!((cal.dayofweek(&a) + 1) % 7, cal.dayofweek(&b), "{cal} {a}");
        }
    }
}

#[test]
fn three_hourly_steps_over_centuries_do_not_drift() {
    for cal in Calendar::ALL {
        let units = CfUnits::parse("days since 1850-01-01", cal).unwrap();
        let hours = CfUnits::parse("hours since 1850-01-01 00:00:00", cal).unwrap();
        let start = units.reference_ticks();
        let step = 3 * 3_600_000_000;
        for k in 0..(8 * 365 * 400) {
            let value = k as f64 * 0.125;
            let t = units.decode(value).unwrap().unwrap();
            assert_eq!(t, start + k * step, "{cal} step {k}");
            assert_eq!(units.encode(t), value, "{cal} step {k}");
            assert_eq!(hours.encode(t), (3 * k) as f64);
            assert_eq!(hours.encode_exact(t), Some(3 * k));
            assert_eq!(hours.decode_i64(3 * k).unwrap(), t);
        }
    }
}

#[test]
fn units_display_reads_back() {
    for cal in Calendar::ALL {
        for text in [
            "days since 1850-1-1",
            "hours since 1970-01-01 00:00:00 +05:30",
            "seconds since 2000-01-01T00:00:00Z",
            "milliseconds since 0001-01-01 00:00:00.0",
            "microseconds since 1850-01-01 12:30:45.000249 -06:00",
            "minutes since 1850-01-01 0:0:0",
            "d since 1-1-1",
            "usec since 1900-01-01",
        ] {
            let units = CfUnits::parse(text, cal).unwrap();
            let shown = units.to_string();
            assert_eq!(
                CfUnits::parse(&shown, cal).unwrap(),
                units,
                "{cal} {text} -> {shown}"
            );
        }
    }
    let units = CfUnits::parse("days since 1850-01-01", Calendar::NoLeap).unwrap();
    assert_eq!(units.to_string(), "days since 1850-01-01 00:00:00");
    assert_eq!(units.unit, TimeUnit::Days);
    let reference = DateTime::ymd(Calendar::NoLeap, 1850, 1, 1).unwrap();
    assert_eq!(
        units,
        CfUnits::new(TimeUnit::Days, reference, Calendar::NoLeap)
    );
    let fraction = CfUnits::parse("seconds since 2000-01-01 00:00:00.000249", Calendar::NoLeap);
    // cftime reads ".000249" through a float: 248 µs.
    assert_eq!(fraction.unwrap().reference.microsecond(), 248);
}

fn units_error(text: &str, cal: Calendar) -> String {
    match CfUnits::parse(text, cal) {
        Err(e @ CftimeError::InvalidUnits { .. }) => e.to_string(),
        other => panic!("{text:?} in {cal}: expected a units error, got {other:?}"),
    }
}

#[test]
fn units_errors_name_the_text_and_the_reason() {
    let cases = [
        (
            "fortnights since 2000-01-01",
            Calendar::Standard,
            "unknown time unit \"fortnights\"",
        ),
        ("months since 2000-01-01", Calendar::Day360, "not supported"),
        (
            "days after 2000-01-01",
            Calendar::Standard,
            "found \"after\"",
        ),
        (
            "days",
            Calendar::Standard,
            "expected \"<unit> since <date>\"",
        ),
        (
            "days since",
            Calendar::Standard,
            "reference date is missing",
        ),
        (
            "days since 1850",
            Calendar::Standard,
            "needs a year, month and day",
        ),
        (
            "days since 1850-01-31",
            Calendar::Day360,
            "day 31 does not exist in month 1",
        ),
        (
            "days since 2001-02-29",
            Calendar::NoLeap,
            "day 29 does not exist in month 2",
        ),
        (
            "days since 1582-10-10",
            Calendar::Standard,
            "1582-10-04 is followed by 1582-10-15",
        ),
        (
            "days since 0000-01-01",
            Calendar::Julian,
            "year 0 does not exist",
        ),
        (
            "days since 1850-01-01 garbage",
            Calendar::Standard,
            "unexpected text \"garbage\"",
        ),
        (
            "days since 1850-01-01 06",
            Calendar::Standard,
            "hours and minutes",
        ),
        (
            "days since 1850-01-01 25:00",
            Calendar::Standard,
            "hour 25 is not in 0-23",
        ),
        (
            "days since 1850-13-01",
            Calendar::Standard,
            "month 13 is not in 1-12",
        ),
        (
            "days since 1850-01-01 00:00:00 +05:75",
            Calendar::Standard,
            "minutes 75",
        ),
    ];
    for (text, cal, reason) in cases {
        let err = units_error(text, cal);
        assert!(err.contains(&format!("{text:?}")), "{err}");
        assert!(err.contains(reason), "{text:?}: {err}");
    }
}

#[test]
fn decode_handles_nan_inf_and_overflow() {
    let units = CfUnits::parse("days since 1850-01-01", Calendar::Standard).unwrap();
    assert_eq!(units.decode(f64::NAN), Ok(None));
    for bad in [f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e15] {
        let err = units.decode(bad).unwrap_err().to_string();
        assert!(err.contains("days since 1850-01-01 00:00:00"), "{err}");
        assert!(err.contains(&bad.to_string()), "{err}");
    }
    let err = units.decode_i64(i64::MAX / 1000).unwrap_err().to_string();
    assert!(err.contains(&(i64::MAX / 1000).to_string()), "{err}");
    let got = units.decode_slice(&[0.0, f64::NAN, 1.5]).unwrap();
    assert_eq!(got[1], None);
    assert_eq!(got[2].unwrap() - got[0].unwrap(), US_PER_DAY * 3 / 2);
    assert_eq!(units.encode_exact(units.reference_ticks() + 1), None);
}

#[test]
fn partial_strings_cover_their_interval() {
    let cal = Calendar::Day360;
    let iso = |t: i64| cal.format_iso(t);
    for (text, first, end) in [
        ("1900", "1900-01-01T00:00:00", "1901-01-01T00:00:00"),
        ("1900-03", "1900-03-01T00:00:00", "1900-04-01T00:00:00"),
        ("1900-12", "1900-12-01T00:00:00", "1901-01-01T00:00:00"),
        ("1900-02-30", "1900-02-30T00:00:00", "1900-03-01T00:00:00"),
        (
            "1900-03-05T06",
            "1900-03-05T06:00:00",
            "1900-03-05T07:00:00",
        ),
        (
            "1900-03-05 06:30",
            "1900-03-05T06:30:00",
            "1900-03-05T06:31:00",
        ),
        (
            "1900-03-05T06:30:15",
            "1900-03-05T06:30:15",
            "1900-03-05T06:30:16",
        ),
        (
            "1900-03-05T06:30:15.25",
            "1900-03-05T06:30:15.250000",
            "1900-03-05T06:30:15.250001",
        ),
    ] {
        let (s, e) = cal.parse_partial(text).unwrap();
        assert_eq!(
            (iso(s), iso(e)),
            (first.to_string(), end.to_string()),
            "{text}"
        );
    }
    let std = Calendar::Standard;
    let (s, e) = std.parse_partial("-0001").unwrap();
    assert_eq!(std.format_iso(s), "-0001-01-01T00:00:00");
    assert_eq!(std.format_iso(e), "0001-01-01T00:00:00");
    let (s, e) = std.parse_partial("1582-10-04").unwrap();
    assert_eq!(e - s, US_PER_DAY);
    assert_eq!(std.format_iso(e), "1582-10-15T00:00:00");
    for (text, reason) in [
        (
            "1900-02-31",
            "day 31 does not exist in month 2 of year 1900 in the 360_day calendar",
        ),
        ("1900-13", "month 13"),
        ("1900-01-01T00:00:00Z", "unexpected text \"Z\""),
        ("1900-01-01T00:00:00.1234567", "more than 6 digits"),
        ("March 1900", "expected the year"),
        ("", "expected the year"),
    ] {
        let err = cal.parse_partial(text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{text:?}")) && err.contains(reason),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn date_range_argument_errors() {
    let cal = Calendar::NoLeap;
    let both = date_range(cal, "2000", Some("2001"), Some(3), "D").unwrap_err();
    assert!(both.to_string().contains("not both"), "{both}");
    let neither = date_range(cal, "2000", None, None, "D").unwrap_err();
    assert!(neither.to_string().contains("\"2000\""), "{neither}");
    let freq = date_range(cal, "2000", None, Some(3), "3x").unwrap_err();
    assert!(
        matches!(freq, CftimeError::InvalidFrequency { .. }),
        "{freq}"
    );
    let huge = date_range(cal, "2000", Some("3000"), None, "us").unwrap_err();
    assert!(huge.to_string().contains("exceed the limit"), "{huge}");
    let bad_start = date_range(cal, "2000-02-29", None, Some(2), "D").unwrap_err();
    assert!(
        bad_start.to_string().contains("day 29 does not exist"),
        "{bad_start}"
    );
}

#[test]
fn add_months_clamps_and_keeps_the_time() {
    let cal = Calendar::Standard;
    let dt = DateTime::new(cal, 2000, 1, 31, 6, 30, 0, 5).unwrap();
    assert_eq!(
        cal.add_months(&dt, 1),
        DateTime::new(cal, 2000, 2, 29, 6, 30, 0, 5).unwrap()
    );
    assert_eq!(
        cal.add_months(&dt, -2),
        DateTime::new(cal, 1999, 11, 30, 6, 30, 0, 5).unwrap()
    );
    assert_eq!(cal.add_months(&dt, 0), dt);
    let before_year_one = DateTime::ymd(cal, 1, 1, 15).unwrap();
    assert_eq!(
        cal.add_months(&before_year_one, -1),
        DateTime::ymd(cal, -1, 12, 15).unwrap()
    );
    let in_gap = DateTime::ymd(cal, 1582, 9, 10).unwrap();
    assert_eq!(
        cal.add_months(&in_gap, 1),
        DateTime::ymd(cal, 1582, 10, 15).unwrap()
    );
}

#[test]
fn anchored_frequency_semantics() {
    let cal = Calendar::AllLeap;
    let f = Frequency::parse("ME").unwrap();
    assert!(f.is_anchored() && f.is_end_anchored());
    assert_eq!(
        Frequency::parse("6h").unwrap().fixed_micros(),
        Some(6 * 3_600_000_000)
    );
    let jan15 = cal.parse_datetime("2001-01-15T12:00").unwrap();
    assert_eq!(
        cal.format_iso(f.rollforward(cal, jan15)),
        "2001-01-31T12:00:00"
    );
    assert_eq!(
        cal.format_iso(f.advance(cal, jan15, -1)),
        "2000-12-31T12:00:00"
    );
    let origin = cal.start_of_day(jan15);
    assert_eq!(cal.format_iso(origin), "2001-01-15T00:00:00");
}

#[test]
fn calendar_serde_uses_cf_names() {
    for cal in Calendar::ALL {
        let json = serde_json::to_string(&cal).unwrap();
        assert_eq!(json, format!("\"{}\"", cal.name()));
        assert_eq!(serde_json::from_str::<Calendar>(&json).unwrap(), cal);
    }
    assert_eq!(
        serde_json::from_str::<Calendar>("\"365_day\"").unwrap(),
        Calendar::NoLeap
    );
    assert_eq!(
        serde_json::from_str::<Calendar>("\"gregorian\"").unwrap(),
        Calendar::Standard
    );
}

/// Timing of the hot paths; run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing() {
    use std::time::Instant;
    let cal = Calendar::Standard;
    let units = CfUnits::parse("days since 1850-01-01", cal).unwrap();
    let values: Vec<f64> = (0..14_400).map(|k| k as f64 * 0.125).collect();
    let start = Instant::now();
    let decoded = units.decode_slice(&values).unwrap();
    println!("decode 14,400 values: {:?}", start.elapsed());
    assert_eq!(decoded.len(), values.len());
    let ticks: Vec<i64> = (0..500_000).map(|k| k * 3 * 3_600_000_000).collect();
    for cal in Calendar::ALL {
        let start = Instant::now();
        let mut acc = 0u64;
        for &t in &ticks {
            let dt = cal.from_ticks(t);
            acc += u64::from(dt.month() + cal.dayofyear(&dt))
                + gridflow_cftime::season(dt.month()).len() as u64;
        }
        println!(
            "{cal}: month+dayofyear+season of 500k ticks: {:?} ({acc})",
            start.elapsed()
        );
    }
}
