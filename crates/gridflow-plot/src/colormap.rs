//! The viridis colormap and the missing-value colour.

/// Published viridis colours at ten equally spaced points (0, 1/9, …, 1).
const ANCHORS: [[f64; 3]; 10] = [
    [68.0, 1.0, 84.0],    // #440154
    [72.0, 40.0, 120.0],  // #482878
    [62.0, 74.0, 137.0],  // #3E4A89
    [49.0, 104.0, 142.0], // #31688E
    [38.0, 130.0, 142.0], // #26828E
    [31.0, 158.0, 137.0], // #1F9E89
    [53.0, 183.0, 121.0], // #35B779
    [109.0, 205.0, 89.0], // #6DCD59
    [180.0, 222.0, 44.0], // #B4DE2C
    [253.0, 231.0, 37.0], // #FDE725
];

/// Colour of missing (NaN) cells: a light grey that no viridis colour comes close to.
pub const MISSING_COLOR: [u8; 3] = [204, 204, 204];

/// Viridis at `t` in `[0, 1]` (clamped; NaN gives the low end).
///
/// A Catmull-Rom spline through the published anchor colours: smooth between anchors and
/// exact at them.
pub fn viridis(t: f64) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let last = ANCHORS.len() - 1;
    let pos = t * last as f64;
    let i = (pos.floor() as usize).min(last - 1);
    let u = pos - i as f64;
    let p = |k: isize| ANCHORS[k.clamp(0, last as isize) as usize];
    let (p0, p1, p2, p3) = (
        p(i as isize - 1),
        p(i as isize),
        p(i as isize + 1),
        p(i as isize + 2),
    );
    let mut out = [0u8; 3];
    for c in 0..3 {
        let v = catmull_rom(p0[c], p1[c], p2[c], p3[c], u);
        out[c] = v.round().clamp(0.0, 255.0) as u8;
    }
    out
}

fn catmull_rom(p0: f64, p1: f64, p2: f64, p3: f64, u: f64) -> f64 {
    let u2 = u * u;
    let u3 = u2 * u;
    0.5 * (2.0 * p1
        + (p2 - p0) * u
        + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * u2
        + (3.0 * p1 - p0 - 3.0 * p2 + p3) * u3)
}

/// 256 viridis colours, for mapping many values quickly.
pub(crate) fn viridis_lut() -> Vec<[u8; 3]> {
    (0..256).map(|i| viridis(f64::from(i) / 255.0)).collect()
}

/// Relative luminance-like lightness (Rec. 709 weights on sRGB).
#[cfg(test)]
pub(crate) fn lightness(c: [u8; 3]) -> f64 {
    0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_the_anchors() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(viridis(5.0 / 9.0), [31, 158, 137]);
    }

    #[test]
    fn lightness_increases_monotonically() {
        let lut = viridis_lut();
        for w in lut.windows(2) {
            assert!(
                lightness(w[1]) >= lightness(w[0]) - 0.5,
                "{:?} then {:?}",
                w[0],
                w[1]
            );
        }
        assert!(lightness(lut[255]) - lightness(lut[0]) > 150.0);
    }

    #[test]
    fn missing_colour_is_not_in_the_map() {
        let lut = viridis_lut();
        let dist = |a: [u8; 3], b: [u8; 3]| {
            (0..3)
                .map(|i| (f64::from(a[i]) - f64::from(b[i])).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        assert!(lut.iter().all(|&c| dist(c, MISSING_COLOR) > 60.0));
    }
}
