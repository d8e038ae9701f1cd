//! A small display list that both the PNG and the SVG back ends draw, so the two formats
//! share one layout.

use std::fmt::Write as _;

use tiny_skia::{FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

use crate::text::{Font, SVG_FONT_FAMILY};
use crate::{Error, Result};

/// An opaque sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub fn from_array(c: [u8; 3]) -> Self {
        Rgb(c[0], c[1], c[2])
    }

    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    fn paint(self) -> Paint<'static> {
        let mut p = Paint::default();
        p.set_color_rgba8(self.0, self.1, self.2, 255);
        p.anti_alias = true;
        p
    }
}

/// Horizontal anchor of a text item (along the text direction for vertical text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// Vertical anchor of a text item (across the text direction for vertical text, where
/// `Top` is the side the glyph tops face: the left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VAlign {
    /// Anchor at the ascender line.
    Top,
    /// Anchor at half the cap height: digits and capitals look centred.
    Middle,
    /// Anchor at the baseline.
    Baseline,
}

#[derive(Debug, Clone)]
pub(crate) struct Text {
    pub x: f32,
    pub y: f32,
    pub text: String,
    pub size: f32,
    pub color: Rgb,
    pub h: HAlign,
    pub v: VAlign,
    /// Rotated 90° counter-clockwise, reading upwards.
    pub vertical: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A pixel-aligned filled rectangle (edges are rounded to whole pixels).
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Rgb,
    },
    /// An anti-aliased open polyline.
    Line {
        points: Vec<(f32, f32)>,
        width: f32,
        color: Rgb,
    },
    /// A filled circle (isolated data points).
    Dot {
        x: f32,
        y: f32,
        r: f32,
        color: Rgb,
    },
    Text(Text),
    /// RGB pixels drawn 1:1 with the top-left corner at whole pixel `(x, y)`.
    Raster {
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        rgb: Vec<u8>,
    },
}

/// A figure ready to be drawn to either format.
pub(crate) struct Scene {
    pub width: u32,
    pub height: u32,
    pub title: String,
    pub items: Vec<Item>,
    pub font: Font,
}

impl Scene {
    pub fn new(width: u32, height: u32, title: &str) -> Result<Self> {
        if !(crate::MIN_SIZE..=crate::MAX_SIZE).contains(&width)
            || !(crate::MIN_SIZE..=crate::MAX_SIZE).contains(&height)
        {
            return Err(Error::InvalidSize { width, height });
        }
        Ok(Self {
            width,
            height,
            title: title.to_string(),
            items: Vec::new(),
            font: Font::load()?,
        })
    }

    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        self.push(Item::Rect { x, y, w, h, color });
    }

    #[allow(clippy::too_many_arguments)]
    pub fn text(
        &mut self,
        x: f32,
        y: f32,
        text: impl Into<String>,
        size: f32,
        color: Rgb,
        h: HAlign,
        v: VAlign,
    ) {
        self.push(Item::Text(Text {
            x,
            y,
            text: text.into(),
            size,
            color,
            h,
            v,
            vertical: false,
        }));
    }

    /// Text rotated to read upwards, centred on `y`, its top (left side) at `x`.
    pub fn vertical_text(
        &mut self,
        x: f32,
        y: f32,
        text: impl Into<String>,
        size: f32,
        color: Rgb,
    ) {
        self.push(Item::Text(Text {
            x,
            y,
            text: text.into(),
            size,
            color,
            h: HAlign::Center,
            v: VAlign::Top,
            vertical: true,
        }));
    }

    /// Where the text's baseline starts: `(pen start along the text, baseline across it)`.
    fn text_origin(&self, t: &Text) -> (f32, f32) {
        let w = self.font.width(&t.text, t.size);
        let along = if t.vertical { t.y } else { t.x };
        let start = match (t.h, t.vertical) {
            (HAlign::Left, false) => along,
            (HAlign::Center, false) => along - w / 2.0,
            (HAlign::Right, false) => along - w,
            // Reading upwards, the text starts at the bottom.
            (HAlign::Left, true) => along,
            (HAlign::Center, true) => along + w / 2.0,
            (HAlign::Right, true) => along + w,
        };
        let across = if t.vertical { t.x } else { t.y };
        let shift = match t.v {
            VAlign::Top => self.font.ascent(t.size),
            VAlign::Middle => self.font.cap_height(t.size) / 2.0,
            VAlign::Baseline => 0.0,
        };
        // Vertical text's glyph tops face left, so its baseline lies right of the anchor.
        (start, across + shift)
    }

    /// Render to PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let pixmap = self.rasterize()?;
        let rgb: Vec<u8> = pixmap
            .data()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        encode_png(self.width, self.height, &rgb)
    }

    pub(crate) fn rasterize(&self) -> Result<Pixmap> {
        let mut pm = Pixmap::new(self.width, self.height).ok_or(Error::InvalidSize {
            width: self.width,
            height: self.height,
        })?;
        pm.fill(tiny_skia::Color::WHITE);
        for item in &self.items {
            match item {
                Item::Rect { x, y, w, h, color } => {
                    let (x0, y0) = (x.round(), y.round());
                    let (x1, y1) = ((x + w).round(), (y + h).round());
                    if let Some(r) = Rect::from_ltrb(x0, y0, x1.max(x0 + 1.0), y1.max(y0 + 1.0)) {
                        let mut paint = color.paint();
                        paint.anti_alias = false;
                        pm.fill_rect(r, &paint, Transform::identity(), None);
                    }
                }
                Item::Line {
                    points,
                    width,
                    color,
                } => {
                    let mut pb = PathBuilder::new();
                    let mut it = points.iter();
                    if let Some(&(x, y)) = it.next() {
                        pb.move_to(x, y);
                        for &(x, y) in it {
                            pb.line_to(x, y);
                        }
                    }
                    if let Some(path) = pb.finish() {
                        let stroke = Stroke {
                            width: *width,
                            line_cap: LineCap::Round,
                            line_join: LineJoin::Round,
                            ..Stroke::default()
                        };
                        pm.stroke_path(&path, &color.paint(), &stroke, Transform::identity(), None);
                    }
                }
                Item::Dot { x, y, r, color } => {
                    if let Some(path) = PathBuilder::from_circle(*x, *y, *r) {
                        pm.fill_path(
                            &path,
                            &color.paint(),
                            FillRule::Winding,
                            Transform::identity(),
                            None,
                        );
                    }
                }
                Item::Text(t) => self.draw_text(&mut pm, t),
                Item::Raster { x, y, w, h, rgb } => blit_rgb(&mut pm, *x, *y, *w, *h, rgb),
            }
        }
        Ok(pm)
    }

    fn draw_text(&self, pm: &mut Pixmap, t: &Text) {
        let (start, baseline) = self.text_origin(t);
        // Whole-pixel baselines keep horizontal stems sharp; the pen start keeps its
        // fraction so spacing stays even.
        let baseline = baseline.round();
        let start_px = start.floor();
        let frac = if t.vertical { 0.0 } else { start - start_px };
        let mask = self.font.rasterize(&t.text, t.size, frac);
        let (pw, ph) = (self.width as i64, self.height as i64);
        let data = pm.data_mut();
        let Rgb(r, g, b) = t.color;
        let mut blend = |x: i64, y: i64, a: f32| {
            if a <= 0.0 || x < 0 || y < 0 || x >= pw || y >= ph {
                return;
            }
            // Slightly heavier than linear coverage: thin stems read better on screen.
            let a = a.powf(0.85);
            let i = ((y * pw + x) * 4) as usize;
            for (k, c) in [r, g, b].into_iter().enumerate() {
                let d = f32::from(data[i + k]);
                data[i + k] = (d + (f32::from(c) - d) * a).round() as u8;
            }
        };
        let (mw, mh) = (mask.width as i64, mask.height as i64);
        for my in 0..mh {
            for mx in 0..mw {
                let a = mask.coverage[(my * mw + mx) as usize];
                if a <= 0.0 {
                    continue;
                }
                let along = mx - mask.origin as i64;
                let across = my - mask.baseline as i64;
                if t.vertical {
                    // Rotate 90° counter-clockwise: along the text goes up the image.
                    let start_px = start.round() as i64;
                    blend(baseline as i64 + across, start_px - along, a);
                } else {
                    blend(start_px as i64 + along, baseline as i64 + across, a);
                }
            }
        }
    }

    /// Render to an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let (w, h) = (self.width, self.height);
        let mut s = String::with_capacity(64 * 1024);
        // Writing to a String cannot fail, so the fmt results are ignored.
        let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{SVG_FONT_FAMILY}">"#
        );
        if !self.title.is_empty() {
            let _ = writeln!(s, "<title>{}</title>", escape(&self.title));
        }
        let _ = writeln!(s, r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##);
        for item in &self.items {
            match item {
                Item::Rect { x, y, w, h, color } => {
                    let (x0, y0) = (x.round(), y.round());
                    let (x1, y1) = ((x + w).round().max(x0 + 1.0), (y + h).round().max(y0 + 1.0));
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="{}" shape-rendering="crispEdges"/>"#,
                        x1 - x0,
                        y1 - y0,
                        color.hex()
                    );
                }
                Item::Line {
                    points,
                    width,
                    color,
                } => {
                    if points.len() < 2 {
                        continue;
                    }
                    s.push_str("<path d=\"");
                    for (i, (x, y)) in points.iter().enumerate() {
                        let _ = write!(s, "{}{:.2} {:.2}", if i == 0 { "M" } else { " L" }, x, y);
                    }
                    let _ = writeln!(
                        s,
                        r#"" fill="none" stroke="{}" stroke-width="{width:.2}" stroke-linejoin="round" stroke-linecap="round"/>"#,
                        color.hex()
                    );
                }
                Item::Dot { x, y, r, color } => {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{x:.2}" cy="{y:.2}" r="{r:.2}" fill="{}"/>"#,
                        color.hex()
                    );
                }
                Item::Text(t) => {
                    let (start, baseline) = self.text_origin(t);
                    let anchor = "start";
                    if t.vertical {
                        let _ = writeln!(
                            s,
                            r#"<text x="{baseline:.2}" y="{start:.2}" font-size="{:.2}" fill="{}" text-anchor="{anchor}" transform="rotate(-90 {baseline:.2} {start:.2})">{}</text>"#,
                            t.size,
                            t.color.hex(),
                            escape(&t.text)
                        );
                    } else {
                        let _ = writeln!(
                            s,
                            r#"<text x="{start:.2}" y="{baseline:.2}" font-size="{:.2}" fill="{}" text-anchor="{anchor}">{}</text>"#,
                            t.size,
                            t.color.hex(),
                            escape(&t.text)
                        );
                    }
                }
                Item::Raster { x, y, w, h, rgb } => {
                    let png = encode_png(*w, *h, rgb)?;
                    let _ = writeln!(
                        s,
                        r#"<image x="{x}" y="{y}" width="{w}" height="{h}" preserveAspectRatio="none" style="image-rendering:pixelated" xlink:href="data:image/png;base64,{}"/>"#,
                        base64(&png)
                    );
                }
            }
        }
        s.push_str("</svg>\n");
        Ok(s)
    }
}

/// Copy RGB pixels into the pixmap, clipped to its bounds.
fn blit_rgb(pm: &mut Pixmap, x: u32, y: u32, w: u32, h: u32, rgb: &[u8]) {
    let (pw, ph) = (pm.width(), pm.height());
    let data = pm.data_mut();
    for row in 0..h {
        let ty = y + row;
        if ty >= ph {
            break;
        }
        for col in 0..w {
            let tx = x + col;
            if tx >= pw {
                break;
            }
            let src = ((row * w + col) * 3) as usize;
            let dst = ((ty * pw + tx) * 4) as usize;
            if let (Some(s), Some(d)) = (rgb.get(src..src + 3), data.get_mut(dst..dst + 4)) {
                d[..3].copy_from_slice(s);
                d[3] = 255;
            }
        }
    }
}

/// Encode 8-bit RGB pixels as PNG.
pub(crate) fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc
        .write_header()
        .map_err(|e| Error::Encode(e.to_string()))?;
    writer
        .write_image_data(rgb)
        .map_err(|e| Error::Encode(e.to_string()))?;
    writer.finish().map_err(|e| Error::Encode(e.to_string()))?;
    Ok(out)
}

/// Standard base64 with padding, for the SVG data URI.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escape text for XML content and attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn escape_handles_markup() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
