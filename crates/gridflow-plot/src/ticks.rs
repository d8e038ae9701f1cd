//! "Nice" numeric ticks and their labels.

/// Tick values at multiples of a 1, 2, 2.5 or 5 × 10ⁿ step inside `[min, max]`: the
/// smallest such step that gives at most `max_ticks` ticks.
///
/// Returns an empty vector for non-finite bounds and `[min]` when `min == max`.
pub fn nice_ticks(min: f64, max: f64, max_ticks: usize) -> Vec<f64> {
    match nice_step(min, max, max_ticks) {
        Some(step) => ticks_at(min, max, step),
        None if min.is_finite() && min == max => vec![min],
        None => Vec::new(),
    }
}

/// The step [`nice_ticks`] uses, if the range is finite and non-empty.
pub fn nice_step(min: f64, max: f64, max_ticks: usize) -> Option<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min {
        return None;
    }
    let max_ticks = max_ticks.max(2);
    let raw = (max - min) / max_ticks as f64;
    let mut magnitude = 10f64.powf(raw.log10().floor());
    // Walk up the 1-2-2.5-5 ladder until the count fits.
    for _ in 0..4 {
        for m in [1.0, 2.0, 2.5, 5.0] {
            let step = m * magnitude;
            if tick_count(min, max, step) <= max_ticks {
                return Some(step);
            }
        }
        magnitude *= 10.0;
    }
    Some(magnitude)
}

/// The first step from `steps` (ascending) giving at most `max_ticks` ticks in the range.
pub(crate) fn step_from(min: f64, max: f64, max_ticks: usize, steps: &[f64]) -> Option<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min {
        return None;
    }
    steps
        .iter()
        .copied()
        .find(|&s| tick_count(min, max, s) <= max_ticks.max(2))
        .or_else(|| steps.last().copied())
}

fn tick_count(min: f64, max: f64, step: f64) -> usize {
    let (lo, hi) = bounds(min, max, step);
    if hi < lo { 0 } else { (hi - lo + 1.0) as usize }
}

/// First and last multiple of `step` in the range, with a little slack for rounding.
fn bounds(min: f64, max: f64, step: f64) -> (f64, f64) {
    let eps = 1e-9;
    ((min / step - eps).ceil(), (max / step + eps).floor())
}

/// Multiples of `step` inside `[min, max]`.
pub(crate) fn ticks_at(min: f64, max: f64, step: f64) -> Vec<f64> {
    let (lo, hi) = bounds(min, max, step);
    if hi < lo || step.is_nan() || step <= 0.0 {
        return Vec::new();
    }
    let n = (hi - lo) as usize + 1;
    (0..n)
        .map(|k| {
            let v = (lo + k as f64) * step;
            // Snap rounding noise near zero to zero, so no "−0" label appears.
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect()
}

/// Decimal places needed to show multiples of `step` exactly (at most 10).
pub(crate) fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    (0..=10)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(10)
}

/// Labels for tick values on an axis with the given step: fixed-point with as many
/// decimals as the step needs, or scientific notation for the whole axis when its values
/// are very large (≥ 10⁶) or the step tiny (< 10⁻⁴). Negative values get a real minus
/// sign (U+2212).
pub fn format_ticks(values: &[f64], step: f64) -> Vec<String> {
    let max_abs = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scientific = max_abs >= 1e6 || step.abs() < 1e-4;
    values
        .iter()
        .map(|&v| format_one(v, step, scientific))
        .collect()
}

fn format_one(value: f64, step: f64, scientific: bool) -> String {
    let s = if value == 0.0 && scientific {
        "0".to_string()
    } else if value == 0.0 {
        // Same decimals as the neighbours, and never "−0".
        format!("{:.*}", decimals_for(step), 0.0)
    } else if scientific {
        let exp = value.abs().log10().floor();
        let d = decimals_for(step / 10f64.powf(exp)).min(6);
        format!("{value:.d$e}")
    } else {
        format!("{value:.*}", decimals_for(step))
    };
    s.replace('-', "\u{2212}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice_and_bounded() {
        let t = nice_ticks(0.0, 10.0, 6);
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = nice_ticks(231.3, 308.9, 8);
        assert!(t.len() <= 8 && t.len() >= 4, "{t:?}");
        assert!(t.iter().all(|v| (v / 10.0).fract().abs() < 1e-9), "{t:?}");
        assert_eq!(nice_ticks(1.0, 1.0, 5), vec![1.0]);
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
    }

    #[test]
    fn labels_have_the_step_precision() {
        let f = |v: f64, step: f64| format_ticks(&[v], step).remove(0);
        assert_eq!(f(0.30000000000000004, 0.1), "0.3");
        assert_eq!(f(2.5, 2.5), "2.5");
        assert_eq!(f(-0.25, 0.25), "\u{2212}0.25");
        assert_eq!(f(280.0, 20.0), "280");
        assert_eq!(f(0.0, 1e-5), "0");
        assert_eq!(f(2e-5, 1e-5), "2e\u{2212}5");
        assert_eq!(
            format_ticks(&[5e5, 1.5e6], 5e5),
            vec!["5e5".to_string(), "1.5e6".to_string()]
        );
    }
}
