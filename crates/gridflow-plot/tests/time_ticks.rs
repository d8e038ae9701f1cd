//! Time-axis tick selection over spans from hours to a century, in a 360_day calendar.
#![allow(clippy::unwrap_used)]

use gridflow_plot::{DateParts, TickUnit, TimeTicks, time_ticks};

/// The date `minutes` after 1850-01-01 00:00 in the 360_day calendar.
fn date_360(minutes: u64) -> DateParts {
    let day = minutes / 1440;
    let in_day = minutes % 1440;
    DateParts::new(
        1850 + (day / 360) as i32,
        ((day % 360) / 30 + 1) as u32,
        (day % 30 + 1) as u32,
        (in_day / 60) as u32,
        (in_day % 60) as u32,
    )
}

/// `n` samples every `step` minutes from `start` minutes; x in days.
fn series(start: u64, step: u64, n: u64) -> (Vec<f64>, Vec<DateParts>) {
    (0..n)
        .map(|i| {
            let m = start + i * step;
            (m as f64 / 1440.0, date_360(m))
        })
        .unzip()
}

fn labels(t: &TimeTicks) -> Vec<&str> {
    t.ticks.iter().map(|t| t.label.as_str()).collect()
}

fn check_common(t: &TimeTicks, x: &[f64]) {
    assert!(
        (5..=10).contains(&t.ticks.len()),
        "{} ticks: {:?}",
        t.ticks.len(),
        labels(t)
    );
    for w in t.ticks.windows(2) {
        assert!(w[1].x > w[0].x, "ticks out of order: {:?}", labels(t));
    }
    let (lo, hi) = (x[0], x[x.len() - 1]);
    assert!(t.ticks.iter().all(|t| t.x >= lo && t.x <= hi));
}

#[test]
fn three_hours_of_ten_minute_data_tick_every_half_hour() {
    // 360_day Feb 30, 06:00 to 09:00.
    let start = (59 * 1440 + 6 * 60) as u64;
    let (x, dates) = series(start, 10, 19);
    assert_eq!(dates[0], DateParts::new(1850, 2, 30, 6, 0));
    let t = time_ticks(&x, &dates, 10);
    check_common(&t, &x);
    assert_eq!(t.unit, TickUnit::Minutes(30));
    assert_eq!(
        labels(&t),
        [
            "06:00", "06:30", "07:00", "07:30", "08:00", "08:30", "09:00"
        ]
    );
    assert_eq!(t.ticks[0].context.as_deref(), Some("1850-02-30"));
    assert!(t.ticks[1..].iter().all(|t| t.context.is_none()));
    // Half an hour is 1/48 day apart.
    assert!((t.ticks[1].x - t.ticks[0].x - 1.0 / 48.0).abs() < 1e-9);
}

#[test]
fn ten_days_of_six_hourly_data_tick_daily_through_february_30() {
    // 1850-02-24 06:00 for ten days.
    let (x, dates) = series((53 * 1440 + 360) as u64, 360, 40);
    let t = time_ticks(&x, &dates, 10);
    check_common(&t, &x);
    assert_eq!(t.unit, TickUnit::Days(1));
    assert_eq!(
        labels(&t),
        [
            "02-25", "02-26", "02-27", "02-28", "02-29", "02-30", "03-01", "03-02", "03-03",
            "03-04"
        ]
    );
    // Every day, including Feb 29 and 30, is one x unit (day) apart.
    for w in t.ticks.windows(2) {
        assert!((w[1].x - w[0].x - 1.0).abs() < 1e-9);
    }
    assert_eq!(t.ticks[0].context.as_deref(), Some("1850"));
    assert_eq!(t.ticks.iter().filter(|t| t.context.is_some()).count(), 1);
    // With room for fewer labels, every other day.
    let t = time_ticks(&x, &dates, 6);
    assert_eq!(t.unit, TickUnit::Days(2));
    assert!(labels(&t).contains(&"02-29"));
}

#[test]
fn two_years_of_daily_data_tick_quarterly() {
    let (x, dates) = series(0, 1440, 720);
    let t = time_ticks(&x, &dates, 10);
    check_common(&t, &x);
    assert_eq!(t.unit, TickUnit::Months(3));
    assert_eq!(
        labels(&t),
        [
            "1850-01", "1850-04", "1850-07", "1850-10", "1851-01", "1851-04", "1851-07", "1851-10"
        ]
    );
    // 360_day: each quarter is exactly 90 days.
    for w in t.ticks.windows(2) {
        assert!((w[1].x - w[0].x - 90.0).abs() < 1e-9);
    }
}

#[test]
fn a_century_of_monthly_means_ticks_every_decade_between_samples() {
    // Monthly means stamped mid-month (day 16): year boundaries fall between samples.
    let dates: Vec<DateParts> = (0..1200)
        .map(|i| DateParts::ymd(1850 + i / 12, (i % 12) as u32 + 1, 16))
        .collect();
    let x: Vec<f64> = (0..1200).map(|i| f64::from(i) * 30.0 + 15.0).collect();
    let t = time_ticks(&x, &dates, 10);
    check_common(&t, &x);
    assert_eq!(t.unit, TickUnit::Years(10));
    assert_eq!(
        labels(&t),
        [
            "1860", "1870", "1880", "1890", "1900", "1910", "1920", "1930", "1940"
        ]
    );
    // 1860-01-01 lies between the Dec 16 and Jan 16 samples, about halfway.
    let i = 120; // 1860-01-16
    let tick = &t.ticks[0];
    assert!(
        tick.x > x[i - 1] && tick.x < x[i],
        "{} not in ({}, {})",
        tick.x,
        x[i - 1],
        x[i]
    );
    assert!((tick.x - (x[i - 1] + x[i]) / 2.0).abs() < 2.0);
    assert!(t.ticks.iter().all(|t| t.context.is_none()));
}

#[test]
fn coarse_samples_still_get_every_boundary() {
    // Yearly samples over 30 years with room for 10 ticks: 5-year ticks.
    let dates: Vec<DateParts> = (0..=30).map(|i| DateParts::ymd(2000 + i, 7, 1)).collect();
    let x: Vec<f64> = (0..=30).map(f64::from).collect();
    let t = time_ticks(&x, &dates, 10);
    assert_eq!(t.unit, TickUnit::Years(5));
    assert_eq!(labels(&t), ["2005", "2010", "2015", "2020", "2025", "2030"]);
    // Two samples a day apart: hourly boundaries are interpolated between them.
    let dates = vec![DateParts::ymd(2000, 1, 1), DateParts::ymd(2000, 1, 2)];
    let x = vec![0.0, 1.0];
    let t = time_ticks(&x, &dates, 10);
    assert_eq!(t.unit, TickUnit::Hours(3));
    assert_eq!(t.ticks.len(), 9);
    assert!((t.ticks[4].x - 0.5).abs() < 1e-9);
    assert_eq!(t.ticks[8].label, "00:00");
    assert_eq!(t.ticks[8].context.as_deref(), Some("2000-01-02"));
}

#[test]
fn degenerate_inputs_fall_back_to_full_dates() {
    let t = time_ticks(&[5.0], &[DateParts::new(2001, 3, 4, 5, 6)], 10);
    assert_eq!(t.ticks.len(), 1);
    assert_eq!(t.ticks[0].label, "05:06");
    assert_eq!(t.ticks[0].context.as_deref(), Some("2001-03-04"));
    assert!(time_ticks(&[], &[], 10).ticks.is_empty());
    let t = time_ticks(&[f64::NAN, f64::NAN], &[DateParts::ymd(2000, 1, 1); 2], 10);
    assert!(t.ticks.is_empty());
}
