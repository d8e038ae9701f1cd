//! Compares the crate with cftime and xarray on the values in fixtures/reference.json.
#![allow(clippy::unwrap_used)]

use gridflow_cftime::{Calendar, CfUnits, DateTime, Frequency, date_range};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Deserialize)]
struct Reference {
    versions: BTreeMap<String, String>,
    calendars: BTreeMap<String, CalendarRef>,
}

#[derive(Deserialize)]
struct CalendarRef {
    leap: Vec<(i32, bool)>,
    days_in_month: Vec<(i32, Vec<u32>)>,
    days_in_year: Vec<(i32, u32)>,
    decode: Vec<DecodeCase>,
    bad_units: Vec<String>,
    ranges: Vec<RangeCase>,
    resample: Vec<ResampleCase>,
    partial: Vec<PartialCase>,
}

#[derive(Deserialize)]
struct DecodeCase {
    units: String,
    kind: String,
    values: Vec<String>,
    /// year, month, day, hour, minute, second, microsecond, dayofyr, dayofwk
    dates: Vec<[i64; 9]>,
    iso: Vec<Option<String>>,
    encoded: Vec<String>,
}

#[derive(Deserialize)]
struct RangeCase {
    start: String,
    end: Option<String>,
    periods: Option<usize>,
    freq: String,
    error: Option<String>,
    count: Option<usize>,
    samples: Option<Vec<(usize, String)>>,
}

#[derive(Deserialize)]
struct ResampleCase {
    start: String,
    periods: usize,
    freq: String,
    resample: String,
    labels: Vec<String>,
    counts: Vec<usize>,
}

#[derive(Deserialize)]
struct PartialCase {
    input: String,
    first: Option<String>,
    last: Option<String>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/reference.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn calendars() -> Vec<(Calendar, CalendarRef)> {
    let r = reference();
    assert_eq!(r.versions["cftime"], "1.6.6.1");
    assert_eq!(r.versions["xarray"], "2026.9.0");
    let out: Vec<_> = r
        .calendars
        .into_iter()
        .map(|(name, c)| (name.parse::<Calendar>().unwrap(), c))
        .collect();
    assert_eq!(out.len(), Calendar::ALL.len());
    out
}

#[test]
fn leap_years_and_month_lengths() {
    for (cal, c) in calendars() {
        assert!(c.leap.len() > 15);
        for (year, leap) in &c.leap {
            assert_eq!(cal.is_leap_year(*year), *leap, "{cal} {year}");
        }
        for (year, lengths) in &c.days_in_month {
            let ours: Vec<u32> = (1..=12).map(|m| cal.days_in_month(*year, m)).collect();
            assert_eq!(&ours, lengths, "{cal} {year}");
        }
        for (year, days) in &c.days_in_year {
            assert_eq!(cal.days_in_year(*year), *days, "{cal} {year}");
        }
    }
}

#[test]
fn decode_components_and_encode_match_cftime() {
    let mut checked = 0;
    for (cal, c) in calendars() {
        for case in &c.decode {
            let units = CfUnits::parse(&case.units, cal)
                .unwrap_or_else(|e| panic!("{cal}: cftime accepts {:?}: {e}", case.units));
            assert_eq!(case.values.len(), case.dates.len());
            for (i, text) in case.values.iter().enumerate() {
                let what = format!("{cal} {:?} value {text}", case.units);
                let t = if case.kind == "i8" {
                    units.decode_i64(text.parse().unwrap()).unwrap()
                } else {
                    units.decode(text.parse().unwrap()).unwrap().unwrap()
                };
                let dt = cal.from_ticks(t);
                let ours = [
                    i64::from(dt.year()),
                    i64::from(dt.month()),
                    i64::from(dt.day()),
                    i64::from(dt.hour()),
                    i64::from(dt.minute()),
                    i64::from(dt.second()),
                    i64::from(dt.microsecond()),
                    i64::from(cal.dayofyear(&dt)),
                    i64::from(cal.dayofweek(&dt)),
                ];
                assert_eq!(ours, case.dates[i], "{what}");
                if let Some(iso) = &case.iso[i] {
                    assert_eq!(&cal.format_iso(t), iso, "{what}");
                }
                let again = DateTime::new(
                    cal,
                    dt.year(),
                    dt.month(),
                    dt.day(),
                    dt.hour(),
                    dt.minute(),
                    dt.second(),
                    dt.microsecond(),
                )
                .unwrap();
                assert_eq!(cal.to_ticks(&again), t, "{what}");
                let encoded = &case.encoded[i];
                let expected: f64 = encoded.parse().unwrap();
                let got = units.encode(t);
                assert_eq!(
                    got.to_bits(),
                    expected.to_bits(),
                    "{what}: encode {got} vs {encoded}"
                );
                let integral = !encoded.contains(['.', 'e', 'n', 'i']);
                let exact = integral.then(|| encoded.parse::<i64>().unwrap());
                assert_eq!(units.encode_exact(t), exact, "{what}");
                checked += 1;
            }
        }
    }
    assert!(checked > 1500, "only {checked} values checked");
}

#[test]
fn units_cftime_rejects_are_errors() {
    for (cal, c) in calendars() {
        assert!(!c.bad_units.is_empty());
        for units in &c.bad_units {
            let err = CfUnits::parse(units, cal).unwrap_err().to_string();
            assert!(err.contains(&format!("{units:?}")), "{err}");
        }
    }
}

#[test]
fn date_ranges_match_xarray() {
    let mut checked = 0;
    for (cal, c) in calendars() {
        for case in &c.ranges {
            let what = format!(
                "{cal} date_range({:?}, {:?}, {:?}, {:?})",
                case.start, case.end, case.periods, case.freq
            );
            let got = date_range(
                cal,
                &case.start,
                case.end.as_deref(),
                case.periods,
                &case.freq,
            );
            if case.error.is_some() {
                assert!(got.is_err(), "{what}: xarray fails, we gave {got:?}");
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(Some(got.len()), case.count, "{what}");
            for (i, iso) in case.samples.as_ref().unwrap() {
                assert_eq!(&cal.format_iso(got[*i]), iso, "{what} [{i}]");
            }
            checked += 1;
        }
    }
    assert!(checked > 250);
}

#[test]
fn resample_bins_match_xarray() {
    for (cal, c) in calendars() {
        for case in &c.resample {
            let what = format!(
                "{cal} {} x {} from {} resampled to {}",
                case.periods, case.freq, case.start, case.resample
            );
            let times = date_range(cal, &case.start, None, Some(case.periods), &case.freq).unwrap();
            let f = Frequency::parse(&case.resample).unwrap();
            let origin = cal.start_of_day(times[0]);
            let mut ours: HashMap<i64, usize> = HashMap::new();
            for &t in &times {
                *ours.entry(f.floor(cal, t, origin)).or_default() += 1;
            }
            let labels: Vec<i64> = case
                .labels
                .iter()
                .map(|s| cal.parse_datetime(s).unwrap())
                .collect();
            for (i, label) in labels.iter().enumerate() {
                let count = ours.get(label).copied().unwrap_or(0);
                assert_eq!(count, case.counts[i], "{what}: bin {}", case.labels[i]);
            }
            let total: usize = case.counts.iter().sum();
            assert_eq!(total, case.periods, "{what}: xarray counts");
            assert_eq!(
                ours.len(),
                case.counts.iter().filter(|&&n| n > 0).count(),
                "{what}"
            );
            for pair in labels.windows(2) {
                assert_eq!(f.advance(cal, pair[0], 1), pair[1], "{what}: label grid");
            }
        }
    }
}

#[test]
fn partial_strings_match_xarray_bounds() {
    for (cal, c) in calendars() {
        for case in &c.partial {
            let got = cal.parse_partial(&case.input);
            match (&case.first, &case.last) {
                (Some(first), Some(last)) => {
                    let (start, end) =
                        got.unwrap_or_else(|e| panic!("{cal} {:?}: {e}", case.input));
                    assert_eq!(&cal.format_iso(start), first, "{cal} {:?}", case.input);
                    assert_eq!(&cal.format_iso(end - 1), last, "{cal} {:?}", case.input);
                }
                _ => {
                    let err = got.unwrap_err().to_string();
                    assert!(err.contains(&format!("{:?}", case.input)), "{err}");
                }
            }
        }
    }
}
