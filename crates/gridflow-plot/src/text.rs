//! Text measuring and rasterizing with the bundled DejaVu Sans.

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _, point};

use crate::{Error, Result};

/// DejaVu Sans (Bitstream Vera licence, see `assets/LICENSE-DejaVu.txt`).
static FONT_DATA: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Family list written into SVG files: the bundled face first, then look-alikes.
pub(crate) const SVG_FONT_FAMILY: &str =
    "'DejaVu Sans', 'Bitstream Vera Sans', Verdana, sans-serif";

/// A coverage mask of one rendered string, baseline at row `baseline`, pen starting at
/// column `origin`.
pub(crate) struct Mask {
    pub width: usize,
    pub height: usize,
    pub baseline: usize,
    pub origin: usize,
    pub coverage: Vec<f32>,
}

/// The bundled font, with sizes given as CSS-like em sizes in pixels, so SVG `font-size`
/// and PNG output agree.
pub(crate) struct Font {
    font: FontRef<'static>,
    /// ab_glyph scales to ascent − descent; this converts an em size into that.
    em_to_scale: f32,
}

impl Font {
    pub fn load() -> Result<Self> {
        let font = FontRef::try_from_slice(FONT_DATA).map_err(|e| Error::Font(e.to_string()))?;
        let upem = font
            .units_per_em()
            .ok_or_else(|| Error::Font("no units-per-em".into()))?;
        let em_to_scale = font.height_unscaled() / upem;
        Ok(Self { font, em_to_scale })
    }

    fn scale(&self, size: f32) -> PxScale {
        PxScale::from(size * self.em_to_scale)
    }

    /// Advance width of `text` at em size `size`.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        let sf = self.font.as_scaled(self.scale(size));
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                w += sf.kern(p, id);
            }
            w += sf.h_advance(id);
            prev = Some(id);
        }
        w
    }

    /// Distance from baseline up to the top of tall glyphs.
    pub fn ascent(&self, size: f32) -> f32 {
        self.font.as_scaled(self.scale(size)).ascent()
    }

    /// Distance from baseline down to the bottom of descenders (positive).
    pub fn descent(&self, size: f32) -> f32 {
        -self.font.as_scaled(self.scale(size)).descent()
    }

    /// Height of capitals and digits above the baseline (0.73 em for DejaVu Sans).
    pub fn cap_height(&self, size: f32) -> f32 {
        0.73 * size
    }

    /// Line height used for stacking labels.
    pub fn line_height(&self, size: f32) -> f32 {
        self.ascent(size) + self.descent(size)
    }

    /// Render `text` into a coverage mask; `x_offset` is the sub-pixel pen start.
    pub fn rasterize(&self, text: &str, size: f32, x_offset: f32) -> Mask {
        let sf = self.font.as_scaled(self.scale(size));
        let pad = 2usize;
        let width = self.width(text, size).ceil() as usize + 2 * pad + 2;
        let asc = sf.ascent().ceil() as usize;
        let height = asc + (-sf.descent()).ceil() as usize + 2 * pad;
        let baseline = asc + pad;
        let mut coverage = vec![0f32; width * height];
        let mut pen = pad as f32 + x_offset;
        let mut prev = None;
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                pen += sf.kern(p, id);
            }
            let glyph = id.with_scale_and_position(self.scale(size), point(pen, baseline as f32));
            pen += sf.h_advance(id);
            prev = Some(id);
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            let (bx, by) = (b.min.x as i64, b.min.y as i64);
            outline.draw(|gx, gy, c| {
                let x = bx + i64::from(gx);
                let y = by + i64::from(gy);
                if x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height {
                    let cell = &mut coverage[y as usize * width + x as usize];
                    *cell = (*cell + c).min(1.0);
                }
            });
        }
        Mask {
            width,
            height,
            baseline,
            origin: pad,
            coverage,
        }
    }
}
