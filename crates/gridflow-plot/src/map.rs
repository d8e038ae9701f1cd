//! Lat/lon maps with a colorbar.

use std::path::Path;

use crate::colormap::{MISSING_COLOR, viridis_lut};
use crate::scene::{HAlign, Item, Rgb, Scene, VAlign};
use crate::style::{self, AXIS, MUTED, TEXT};
use crate::ticks::{decimals_for, format_ticks, nice_step, step_from, ticks_at};
use crate::{Error, Format, Result, format_for, write_file};

/// A gridded field on a regular or irregular lat/lon grid, drawn in an equirectangular
/// projection (equal degrees per pixel on both axes), north up and east right.
///
/// Latitudes may run either way; longitudes may be in 0..360 or −180..180 (others are
/// wrapped to −180..180) and are sorted for drawing. Each cell spans halfway to its
/// neighbours. NaN cells are light grey ([`crate::MISSING_COLOR`]) with a "missing" swatch
/// under the colorbar; all-NaN data shows "no data". Colours are viridis over the finite
/// data range, or over [`MapPlot::color_range`] when set (values outside are clamped).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MapPlot {
    /// Title above the map (may be empty).
    pub title: String,
    /// Cell-centre latitudes in degrees north, ascending or descending.
    pub lat: Vec<f64>,
    /// Cell-centre longitudes in degrees east.
    pub lon: Vec<f64>,
    /// Row-major `[lat][lon]` values: `values[i * lon.len() + j]` is at `(lat[i], lon[j])`.
    pub values: Vec<f64>,
    /// Colorbar title with units, e.g. `"tas [K]"` (may be empty).
    pub colorbar_label: String,
    /// Fixed `(min, max)` for the colours instead of the data range.
    pub color_range: Option<(f64, f64)>,
}

/// Cells of one axis in drawing order.
struct CellAxis {
    /// Original index of each cell, by increasing coordinate.
    order: Vec<usize>,
    /// `order.len() + 1` increasing cell edges.
    edges: Vec<f64>,
}

impl CellAxis {
    fn new(coords: &[f64], default_half: f64, clamp: Option<(f64, f64)>) -> Self {
        let mut order: Vec<usize> = (0..coords.len()).collect();
        order.sort_by(|&a, &b| coords[a].total_cmp(&coords[b]));
        let c: Vec<f64> = order.iter().map(|&i| coords[i]).collect();
        let n = c.len();
        let mut edges = Vec::with_capacity(n + 1);
        if n == 1 {
            edges.push(c[0] - default_half);
            edges.push(c[0] + default_half);
        } else {
            edges.push(c[0] - (c[1] - c[0]) / 2.0);
            for k in 1..n {
                edges.push((c[k - 1] + c[k]) / 2.0);
            }
            edges.push(c[n - 1] + (c[n - 1] - c[n - 2]) / 2.0);
        }
        if let Some((lo, hi)) = clamp {
            for e in &mut edges {
                *e = e.clamp(lo, hi);
            }
        }
        Self { order, edges }
    }

    fn spacing(coords: &[f64]) -> Option<f64> {
        if coords.len() < 2 {
            return None;
        }
        let (lo, hi) = coords
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        Some((hi - lo) / (coords.len() - 1) as f64)
    }

    fn lo(&self) -> f64 {
        self.edges[0]
    }

    fn hi(&self) -> f64 {
        self.edges[self.edges.len() - 1]
    }

    /// Original index of the cell containing `v`.
    fn cell_of(&self, v: f64) -> Option<usize> {
        let k = self.edges.partition_point(|&e| e <= v);
        if k == 0 || k > self.order.len() {
            return None;
        }
        Some(self.order[k - 1])
    }
}

/// Degree steps tried for map axis ticks, ascending.
const DEGREE_STEPS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    90.0, 120.0, 180.0,
];

fn degrees(v: f64, decimals: usize) -> String {
    format!("{:.*}°", decimals, v.abs())
}

/// `"60°N"`, `"0°"`, `"30°S"`.
fn lat_label(v: f64, decimals: usize) -> String {
    let eps = 1e-9;
    if v.abs() < eps {
        "0°".to_string()
    } else if v > 0.0 {
        format!("{}N", degrees(v, decimals))
    } else {
        format!("{}S", degrees(v, decimals))
    }
}

/// `"90°E"`, `"0°"`, `"180°"`, `"60°W"` (any longitude, wrapped to −180..180).
fn lon_label(v: f64, decimals: usize) -> String {
    let eps = 1e-9;
    let w = (v + 180.0).rem_euclid(360.0) - 180.0;
    if w.abs() < eps {
        "0°".to_string()
    } else if (w.abs() - 180.0).abs() < eps {
        "180°".to_string()
    } else if w > 0.0 {
        format!("{}E", degrees(w, decimals))
    } else {
        format!("{}W", degrees(w, decimals))
    }
}

impl MapPlot {
    /// Width used by [`MapPlot::save`].
    pub const DEFAULT_WIDTH: u32 = 1000;
    /// Height used by [`MapPlot::save`].
    pub const DEFAULT_HEIGHT: u32 = 560;

    /// A map of row-major `[lat][lon]` `values`, with no colorbar title yet.
    pub fn new(title: impl Into<String>, lat: Vec<f64>, lon: Vec<f64>, values: Vec<f64>) -> Self {
        Self {
            title: title.into(),
            lat,
            lon,
            values,
            colorbar_label: String::new(),
            color_range: None,
        }
    }

    /// Set the colorbar title (include units, e.g. `"tas [K]"`).
    pub fn with_colorbar_label(mut self, label: impl Into<String>) -> Self {
        self.colorbar_label = label.into();
        self
    }

    /// Fix the colour scale to `min..max` instead of the data range.
    pub fn with_color_range(mut self, min: f64, max: f64) -> Self {
        self.color_range = Some((min, max));
        self
    }

    /// Render as PNG bytes.
    pub fn to_png(&self, width: u32, height: u32) -> Result<Vec<u8>> {
        self.scene(width, height)?.to_png()
    }

    /// Render as an SVG document (the map cells are an embedded PNG image).
    pub fn to_svg(&self, width: u32, height: u32) -> Result<String> {
        self.scene(width, height)?.to_svg()
    }

    /// Write a PNG or SVG (chosen by the `.png` / `.svg` extension) at the default
    /// 1000×560 size.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_sized(path, Self::DEFAULT_WIDTH, Self::DEFAULT_HEIGHT)
    }

    /// Like [`MapPlot::save`] with an explicit size in pixels.
    pub fn save_sized(&self, path: &Path, width: u32, height: u32) -> Result<()> {
        match format_for(path)? {
            Format::Png => write_file(path, &self.to_png(width, height)?),
            Format::Svg => write_file(path, self.to_svg(width, height)?.as_bytes()),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.lat.is_empty() {
            return Err(Error::Empty { what: "lat" });
        }
        if self.lon.is_empty() {
            return Err(Error::Empty { what: "lon" });
        }
        if self.lat.len().checked_mul(self.lon.len()) != Some(self.values.len()) {
            return Err(Error::GridMismatch {
                lat_len: self.lat.len(),
                lon_len: self.lon.len(),
                values_len: self.values.len(),
            });
        }
        if let Some((index, &value)) = self
            .lat
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && v.abs() <= 90.0))
        {
            return Err(Error::InvalidCoordinate {
                what: "lat",
                index,
                value,
            });
        }
        if let Some((index, &value)) = self.lon.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::InvalidCoordinate {
                what: "lon",
                index,
                value,
            });
        }
        if let Some((min, max)) = self.color_range
            && !(min.is_finite() && max.is_finite() && min < max)
        {
            return Err(Error::InvalidColorRange { min, max });
        }
        Ok(())
    }

    /// Longitudes as drawn: kept in 0..360 or −180..180 when already there, else wrapped.
    fn display_lon(&self) -> Vec<f64> {
        let (lo, hi) = self
            .lon
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let keep = (lo >= -180.0 && hi <= 180.0) || (lo >= 0.0 && hi <= 360.0);
        self.lon
            .iter()
            .map(|&v| {
                if keep {
                    v
                } else {
                    (v + 180.0).rem_euclid(360.0) - 180.0
                }
            })
            .collect()
    }

    fn scene(&self, width: u32, height: u32) -> Result<Scene> {
        self.validate()?;
        let mut sc = Scene::new(width, height, &self.title)?;
        let s = style::scale(width, height, 1000.0, 560.0);
        let (w, h) = (width as f32, height as f32);
        let title_size = style::TITLE_SIZE * s;
        let label_size = style::LABEL_SIZE * s;
        let tick_size = style::TICK_SIZE * s;
        let pad = style::PAD * s;
        let tick_len = style::TICK_LEN * s;
        let lw = s.round().max(1.0);

        // Geometry in degrees.
        let lon = self.display_lon();
        let lat_half = CellAxis::spacing(&lon).unwrap_or(1.0) / 2.0;
        let lon_half = CellAxis::spacing(&self.lat).unwrap_or(1.0) / 2.0;
        let lat_axis = CellAxis::new(&self.lat, lat_half, Some((-90.0, 90.0)));
        let lon_axis = CellAxis::new(&lon, lon_half, None);
        let (lon0, lon1) = (lon_axis.lo(), lon_axis.hi());
        let (lat0, lat1) = (lat_axis.lo(), lat_axis.hi());
        let (lon_span, lat_span) = ((lon1 - lon0).max(1e-9), (lat1 - lat0).max(1e-9));

        // Colour range.
        let data_range = self.values.iter().filter(|v| v.is_finite()).fold(
            None,
            |acc: Option<(f64, f64)>, &v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            },
        );
        let has_missing = self.values.iter().any(|v| !v.is_finite());
        let range = self.color_range.or(data_range).map(|(lo, hi)| {
            if hi > lo {
                (lo, hi)
            } else {
                let p = if lo == 0.0 { 0.5 } else { lo.abs() * 0.01 };
                (lo - p, hi + p)
            }
        });
        let no_data = data_range.is_none();

        // Colorbar ticks from an estimate of the bar height, for the right margin.
        let cb_ticks = |bar_h: f32| -> (Vec<f64>, Vec<String>) {
            let Some((lo, hi)) = range else {
                return (Vec::new(), Vec::new());
            };
            let max = ((bar_h / (2.6 * tick_size)) as usize).clamp(3, 10);
            let step = nice_step(lo, hi, max).unwrap_or(hi - lo);
            let values = ticks_at(lo, hi, step);
            let labels = format_ticks(&values, step);
            (values, labels)
        };
        let top = (pad
            + if self.title.is_empty() {
                0.0
            } else {
                sc.font.line_height(title_size) + 0.5 * pad
            })
        .round();
        let bottom_margin = lw + tick_len + 0.35 * pad + sc.font.line_height(tick_size) + pad;
        let avail_h = (h - top - bottom_margin).max(10.0);
        let (_, est_labels) = cb_ticks(avail_h * 0.8);
        let tick_label_w = est_labels
            .iter()
            .map(|l| sc.font.width(l, tick_size))
            .fold(0.0f32, f32::max);
        let missing_w = if has_missing {
            sc.font.width("missing", tick_size)
        } else {
            0.0
        };
        let cb_label_w = tick_label_w.max(missing_w);
        let cb_w = (18.0 * s).round();
        let cb_gap = (20.0 * s).round();
        let right_block = cb_gap
            + cb_w
            + lw
            + tick_len
            + 0.35 * pad
            + cb_label_w
            + if self.colorbar_label.is_empty() {
                0.0
            } else {
                0.7 * pad + sc.font.line_height(label_size)
            }
            + pad;
        let left_block = pad + sc.font.width("00°N", tick_size) + 0.35 * pad + tick_len + lw;
        let avail_w = (w - left_block - right_block).max(10.0);

        // Equal degrees per pixel, fitted into the free box and centred.
        let ratio = (lon_span / lat_span).clamp(0.2, 8.0) as f32;
        let (pw, ph) = if avail_w / avail_h > ratio {
            (avail_h * ratio, avail_h)
        } else {
            (avail_w, avail_w / ratio)
        };
        let (pw, ph) = (pw.round().max(1.0), ph.round().max(1.0));
        let left = (left_block + (avail_w - pw) / 2.0).round();
        // Spare height goes above and below the whole figure, keeping the title close.
        let shift = ((avail_h - ph) / 2.0).round();
        let ptop = top + shift;
        let pbottom = ptop + ph;
        let px = |lon: f64| left + ((lon - lon0) / lon_span) as f32 * pw;
        let py = |lat: f64| ptop + ((lat1 - lat) / lat_span) as f32 * ph;

        // Map cells at screen resolution: each pixel takes the cell under its centre.
        let lut = viridis_lut();
        let colour = |v: f64| -> [u8; 3] {
            match range {
                Some((lo, hi)) if v.is_finite() => {
                    let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
                    lut[(t * 255.0).round() as usize]
                }
                _ => MISSING_COLOR,
            }
        };
        let nlon = self.lon.len();
        let cell_rgb: Vec<[u8; 3]> = self.values.iter().map(|&v| colour(v)).collect();
        let (pwu, phu) = (pw as u32, ph as u32);
        let cols: Vec<Option<usize>> = (0..pwu)
            .map(|i| lon_axis.cell_of(lon0 + (f64::from(i) + 0.5) / f64::from(pwu) * lon_span))
            .collect();
        let rows: Vec<Option<usize>> = (0..phu)
            .map(|j| lat_axis.cell_of(lat1 - (f64::from(j) + 0.5) / f64::from(phu) * lat_span))
            .collect();
        let mut rgb = Vec::with_capacity((pwu * phu * 3) as usize);
        for row in &rows {
            for col in &cols {
                let c = match (row, col) {
                    (Some(r), Some(c)) => cell_rgb[r * nlon + c],
                    _ => [255, 255, 255],
                };
                rgb.extend_from_slice(&c);
            }
        }
        sc.push(Item::Raster {
            x: left as u32,
            y: ptop as u32,
            w: pwu,
            h: phu,
            rgb,
        });

        // Frame and axis ticks.
        sc.rect(left - lw, ptop - lw, pw + 2.0 * lw, lw, AXIS);
        sc.rect(left - lw, pbottom, pw + 2.0 * lw, lw, AXIS);
        sc.rect(left - lw, ptop, lw, ph, AXIS);
        sc.rect(left + pw, ptop, lw, ph, AXIS);
        let lon_label_w = sc.font.width("000°W", tick_size) + 1.2 * tick_size;
        // At most 7 ticks: a global map gets the familiar 60° / 30° spacing.
        let max_lon = ((pw / lon_label_w) as usize).clamp(2, 7);
        if let Some(step) = step_from(lon0, lon1, max_lon, DEGREE_STEPS) {
            let d = decimals_for(step);
            for v in ticks_at(lon0, lon1, step) {
                let x = px(v);
                sc.rect(x - lw / 2.0, pbottom + lw, lw, tick_len, AXIS);
                sc.text(
                    x,
                    pbottom + lw + tick_len + 0.35 * pad,
                    lon_label(v, d),
                    tick_size,
                    TEXT,
                    HAlign::Center,
                    VAlign::Top,
                );
            }
        }
        let max_lat = ((ph / (2.4 * tick_size)) as usize).clamp(2, 7);
        if let Some(step) = step_from(lat0, lat1, max_lat, DEGREE_STEPS) {
            let d = decimals_for(step);
            for v in ticks_at(lat0, lat1, step) {
                let y = py(v);
                sc.rect(left - lw - tick_len, y - lw / 2.0, tick_len, lw, AXIS);
                sc.text(
                    left - lw - tick_len - 0.35 * pad,
                    y,
                    lat_label(v, d),
                    tick_size,
                    TEXT,
                    HAlign::Right,
                    VAlign::Middle,
                );
            }
        }

        // Colorbar, with a missing-value swatch below it when any cell is NaN.
        let cb_x = left + pw + cb_gap;
        let swatch_h = (14.0 * s).round();
        let cb_h = if has_missing {
            (ph - swatch_h - pad).max(10.0)
        } else {
            ph
        };
        let label_x = cb_x + cb_w + lw + tick_len + 0.35 * pad;
        if let Some((lo, hi)) = range {
            let bar_h = cb_h.round() as u32;
            let bar_w = cb_w as u32;
            let mut bar = Vec::with_capacity((bar_w * bar_h * 3) as usize);
            for j in 0..bar_h {
                let t = 1.0 - (f64::from(j) + 0.5) / f64::from(bar_h);
                let c = lut[(t * 255.0).round() as usize];
                for _ in 0..bar_w {
                    bar.extend_from_slice(&c);
                }
            }
            sc.push(Item::Raster {
                x: cb_x as u32,
                y: ptop as u32,
                w: bar_w,
                h: bar_h,
                rgb: bar,
            });
            frame(&mut sc, cb_x, ptop, cb_w, bar_h as f32, lw);
            let (values, labels) = cb_ticks(cb_h);
            for (v, label) in values.iter().zip(labels) {
                let y = ptop + ((hi - v) / (hi - lo)) as f32 * bar_h as f32;
                sc.rect(cb_x + cb_w + lw, y - lw / 2.0, tick_len, lw, AXIS);
                sc.text(
                    label_x,
                    y,
                    label,
                    tick_size,
                    TEXT,
                    HAlign::Left,
                    VAlign::Middle,
                );
            }
            if !self.colorbar_label.is_empty() {
                // Clear of the tick labels, and of "missing" if the title reaches that low.
                let half = sc.font.width(&self.colorbar_label, label_size) / 2.0;
                let reaches_swatch = ptop + cb_h / 2.0 + half > pbottom - swatch_h - 0.5 * pad;
                let clear = if has_missing && reaches_swatch {
                    cb_label_w
                } else {
                    tick_label_w
                };
                sc.vertical_text(
                    label_x + clear + 0.7 * pad,
                    ptop + cb_h / 2.0,
                    self.colorbar_label.clone(),
                    label_size,
                    TEXT,
                );
            }
        }
        if has_missing {
            let sy = pbottom - swatch_h;
            sc.rect(cb_x, sy, cb_w, swatch_h, Rgb::from_array(MISSING_COLOR));
            frame(&mut sc, cb_x, sy, cb_w, swatch_h, lw);
            sc.text(
                label_x,
                sy + swatch_h / 2.0,
                "missing",
                tick_size,
                TEXT,
                HAlign::Left,
                VAlign::Middle,
            );
        }

        if !self.title.is_empty() {
            sc.text(
                left + pw / 2.0,
                pad + shift,
                self.title.clone(),
                title_size,
                TEXT,
                HAlign::Center,
                VAlign::Top,
            );
        }
        if no_data {
            sc.text(
                left + pw / 2.0,
                ptop + ph / 2.0,
                "no data",
                label_size,
                MUTED,
                HAlign::Center,
                VAlign::Middle,
            );
        }
        Ok(sc)
    }
}

/// A 1-pixel-line box drawn just outside `(x, y, w, h)`.
fn frame(sc: &mut Scene, x: f32, y: f32, w: f32, h: f32, lw: f32) {
    sc.rect(x - lw, y - lw, w + 2.0 * lw, lw, AXIS);
    sc.rect(x - lw, y + h, w + 2.0 * lw, lw, AXIS);
    sc.rect(x - lw, y, lw, h, AXIS);
    sc.rect(x + w, y, lw, h, AXIS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degree_labels() {
        assert_eq!(lat_label(60.0, 0), "60°N");
        assert_eq!(lat_label(-30.0, 0), "30°S");
        assert_eq!(lat_label(0.0, 0), "0°");
        assert_eq!(lon_label(90.0, 0), "90°E");
        assert_eq!(lon_label(270.0, 0), "90°W");
        assert_eq!(lon_label(-180.0, 0), "180°");
        assert_eq!(lon_label(360.0, 0), "0°");
        assert_eq!(lon_label(2.5, 1), "2.5°E");
    }

    #[test]
    fn cells_span_halfway_to_neighbours() {
        let a = CellAxis::new(&[30.0, 10.0, 20.0], 5.0, Some((-90.0, 90.0)));
        assert_eq!(a.edges, vec![5.0, 15.0, 25.0, 35.0]);
        assert_eq!(a.cell_of(12.0), Some(1));
        assert_eq!(a.cell_of(33.0), Some(0));
        assert_eq!(a.cell_of(40.0), None);
        let polar = CellAxis::new(&[-89.0, 89.0], 1.0, Some((-90.0, 90.0)));
        assert_eq!(polar.lo(), -90.0);
    }

    #[test]
    fn longitudes_wrap_only_when_outside_standard_ranges() {
        let m = MapPlot::new("", vec![0.0], vec![0.0, 90.0, 270.0], vec![0.0; 3]);
        assert_eq!(m.display_lon(), vec![0.0, 90.0, 270.0]);
        let m = MapPlot::new("", vec![0.0], vec![-90.0, 0.0, 90.0], vec![0.0; 3]);
        assert_eq!(m.display_lon(), vec![-90.0, 0.0, 90.0]);
        let m = MapPlot::new("", vec![0.0], vec![-90.0, 300.0], vec![0.0; 2]);
        assert_eq!(m.display_lon(), vec![-90.0, -60.0]);
    }
}
