//! Memory sizes as people write them (`--memory-limit 2GB`, `Client(memory_limit="4GiB")`).

use crate::error::{Result, RuntimeError};

/// Parses a memory size: `"2GB"`, `"512MiB"`, `"1.5 GiB"`, `"800M"`, or bytes.
///
/// ```
/// assert_eq!(gridflow_runtime::parse_size("1.5 KiB").unwrap(), 1536);
/// assert!(gridflow_runtime::parse_size("2 parsecs").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = |detail: String| RuntimeError::InvalidSize {
        text: s.to_owned(),
        detail,
    };
    let n: f64 = num
        .parse()
        .map_err(|_| bad(format!("{num:?} is not a number")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(bad(format!(
                "unknown unit {other:?} (use B, kB, MB, GB, MiB, GiB)"
            )));
        }
    };
    Ok((n * mult) as usize)
}
