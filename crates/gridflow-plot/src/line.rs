//! Line plots over a numeric or datetime x axis.

use std::path::Path;

use crate::date::{DateParts, time_ticks};
use crate::scene::{HAlign, Item, Scene, VAlign};
use crate::style::{self, AXIS, GRID, LINE, MUTED, TEXT};
use crate::ticks::{format_ticks, nice_step, ticks_at};
use crate::{Error, Format, Result, format_for, write_file};

/// What the x axis shows.
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Plain numbers with "nice" ticks.
    Numeric {
        /// Axis title, e.g. `"distance [km]"` (may be empty).
        label: String,
    },
    /// Dates: `dates[i]` names the point at `x[i]`; ticks fall on calendar boundaries.
    Time {
        /// One date per point, in the data's own calendar.
        dates: Vec<DateParts>,
        /// Axis title, e.g. `"time"` (may be empty).
        label: String,
    },
}

impl Default for XAxis {
    fn default() -> Self {
        Self::Numeric {
            label: String::new(),
        }
    }
}

impl XAxis {
    /// The axis title.
    pub fn label(&self) -> &str {
        match self {
            Self::Numeric { label } | Self::Time { label, .. } => label,
        }
    }
}

/// A single line, `y` against `x`.
///
/// `x` holds each point's position (e.g. days since an origin) and should increase; NaN
/// `y` values (or non-finite `x`) break the line. All-NaN data renders with a "no data"
/// note. The y axis is padded 5% beyond the data with ticks at nice numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinePlot {
    /// Title above the plot (may be empty).
    pub title: String,
    /// Position of each point along the x axis.
    pub x: Vec<f64>,
    /// Value of each point.
    pub y: Vec<f64>,
    /// How the x axis is labelled.
    pub x_axis: XAxis,
    /// Y axis title with units, e.g. `"tas [K]"` (may be empty).
    pub y_label: String,
}

/// A tick ready to draw: pixel position, label and optional context line.
struct AxisTick {
    px: f32,
    label: String,
    context: Option<String>,
}

impl LinePlot {
    /// Width used by [`LinePlot::save`].
    pub const DEFAULT_WIDTH: u32 = 1000;
    /// Height used by [`LinePlot::save`].
    pub const DEFAULT_HEIGHT: u32 = 500;

    /// A plot of `y` against numeric `x`, with no axis titles yet.
    pub fn new(title: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            title: title.into(),
            x,
            y,
            x_axis: XAxis::default(),
            y_label: String::new(),
        }
    }

    /// Make the x axis a time axis: `dates[i]` names the point at `x[i]`. Keeps the title.
    pub fn with_time_axis(mut self, dates: Vec<DateParts>) -> Self {
        let label = std::mem::take(match &mut self.x_axis {
            XAxis::Numeric { label } | XAxis::Time { label, .. } => label,
        });
        self.x_axis = XAxis::Time { dates, label };
        self
    }

    /// Set the x axis title.
    pub fn with_x_label(mut self, label: impl Into<String>) -> Self {
        match &mut self.x_axis {
            XAxis::Numeric { label: l } | XAxis::Time { label: l, .. } => *l = label.into(),
        }
        self
    }

    /// Set the y axis title (include units, e.g. `"tas [K]"`).
    pub fn with_y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Render as PNG bytes.
    pub fn to_png(&self, width: u32, height: u32) -> Result<Vec<u8>> {
        self.scene(width, height)?.to_png()
    }

    /// Render as an SVG document.
    pub fn to_svg(&self, width: u32, height: u32) -> Result<String> {
        self.scene(width, height)?.to_svg()
    }

    /// Write a PNG or SVG (chosen by the `.png` / `.svg` extension) at the default
    /// 1000×500 size.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_sized(path, Self::DEFAULT_WIDTH, Self::DEFAULT_HEIGHT)
    }

    /// Like [`LinePlot::save`] with an explicit size in pixels.
    pub fn save_sized(&self, path: &Path, width: u32, height: u32) -> Result<()> {
        match format_for(path)? {
            Format::Png => write_file(path, &self.to_png(width, height)?),
            Format::Svg => write_file(path, self.to_svg(width, height)?.as_bytes()),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.x.is_empty() {
            return Err(Error::Empty { what: "x" });
        }
        if self.y.len() != self.x.len() {
            return Err(Error::LengthMismatch {
                left: "x",
                left_len: self.x.len(),
                right: "y",
                right_len: self.y.len(),
            });
        }
        if let XAxis::Time { dates, .. } = &self.x_axis {
            if dates.len() != self.x.len() {
                return Err(Error::LengthMismatch {
                    left: "x",
                    left_len: self.x.len(),
                    right: "dates",
                    right_len: dates.len(),
                });
            }
            if let Some((index, date)) = dates.iter().enumerate().find(|(_, d)| !d.is_valid()) {
                return Err(Error::InvalidDate { index, date: *date });
            }
        }
        Ok(())
    }

    fn scene(&self, width: u32, height: u32) -> Result<Scene> {
        self.validate()?;
        let mut sc = Scene::new(width, height, &self.title)?;
        let s = style::scale(width, height, 1000.0, 500.0);
        let (w, h) = (width as f32, height as f32);
        let title_size = style::TITLE_SIZE * s;
        let label_size = style::LABEL_SIZE * s;
        let tick_size = style::TICK_SIZE * s;
        let pad = style::PAD * s;
        let tick_len = style::TICK_LEN * s;
        let lw = s.round().max(1.0);

        // Data ranges.
        let (x_min, x_max) = finite_range(self.x.iter().copied()).unwrap_or((0.0, 1.0));
        let (x_min, x_max) = widen(x_min, x_max);
        let y_range = finite_range(
            self.x
                .iter()
                .zip(&self.y)
                .filter(|(x, _)| x.is_finite())
                .map(|(_, y)| *y),
        );
        let no_data = y_range.is_none();
        let (y_min, y_max) = match y_range {
            Some((lo, hi)) if hi > lo => {
                let p = (hi - lo) * 0.05;
                (lo - p, hi + p)
            }
            Some((v, _)) => {
                let p = if v == 0.0 { 0.5 } else { v.abs() * 0.01 };
                (v - p, v + p)
            }
            None => (0.0, 1.0),
        };

        // Vertical layout.
        let tick_lh = sc.font.line_height(tick_size);
        let top = (pad
            + if self.title.is_empty() {
                0.0
            } else {
                sc.font.line_height(title_size) + 0.5 * pad
            })
        .round();
        let x_label = self.x_axis.label();
        // An upper bound on the plot width: the final ticks are then never finer than this
        // estimate, so if they carry a context line, room for it was kept.
        let est_plot_w = w;
        let has_context = match &self.x_axis {
            XAxis::Time { dates, .. } => {
                let max = self.max_time_ticks(&sc, est_plot_w, tick_size);
                time_ticks(&self.x, dates, max)
                    .ticks
                    .iter()
                    .any(|t| t.context.is_some())
            }
            XAxis::Numeric { .. } => false,
        };
        let bottom_margin = tick_len
            + 0.35 * pad
            + tick_lh * if has_context { 2.0 } else { 1.0 }
            + if x_label.is_empty() {
                0.0
            } else {
                0.4 * pad + sc.font.line_height(label_size)
            }
            + 0.8 * pad;
        let plot_bottom = (h - bottom_margin).round();
        let plot_h = (plot_bottom - top).max(10.0);

        // Y ticks decide the left margin.
        let max_y_ticks = ((plot_h / (3.2 * tick_size)) as usize).clamp(3, 8);
        let y_step = if no_data {
            None
        } else {
            nice_step(y_min, y_max, max_y_ticks)
        };
        let y_ticks = y_step.map_or_else(Vec::new, |st| ticks_at(y_min, y_max, st));
        let y_labels = format_ticks(&y_ticks, y_step.unwrap_or(1.0));
        let widest_y = y_labels
            .iter()
            .map(|l| sc.font.width(l, tick_size))
            .fold(0.0f32, f32::max);
        let left =
            (pad + if self.y_label.is_empty() {
                0.0
            } else {
                sc.font.line_height(label_size) + 0.5 * pad
            } + widest_y.max(2.0 * tick_size)
                + 0.4 * pad
                + tick_len)
                .round();
        let right = (2.5 * pad).round();
        let plot_w = (w - left - right).max(10.0);

        let px = |x: f64| left + ((x - x_min) / (x_max - x_min)) as f32 * plot_w;
        let py = |y: f64| plot_bottom - ((y - y_min) / (y_max - y_min)) as f32 * plot_h;

        // X ticks: fewer until no two labels touch.
        let x_ticks = self.x_ticks(&sc, plot_w, tick_size, x_min, x_max, &px);

        // Grid.
        for &v in &y_ticks {
            sc.rect(left, py(v) - 0.5, plot_w, 1.0, GRID);
        }
        for t in &x_ticks {
            sc.rect(t.px - 0.5, top, 1.0, plot_h, GRID);
        }

        // Data.
        self.push_line(&mut sc, s, plot_w, &px, &py);

        // Frame and tick marks.
        sc.rect(left - lw, top - lw, plot_w + 2.0 * lw, lw, AXIS);
        sc.rect(left - lw, plot_bottom, plot_w + 2.0 * lw, lw, AXIS);
        sc.rect(left - lw, top, lw, plot_h, AXIS);
        sc.rect(left + plot_w, top, lw, plot_h, AXIS);
        for (v, label) in y_ticks.iter().zip(&y_labels) {
            let y = py(*v);
            sc.rect(left - lw - tick_len, y - lw / 2.0, tick_len, lw, AXIS);
            sc.text(
                left - lw - tick_len - 0.35 * pad,
                y,
                label.clone(),
                tick_size,
                TEXT,
                HAlign::Right,
                VAlign::Middle,
            );
        }
        let label_top = plot_bottom + lw + tick_len + 0.35 * pad;
        for t in &x_ticks {
            sc.rect(t.px - lw / 2.0, plot_bottom + lw, lw, tick_len, AXIS);
            let half = sc.font.width(&t.label, tick_size) / 2.0;
            let cx = t.px.clamp(half + 2.0, w - half - 2.0);
            sc.text(
                cx,
                label_top,
                t.label.clone(),
                tick_size,
                TEXT,
                HAlign::Center,
                VAlign::Top,
            );
            if let Some(c) = &t.context {
                let half = sc.font.width(c, tick_size) / 2.0;
                let cx = t.px.clamp(half + 2.0, w - half - 2.0);
                sc.text(
                    cx,
                    label_top + tick_lh,
                    c.clone(),
                    tick_size,
                    MUTED,
                    HAlign::Center,
                    VAlign::Top,
                );
            }
        }

        // Titles.
        if !x_label.is_empty() {
            sc.text(
                left + plot_w / 2.0,
                h - 0.8 * pad - sc.font.descent(label_size),
                x_label,
                label_size,
                TEXT,
                HAlign::Center,
                VAlign::Baseline,
            );
        }
        if !self.y_label.is_empty() {
            sc.vertical_text(
                pad,
                top + plot_h / 2.0,
                self.y_label.clone(),
                label_size,
                TEXT,
            );
        }
        if !self.title.is_empty() {
            sc.text(
                left + plot_w / 2.0,
                pad,
                self.title.clone(),
                title_size,
                TEXT,
                HAlign::Center,
                VAlign::Top,
            );
        }
        if no_data {
            sc.text(
                left + plot_w / 2.0,
                top + plot_h / 2.0,
                "no data",
                label_size,
                MUTED,
                HAlign::Center,
                VAlign::Middle,
            );
        }
        Ok(sc)
    }

    /// Room for time labels like "1850-03" with a gap of about one em between them.
    fn max_time_ticks(&self, sc: &Scene, plot_w: f32, tick_size: f32) -> usize {
        let label_w = sc.font.width("0000-00", tick_size) + 1.5 * tick_size;
        ((plot_w / label_w) as usize).clamp(2, 10)
    }

    fn x_ticks(
        &self,
        sc: &Scene,
        plot_w: f32,
        tick_size: f32,
        x_min: f64,
        x_max: f64,
        px: &dyn Fn(f64) -> f32,
    ) -> Vec<AxisTick> {
        let gap = 0.8 * tick_size;
        let mut max = match &self.x_axis {
            XAxis::Time { .. } => self.max_time_ticks(sc, plot_w, tick_size),
            XAxis::Numeric { .. } => 10,
        };
        loop {
            let ticks: Vec<AxisTick> = match &self.x_axis {
                XAxis::Time { dates, .. } => time_ticks(&self.x, dates, max)
                    .ticks
                    .into_iter()
                    .filter(|t| t.x >= x_min && t.x <= x_max)
                    .map(|t| AxisTick {
                        px: px(t.x),
                        label: t.label,
                        context: t.context,
                    })
                    .collect(),
                XAxis::Numeric { .. } => {
                    let step = nice_step(x_min, x_max, max).unwrap_or(1.0);
                    let values = ticks_at(x_min, x_max, step);
                    let labels = format_ticks(&values, step);
                    values
                        .into_iter()
                        .zip(labels)
                        .map(|(v, label)| AxisTick {
                            px: px(v),
                            label,
                            context: None,
                        })
                        .collect()
                }
            };
            let width = |t: &AxisTick| {
                let ctx = t
                    .context
                    .as_ref()
                    .map_or(0.0, |c| sc.font.width(c, tick_size));
                sc.font.width(&t.label, tick_size).max(ctx)
            };
            let crowded = ticks.windows(2).any(|p| {
                let need = (width(&p[0]) + width(&p[1])) / 2.0 + gap;
                p[1].px - p[0].px < need
            });
            if !crowded || max <= 2 {
                return ticks;
            }
            max -= 1;
        }
    }

    fn push_line(
        &self,
        sc: &mut Scene,
        s: f32,
        plot_w: f32,
        px: &dyn Fn(f64) -> f32,
        py: &dyn Fn(f64) -> f32,
    ) {
        let n_finite = self
            .x
            .iter()
            .zip(&self.y)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .count();
        // Dense series read better with a thinner line: 1.6 px up to 1.5 points per pixel
        // column, easing to 1 px at 4.
        let density = n_finite as f32 / plot_w.max(1.0);
        let width = (1.6 - 0.6 * ((density - 1.5) / 2.5).clamp(0.0, 1.0)) * s;
        let mut run: Vec<(f32, f32)> = Vec::new();
        let flush = |run: &mut Vec<(f32, f32)>, sc: &mut Scene| {
            match run.len() {
                0 => {}
                1 => sc.push(Item::Dot {
                    x: run[0].0,
                    y: run[0].1,
                    r: width.max(1.5 * s),
                    color: LINE,
                }),
                _ => sc.push(Item::Line {
                    points: decimate(run),
                    width,
                    color: LINE,
                }),
            }
            run.clear();
        };
        for (&x, &y) in self.x.iter().zip(&self.y) {
            if x.is_finite() && y.is_finite() {
                run.push((px(x), py(y)));
            } else {
                flush(&mut run, sc);
            }
        }
        flush(&mut run, sc);
    }
}

/// Min and max of the finite values, if any.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A non-empty range around a single value.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let p = if lo == 0.0 { 0.5 } else { lo.abs() * 0.01 };
        (lo - p, hi + p)
    }
}

/// Keep, per pixel column, the first, lowest, highest and last point in their original
/// order: the stroke looks the same but has at most four points per column.
fn decimate(points: &[(f32, f32)]) -> Vec<(f32, f32)> {
    if points.len() < 64 || points.windows(2).any(|w| w[1].0 < w[0].0) {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(points.len().min(4096));
    let mut i = 0;
    while i < points.len() {
        let col = points[i].0.floor();
        let (mut lo, mut hi, mut j) = (i, i, i);
        while j < points.len() && points[j].0.floor() == col {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let mut keep = [i, lo, hi, j - 1];
        keep.sort_unstable();
        let mut last = usize::MAX;
        for k in keep {
            if k != last {
                out.push(points[k]);
                last = k;
            }
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_order() {
        let pts: Vec<(f32, f32)> = (0..1000)
            .map(|i| (i as f32 / 100.0, ((i * 37) % 101) as f32))
            .collect();
        let d = decimate(&pts);
        assert!(d.len() <= 40, "{}", d.len());
        assert!(d.windows(2).all(|w| w[1].0 >= w[0].0));
        let max_in = pts.iter().map(|p| p.1).fold(f32::MIN, f32::max);
        let max_out = d.iter().map(|p| p.1).fold(f32::MIN, f32::max);
        assert_eq!(max_in, max_out);
        assert_eq!(d.first(), pts.first());
        assert_eq!(d.last(), pts.last());
    }
}
