//! Writes example figures (PNG and SVG) to a directory, default `/tmp/plot-examples`, and
//! prints how long each render took.
//!
//! ```sh
//! cargo run --release -p gridflow-plot --example plot_examples -- /tmp/plot-examples
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use gridflow_plot::{DateParts, LinePlot, MapPlot};

/// A small deterministic noise source (xorshift64*), so the examples need no extra crate.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal: the sum of four uniforms, rescaled to unit variance.
    fn normal(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3f64.sqrt()
    }
}

/// Date of `hours` after 1850-01-01 00:00 in the 360_day calendar.
fn date_360(hours: u32) -> DateParts {
    let d = hours / 24;
    DateParts::new(
        1850 + (d / 360) as i32,
        (d % 360) / 30 + 1,
        d % 30 + 1,
        hours % 24,
        0,
    )
}

/// 5 years of 3-hourly near-surface temperature in a 360_day calendar: 14,400 points.
fn five_year_series() -> LinePlot {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let n = 5 * 360 * 8;
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    let mut dates = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let hours = i * 3;
        let days = f64::from(hours) / 24.0;
        let season = (2.0 * std::f64::consts::PI * (days / 360.0 - 0.3)).sin();
        let diurnal = (2.0 * std::f64::consts::PI * (f64::from(hours % 24) / 24.0 - 0.4)).sin();
        x.push(days);
        y.push(284.0 + 9.0 * season + 3.5 * diurnal + 1.2 * noise.normal());
        dates.push(date_360(hours));
    }
    LinePlot::new(
        "Near-surface air temperature, 3-hourly (CMIP6-like, 360_day)",
        x,
        y,
    )
    .with_time_axis(dates)
    .with_x_label("time [days since 1850-01-01, 360_day calendar]")
    .with_y_label("tas [K]")
}

/// One month (March 2015, standard calendar) of hourly precipitation with a gap.
fn one_month_series() -> LinePlot {
    let mut noise = Noise(42);
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut dates = Vec::new();
    for day in 1..=31u32 {
        for hour in 0..24u32 {
            let t = f64::from((day - 1) * 24 + hour) / 24.0;
            let storm = 6.0 * (-((t - 11.5) / 1.5).powi(2)).exp()
                + 3.0 * (-((t - 23.0) / 0.8).powi(2)).exp();
            let v = (storm + 0.4 * noise.normal() + 0.3).max(0.0);
            x.push(t);
            // A sensor outage on March 17-18 shows as a gap.
            y.push(if (16.0..18.5).contains(&t) {
                f64::NAN
            } else {
                v
            });
            dates.push(DateParts::new(2015, 3, day, hour, 0));
        }
    }
    LinePlot::new("Hourly precipitation, March 2015", x, y)
        .with_time_axis(dates)
        .with_x_label("time")
        .with_y_label("pr [mm h⁻¹]")
}

/// Short spans that exercise the other tick units.
fn span_series(title: &str, dates: Vec<DateParts>, step_days: f64) -> LinePlot {
    let x: Vec<f64> = (0..dates.len()).map(|i| i as f64 * step_days).collect();
    let n = x.len() as f64;
    let y: Vec<f64> = (0..dates.len())
        .map(|i| (i as f64 / n * 12.0).sin() * 2.0 + i as f64 / n)
        .collect();
    LinePlot::new(title, x, y)
        .with_time_axis(dates)
        .with_x_label("time")
        .with_y_label("anomaly [K]")
}

/// An N96 (144 × 192) temperature field in K with a latitude gradient, waves and NaN cells.
fn n96_map(descending_lat: bool, lon_from_minus_180: bool) -> MapPlot {
    let (nlat, nlon) = (144usize, 192usize);
    let mut lat: Vec<f64> = (0..nlat).map(|i| -89.375 + 1.25 * i as f64).collect();
    if descending_lat {
        lat.reverse();
    }
    let lon: Vec<f64> = (0..nlon)
        .map(|j| {
            let v = 1.875 * j as f64;
            if lon_from_minus_180 { v - 180.0 } else { v }
        })
        .collect();
    let mut noise = Noise(7);
    let mut values = Vec::with_capacity(nlat * nlon);
    for &la in &lat {
        for &lo in &lon {
            let r = la.to_radians();
            let l = lo.to_radians();
            let mut v = 302.0 - 48.0 * r.sin().powi(2) - 6.0 * (la / 90.0).max(0.0).powi(3) * 4.0
                + 4.0 * (3.0 * l).sin() * r.cos()
                + 2.5 * (2.0 * l + 2.0 * r).cos()
                + 0.6 * noise.normal();
            // A "Tibetan plateau" cold spot north of the equator, east of 0°.
            let d2 = ((la - 33.0) / 6.0).powi(2) + ((lo.rem_euclid(360.0) - 88.0) / 10.0).powi(2);
            v -= 14.0 * (-d2).exp();
            // Missing data: a box over the Southern Ocean and scattered cells.
            let boxed =
                (-62.0..-48.0).contains(&la) && (200.0..250.0).contains(&lo.rem_euclid(360.0));
            values.push(if boxed || noise.uniform() < 0.004 {
                f64::NAN
            } else {
                v
            });
        }
    }
    MapPlot::new(
        "Near-surface air temperature, N96 grid (synthetic)",
        lat,
        lon,
        values,
    )
    .with_colorbar_label("tas [K]")
}

/// Render both formats, write them, and print the best of five timings of each.
fn render(
    name: &str,
    dir: &Path,
    png: impl Fn() -> gridflow_plot::Result<Vec<u8>>,
    svg: impl Fn() -> gridflow_plot::Result<String>,
) -> gridflow_plot::Result<()> {
    let mut png_ms = f64::INFINITY;
    let mut svg_ms = f64::INFINITY;
    let (mut bytes, mut text) = (Vec::new(), String::new());
    for _ in 0..5 {
        let t = Instant::now();
        bytes = png()?;
        png_ms = png_ms.min(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        text = svg()?;
        svg_ms = svg_ms.min(t.elapsed().as_secs_f64() * 1e3);
    }
    let write = |path: PathBuf, data: &[u8]| {
        std::fs::write(&path, data).map_err(|source| gridflow_plot::Error::Io { path, source })
    };
    let png_path = dir.join(format!("{name}.png"));
    write(png_path.clone(), &bytes)?;
    write(dir.join(format!("{name}.svg")), text.as_bytes())?;
    println!(
        "{name:<22} png {png_ms:6.1} ms   svg {svg_ms:6.1} ms   -> {}",
        png_path.display()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("/tmp/plot-examples"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;

    let lines = [
        ("five_year_3hourly", five_year_series()),
        ("one_month_hourly", one_month_series()),
        (
            "span_3_hours",
            span_series(
                "3 hours, 10-minute data",
                (0..19)
                    .map(|i| DateParts::new(2000, 2, 30, 6 + i / 6, (i % 6) * 10))
                    .collect(),
                10.0 / 1440.0,
            ),
        ),
        (
            "span_10_days",
            span_series(
                "10 days, 6-hourly, 360_day",
                (0..40).map(|i| date_360(6 * i + 24 * 55)).collect(),
                0.25,
            ),
        ),
        (
            "span_2_years",
            span_series(
                "2 years, daily, 360_day",
                (0..720).map(|i| date_360(24 * i)).collect(),
                1.0,
            ),
        ),
        (
            "span_100_years",
            span_series(
                "100 years, monthly, 360_day",
                (0..1200)
                    .map(|i| DateParts::ymd(1850 + i / 12, (i % 12) as u32 + 1, 16))
                    .collect(),
                30.0,
            ),
        ),
    ];
    for (name, plot) in &lines {
        let (w, h) = (LinePlot::DEFAULT_WIDTH, LinePlot::DEFAULT_HEIGHT);
        render(name, &dir, || plot.to_png(w, h), || plot.to_svg(w, h))?;
    }
    let small = &lines[0].1;
    render(
        "five_year_small",
        &dir,
        || small.to_png(500, 300),
        || small.to_svg(500, 300),
    )?;
    let ten_days = &lines[3].1;
    render(
        "span_10_days_small",
        &dir,
        || ten_days.to_png(420, 260),
        || ten_days.to_svg(420, 260),
    )?;
    let big = &lines[1].1;
    render(
        "one_month_large",
        &dir,
        || big.to_png(2000, 1000),
        || big.to_svg(2000, 1000),
    )?;

    let maps = [
        ("n96_map", n96_map(false, false)),
        ("n96_map_desc_lat_pm180", n96_map(true, true)),
    ];
    for (name, map) in &maps {
        let (w, h) = (MapPlot::DEFAULT_WIDTH, MapPlot::DEFAULT_HEIGHT);
        render(name, &dir, || map.to_png(w, h), || map.to_svg(w, h))?;
    }
    let europe = {
        let lat: Vec<f64> = (0..40).map(|i| 71.0 - i as f64 * 0.75).collect();
        let lon: Vec<f64> = (0..60).map(|j| -12.0 + j as f64 * 0.75).collect();
        let values: Vec<f64> = lat
            .iter()
            .flat_map(|la| {
                lon.iter()
                    .map(move |lo| 0.002 * (la - 35.0) + 0.0005 * (lo / 5.0).sin())
            })
            .collect();
        MapPlot::new("Regional field, small values", lat, lon, values)
            .with_colorbar_label("mrso fraction [1]")
    };
    render(
        "regional_map",
        &dir,
        || europe.to_png(800, 600),
        || europe.to_svg(800, 600),
    )?;
    let empty = MapPlot::new(
        "All missing",
        vec![-45.0, 45.0],
        vec![0.0, 180.0],
        vec![f64::NAN; 4],
    )
    .with_colorbar_label("tas [K]");
    render(
        "all_nan_map",
        &dir,
        || empty.to_png(600, 400),
        || empty.to_svg(600, 400),
    )?;
    Ok(())
}
