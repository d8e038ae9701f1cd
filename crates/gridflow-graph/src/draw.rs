//! Drawing graphs: Graphviz DOT text, and a self-contained SVG that needs no Graphviz.

use crate::graph::Graph;
use crate::task::Operation;
use crate::{GraphError, Key, Result};
use rustc_hash::FxHashMap;
use std::fmt::Write as _;

/// The most tasks [`Graph::to_svg`] draws; larger graphs should be culled first.
pub const SVG_TASK_LIMIT: usize = 2000;

fn node_label(k: &Key, label: &str) -> String {
    let idx: Vec<String> = k.index().iter().map(u32::to_string).collect();
    if idx.is_empty() {
        label.to_owned()
    } else {
        format!("{label} ({})", idx.join(", "))
    }
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl<O: Operation> Graph<O> {
    /// The graph as Graphviz DOT text (`dot -Tsvg` renders it), one node per task labelled
    /// with its operation(s) and block index, edges from inputs to readers.
    pub fn to_dot(&self) -> String {
        let mut ids: FxHashMap<&Key, usize> = FxHashMap::default();
        let mut s = String::from(
            "digraph gridflow {\n  rankdir=BT;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
        );
        for (n, k) in self.sorted_keys().into_iter().enumerate() {
            ids.insert(k, n);
            let t = self.get(k).map(|t| t.label()).unwrap_or_default();
            let label = node_label(k, &t).replace('"', "\\\"");
            let _ = writeln!(
                s,
                "  n{n} [label=\"{label}\", tooltip=\"{}\"];",
                k.to_string().replace('"', "\\\"")
            );
        }
        for k in self.sorted_keys() {
            if let Some(t) = self.get(k) {
                for i in &t.inputs {
                    if let (Some(a), Some(b)) = (ids.get(i), ids.get(k)) {
                        let _ = writeln!(s, "  n{a} -> n{b};");
                    }
                }
            }
        }
        s.push_str("}\n");
        s
    }

    /// The graph drawn as a standalone SVG document: tasks in layers by depth (inputs at the
    /// bottom, outputs at the top, as Dask's `visualize`), ordered within a layer to keep
    /// edges short. Errors on graphs over [`SVG_TASK_LIMIT`] tasks.
    pub fn to_svg(&self) -> Result<String> {
        if self.len() > SVG_TASK_LIMIT {
            return Err(GraphError::TooLargeToDraw {
                tasks: self.len(),
                limit: SVG_TASK_LIMIT,
            });
        }
        self.validate()?;
        let depths = self.depths();
        let max_depth = depths.values().copied().max().unwrap_or(0);
        let mut layers: Vec<Vec<&Key>> = vec![Vec::new(); max_depth + 1];
        for k in self.sorted_keys() {
            layers[depths.get(k).copied().unwrap_or(0)].push(k);
        }
        // Order each layer by the mean position of its inputs (barycentre heuristic).
        let mut pos: FxHashMap<&Key, f64> = FxHashMap::default();
        for layer in &mut layers {
            let mut scored: Vec<(f64, &Key)> = layer
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let ins: Vec<f64> = self
                        .get(k)
                        .map(|t| {
                            t.inputs
                                .iter()
                                .filter_map(|x| pos.get(x).copied())
                                .collect()
                        })
                        .unwrap_or_default();
                    let score = if ins.is_empty() {
                        i as f64
                    } else {
                        ins.iter().sum::<f64>() / ins.len() as f64
                    };
                    (score, *k)
                })
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            *layer = scored.into_iter().map(|(_, k)| k).collect();
            for (i, k) in layer.iter().enumerate() {
                pos.insert(k, i as f64);
            }
        }
        // A node's text: its operations one per line (fused chains are long), then its
        // block index; at most MAX_LINES lines of at most MAX_CHARS characters.
        const MAX_LINES: usize = 6;
        const MAX_CHARS: usize = 30;
        let lines_of = |k: &Key, label: &str| -> Vec<String> {
            let ops: Vec<&str> = label.split('+').collect();
            let mut lines: Vec<String> = if ops.len() > MAX_LINES - 1 {
                let mut v: Vec<String> = ops[..2].iter().map(|o| (*o).to_owned()).collect();
                v.push(format!("… {} more …", ops.len() - 4));
                v.extend(ops[ops.len() - 2..].iter().map(|o| (*o).to_owned()));
                v
            } else {
                ops.iter().map(|o| (*o).to_owned()).collect()
            };
            let idx: Vec<String> = k.index().iter().map(u32::to_string).collect();
            if !idx.is_empty() {
                lines.push(format!("({})", idx.join(", ")));
            }
            lines
                .into_iter()
                .map(|l| {
                    if l.chars().count() > MAX_CHARS {
                        l.chars()
                            .take(MAX_CHARS - 1)
                            .chain(std::iter::once('…'))
                            .collect()
                    } else {
                        l
                    }
                })
                .collect()
        };
        let texts: FxHashMap<&Key, (String, Vec<String>)> = self
            .iter()
            .map(|(k, t)| {
                let label = t.label();
                let lines = lines_of(k, &label);
                (k, (label, lines))
            })
            .collect();
        let (char_w, line_h) = (6.4, 13.0);
        let longest = texts
            .values()
            .flat_map(|(_, l)| l.iter().map(|x| x.chars().count()))
            .max()
            .unwrap_or(4);
        let box_w = longest.max(4) as f64 * char_w + 16.0;
        let box_h = |k: &Key| texts.get(k).map_or(1, |(_, l)| l.len()) as f64 * line_h + 10.0;
        let (gap_x, gap_y, margin) = (14.0, 40.0, 20.0);
        let layer_h: Vec<f64> = layers
            .iter()
            .map(|l| l.iter().map(|k| box_h(k)).fold(0.0, f64::max))
            .collect();
        let widest = layers.iter().map(Vec::len).max().unwrap_or(1).max(1) as f64;
        let width = margin * 2.0 + widest * box_w + (widest - 1.0) * gap_x;
        let height = margin * 2.0 + layer_h.iter().sum::<f64>() + max_depth as f64 * gap_y;
        // Centre of each node; inputs at the bottom, outputs at the top.
        let mut centre: FxHashMap<&Key, (f64, f64)> = FxHashMap::default();
        let mut bottom = height - margin;
        for (d, layer) in layers.iter().enumerate() {
            let row_w = layer.len() as f64 * box_w + (layer.len().max(1) as f64 - 1.0) * gap_x;
            let x0 = (width - row_w) / 2.0;
            let y = bottom - layer_h[d] / 2.0;
            for (i, k) in layer.iter().enumerate() {
                centre.insert(k, (x0 + i as f64 * (box_w + gap_x) + box_w / 2.0, y));
            }
            bottom -= layer_h[d] + gap_y;
        }
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        s.push_str("<g stroke=\"#888\" stroke-width=\"1\" fill=\"none\">\n");
        for k in self.sorted_keys() {
            let Some(t) = self.get(k) else { continue };
            let Some(&(x2, y2)) = centre.get(k) else {
                continue;
            };
            for i in &t.inputs {
                if let Some(&(x1, y1)) = centre.get(i) {
                    let (ya, yb) = (y1 - box_h(i) / 2.0, y2 + box_h(k) / 2.0);
                    let my = (ya + yb) / 2.0;
                    let _ = writeln!(
                        s,
                        "<path d=\"M {x1:.1} {ya:.1} C {x1:.1} {my:.1}, {x2:.1} {my:.1}, {x2:.1} {yb:.1}\" marker-end=\"url(#arrow)\"/>"
                    );
                }
            }
        }
        s.push_str("</g>\n");
        for k in self.sorted_keys() {
            let Some(&(x, y)) = centre.get(k) else {
                continue;
            };
            let Some((label, lines)) = texts.get(k) else {
                continue;
            };
            let fill = match self.get(k) {
                Some(t) if t.inputs.is_empty() => "#dbeafe",
                Some(t) if t.expr.calls() > 1 => "#fde68a",
                _ => "#e5e7eb",
            };
            let h = box_h(k);
            let _ = write!(
                s,
                "<g><title>{}: {}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{box_w:.1}\" height=\"{h:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"#374151\"/><text x=\"{x:.1}\" text-anchor=\"middle\">",
                escape_xml(&k.to_string()),
                escape_xml(label),
                x - box_w / 2.0,
                y - h / 2.0,
            );
            let first = y - h / 2.0 + 5.0 + line_h - 3.0;
            for (n, line) in lines.iter().enumerate() {
                let _ = write!(
                    s,
                    "<tspan x=\"{x:.1}\" y=\"{:.1}\">{}</tspan>",
                    first + n as f64 * line_h,
                    escape_xml(line)
                );
            }
            s.push_str("</text></g>\n");
        }
        s.push_str("</svg>\n");
        Ok(s)
    }
}
