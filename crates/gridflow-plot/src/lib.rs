//! Publication-quality PNG and SVG figures for gridflow.
//!
//! Two figure kinds, both taking plain data (no other gridflow crate is needed):
//!
//! - [`LinePlot`]: a line over a numeric or datetime x axis. Time axes take calendar-free
//!   [`DateParts`] per point, so any CF calendar works (the caller decodes it); ticks fall on
//!   year, month, day, hour or minute boundaries chosen from the span. NaN y values break the
//!   line. Default size 1000×500.
//! - [`MapPlot`]: a lat/lon field drawn north-up and east-right with the viridis colormap
//!   and a vertical colorbar. Missing (NaN) cells are light grey ([`MISSING_COLOR`]), with a
//!   "missing" swatch under the colorbar when any are present. Default size 1000×560.
//!
//! Both render with `to_png(width, height)` / `to_svg(width, height)` or write a file with
//! `save(path)`, picking the format from the extension. Text is DejaVu Sans (bundled, under
//! the Bitstream Vera licence in `assets/LICENSE-DejaVu.txt`); SVG output names it first and
//! falls back to similar sans-serif faces.
//!
//! ```
//! use gridflow_plot::{DateParts, LinePlot};
//!
//! let dates: Vec<DateParts> = (1..=30).map(|d| DateParts::ymd(2000, 2, d)).collect(); // 360_day
//! let x: Vec<f64> = (0..30).map(f64::from).collect();
//! let y: Vec<f64> = x.iter().map(|v| 280.0 + v.sin()).collect();
//! let plot = LinePlot::new("Daily mean", x, y)
//!     .with_time_axis(dates)
//!     .with_x_label("time (360_day)")
//!     .with_y_label("tas [K]");
//! let png = plot.to_png(800, 400)?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), gridflow_plot::Error>(())
//! ```

mod colormap;
mod date;
mod error;
mod line;
mod map;
mod scene;
mod text;
mod ticks;

use std::path::Path;

pub use colormap::{MISSING_COLOR, viridis};
pub use date::{DateParts, TickUnit, TimeTick, TimeTicks, time_ticks};
pub use error::{Error, Result};
pub use line::{LinePlot, XAxis};
pub use map::MapPlot;
pub use ticks::{format_ticks, nice_step, nice_ticks};

/// Smallest accepted image side, in pixels.
pub const MIN_SIZE: u32 = 120;
/// Largest accepted image side, in pixels.
pub const MAX_SIZE: u32 = 16384;

/// Output formats `save` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

fn format_for(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(Error::UnknownExtension {
            path: path.to_path_buf(),
        }),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Shared look: colours and sizes at the reference figure size.
mod style {
    use crate::scene::Rgb;

    pub const TEXT: Rgb = Rgb(0x1a, 0x1a, 0x1a);
    pub const MUTED: Rgb = Rgb(0x55, 0x55, 0x55);
    pub const AXIS: Rgb = Rgb(0x40, 0x40, 0x40);
    pub const GRID: Rgb = Rgb(0xe3, 0xe3, 0xe3);
    pub const LINE: Rgb = Rgb(0x1f, 0x5f, 0xa8);

    pub const TITLE_SIZE: f32 = 17.0;
    pub const LABEL_SIZE: f32 = 14.0;
    pub const TICK_SIZE: f32 = 12.5;
    pub const PAD: f32 = 12.0;
    pub const TICK_LEN: f32 = 5.0;

    /// Sizes grow with the image area relative to a reference size; below it they shrink
    /// more slowly, so text in small images stays readable.
    pub fn scale(width: u32, height: u32, ref_w: f32, ref_h: f32) -> f32 {
        let s = ((width as f32 * height as f32) / (ref_w * ref_h)).sqrt();
        let s = if s < 1.0 { s.sqrt() } else { s };
        s.clamp(0.6, 4.0)
    }
}
