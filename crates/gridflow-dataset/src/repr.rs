//! Text representations like xarray's (`print(ds)`).

use crate::dataarray::DataArray;
use crate::dataset::Dataset;
use crate::index::{Index, IndexValues};
use crate::variable::{Attrs, ValueKind, Variable};
use std::fmt::{self, Write as _};

/// A float with 4 significant digits, as NumPy prints array previews (`-89.38`, `1.0`,
/// `1.5e-05`, `nan`).
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let a = v.abs();
    if !(1e-4..1e16).contains(&a) {
        let s = format!("{v:.3e}");
        // 1.500e-5 -> 1.5e-05
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = trim_zeros(m);
        let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
        return format!("{m}e{sign}{digits:0>2}");
    }
    let mag = a.log10().floor() as i32;
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    let s = trim_zeros(&s);
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn trim_zeros(s: &str) -> String {
    if !s.contains('.') {
        return s.to_owned();
    }
    let t = s.trim_end_matches('0');
    if t.ends_with('.') {
        format!("{t}0")
    } else {
        t.to_owned()
    }
}

/// Bytes as xarray shows them (`1kB`, `115kB`, `2GB`).
pub fn format_bytes(n: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v < 10.0 {
        let s = format!("{v:.1}");
        format!("{}{}", s.trim_end_matches(".0"), units[u])
    } else {
        format!("{v:.0}{}", units[u])
    }
}

fn dtype_text(v: &Variable) -> String {
    match v.kind() {
        ValueKind::Numeric => v.dtype().name().to_owned(),
        ValueKind::Time(_) => "object".into(),
        ValueKind::Strings(_) => "<U".to_owned() + &max_len(v).to_string(),
    }
}

fn max_len(v: &Variable) -> usize {
    match v.kind() {
        ValueKind::Strings(t) => t.iter().map(|s| s.chars().count()).max().unwrap_or(1),
        _ => 0,
    }
}

fn dims_text(v: &Variable) -> String {
    format!("({})", v.dims().join(", "))
}

/// A short preview of a variable's values: labels for indexes, in-memory values for small
/// single-block variables, the chunking for lazy ones.
fn preview(v: &Variable, index: Option<&Index>, width: usize) -> String {
    if let Some(ix) = index {
        return preview_labels(ix, width);
    }
    let data = v.data();
    let small = data.npartitions() <= 1 && data.len() <= 10_000;
    if (small || is_in_memory(data))
        && let Ok(chunk) = data.compute()
    {
        let mut vals = chunk.to_f64_vec();
        let truncated = vals.len() > 12;
        if truncated {
            // only the ends are shown
            let tail = vals.split_off(vals.len() - 6);
            vals.truncate(6);
            vals.extend(tail);
        }
        let items: Vec<String> = match v.kind() {
            ValueKind::Time(cal) => vals
                .iter()
                .map(|&t| {
                    if t as i64 == crate::NAT {
                        "NaT".into()
                    } else {
                        cal.format_iso(t as i64).replace('T', " ")
                    }
                })
                .collect(),
            ValueKind::Strings(t) => vals
                .iter()
                .map(|&c| format!("{:?}", t.get(c as usize).cloned().unwrap_or_default()))
                .collect(),
            ValueKind::Numeric if data.dtype().is_float() => {
                vals.iter().map(|&x| format_f64(x)).collect()
            }
            ValueKind::Numeric if data.dtype() == gridflow_array::DType::Bool => vals
                .iter()
                .map(|&x| {
                    if x != 0.0 {
                        "True".into()
                    } else {
                        "False".into()
                    }
                })
                .collect(),
            ValueKind::Numeric => vals.iter().map(|&x| format!("{x}")).collect(),
        };
        return if truncated {
            ends(&items, width)
        } else {
            fit(&items, width)
        };
    }
    let cs: Vec<String> = data
        .chunks()
        .iter()
        .map(|c| c.first().copied().unwrap_or(0).to_string())
        .collect();
    let comma = if cs.len() == 1 { "," } else { "" };
    format!(
        "chunked<chunksize=({}{comma}), npartitions={}>",
        cs.join(", "),
        data.npartitions()
    )
}

/// True when every block is already in memory (a computed or persisted array), so a
/// preview reads nothing.
fn is_in_memory(data: &gridflow_array::ChunkedArray) -> bool {
    data.is_in_memory()
}

fn preview_labels(ix: &Index, width: usize) -> String {
    let n = ix.len();
    let take: Vec<usize> = if n <= 12 {
        (0..n).collect()
    } else {
        (0..6).chain(n - 6..n).collect()
    };
    let items: Vec<String> = take
        .iter()
        .map(|&i| match ix.values() {
            IndexValues::Time { .. } => ix.label_string(i).replace('T', " "),
            IndexValues::Str(_) => format!("{:?}", ix.label_string(i)),
            _ => ix.label_string(i),
        })
        .collect();
    if n <= 12 {
        fit(&items, width)
    } else {
        // keep as many from both ends as fit, joined by "..."
        let mut k = 6;
        loop {
            let s = format!("{} ... {}", items[..k].join(" "), items[12 - k..].join(" "));
            if s.chars().count() <= width || k == 1 {
                return s;
            }
            k -= 1;
        }
    }
}

/// The first and last few of 12 items, joined by "...".
fn ends(items: &[String], width: usize) -> String {
    let mut k = items.len() / 2;
    loop {
        let s = format!(
            "{} ... {}",
            items[..k].join(" "),
            items[items.len() - k..].join(" ")
        );
        if s.chars().count() <= width || k <= 1 {
            return s;
        }
        k -= 1;
    }
}

fn fit(items: &[String], width: usize) -> String {
    let all = items.join(" ");
    if all.chars().count() <= width || items.len() <= 2 {
        return all;
    }
    let mut k = items.len() / 2;
    loop {
        let s = format!(
            "{} ... {}",
            items[..k].join(" "),
            items[items.len() - k..].join(" ")
        );
        if s.chars().count() <= width || k == 1 {
            return s;
        }
        k -= 1;
    }
}

/// `s` padded with spaces to `width` characters; by hand, as `{:<w$}` panics on widths
/// beyond u16::MAX (names and attribute keys from a store can be that long).
fn pad(s: &str, width: usize) -> String {
    let fill = width.saturating_sub(s.chars().count());
    format!("{s}{}", " ".repeat(fill))
}

fn var_line(
    out: &mut String,
    name: &str,
    v: &Variable,
    index: Option<&Index>,
    marker: char,
    col: usize,
) {
    let head = format!(
        "  {marker} {} {} {} {} ",
        pad(name, col),
        dims_text(v),
        dtype_text(v),
        format_bytes(v.data().nbytes()),
    );
    let room = 100usize.saturating_sub(head.chars().count()).max(20);
    let _ = writeln!(out, "{head}{}", preview(v, index, room));
}

fn attrs_block(out: &mut String, attrs: &Attrs) {
    if attrs.is_empty() {
        return;
    }
    let shown = 20;
    if attrs.len() > shown {
        let _ = writeln!(out, "Attributes: ({shown}/{})", attrs.len());
    } else {
        let _ = writeln!(out, "Attributes:");
    }
    let col = attrs
        .keys()
        .take(shown)
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    for (k, v) in attrs.iter().take(shown) {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text: String = text.replace('\n', " ");
        let text = if text.chars().count() > 80 {
            format!("{}...", text.chars().take(77).collect::<String>())
        } else {
            text
        };
        let _ = writeln!(out, "    {} {text}", pad(&format!("{k}:"), col));
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<gridflow.Dataset> Size: {}",
            format_bytes(self.nbytes())
        );
        let dims = self.dims();
        let d: Vec<String> = dims.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let col = self
            .data_vars
            .keys()
            .chain(self.coords.keys())
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0)
            .max(8);
        let _ = writeln!(out, "{}({})", pad("Dimensions:", col + 5), d.join(", "));
        if !self.coords.is_empty() {
            let _ = writeln!(out, "Coordinates:");
            for (k, v) in &self.coords {
                let ix = self.indexes.get(k);
                var_line(
                    &mut out,
                    k,
                    v,
                    ix,
                    if ix.is_some() { '*' } else { ' ' },
                    col,
                );
            }
        }
        let without: Vec<&String> = dims
            .keys()
            .filter(|k| !self.coords.contains_key(*k))
            .collect();
        if !without.is_empty() {
            let names: Vec<&str> = without.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(out, "Dimensions without coordinates: {}", names.join(", "));
        }
        let _ = writeln!(out, "Data variables:");
        if self.data_vars.is_empty() {
            let _ = writeln!(out, "    *empty*");
        }
        for (k, v) in &self.data_vars {
            var_line(&mut out, k, v, None, ' ', col);
        }
        attrs_block(&mut out, &self.attrs);
        f.write_str(out.trim_end())
    }
}

impl fmt::Display for DataArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let dims: Vec<String> = self
            .sizes()
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let name = self
            .name()
            .map(|n| format!(" {n:?}"))
            .unwrap_or_default()
            .replace('"', "'");
        let _ = writeln!(
            out,
            "<gridflow.DataArray{name} ({})> Size: {}",
            dims.join(", "),
            format_bytes(self.data().nbytes())
        );
        let data = self.data();
        let _ = writeln!(
            out,
            "{}",
            if (data.npartitions() <= 1 && data.len() <= 10_000) || is_in_memory(data) {
                preview(self.variable(), None, 100)
            } else {
                format!(
                    "chunked<shape=({}), dtype={}, chunksize=({}), npartitions={}>",
                    data.shape()
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    dtype_text(self.variable()),
                    data.chunks()
                        .iter()
                        .map(|c| c.first().copied().unwrap_or(0).to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    data.npartitions()
                )
            }
        );
        if !self.coords().is_empty() {
            let _ = writeln!(out, "Coordinates:");
            let col = self
                .coords()
                .keys()
                .map(|k| k.chars().count())
                .max()
                .unwrap_or(0)
                .max(6);
            for (k, v) in self.coords() {
                let ix = self.indexes().get(k);
                var_line(
                    &mut out,
                    k,
                    v,
                    ix,
                    if ix.is_some() { '*' } else { ' ' },
                    col,
                );
            }
        }
        let without: Vec<&str> = self
            .dims()
            .iter()
            .filter(|d| !self.coords().contains_key(*d))
            .map(String::as_str)
            .collect();
        if !without.is_empty() {
            let _ = writeln!(
                out,
                "Dimensions without coordinates: {}",
                without.join(", ")
            );
        }
        attrs_block(&mut out, self.attrs());
        f.write_str(out.trim_end())
    }
}
