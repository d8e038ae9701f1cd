//! Graph structure: fusion, culling, ordering, drawing and serialization.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
use gridflow_graph::{Graph, GraphError, Key, Operation, Task};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Op {
    Read,
    Decode,
    Scale,
    Mask,
    Add,
    Combine,
}

impl Operation for Op {
    fn label(&self) -> String {
        format!("{self:?}").to_lowercase()
    }
    fn is_blockwise(&self) -> bool {
        matches!(self, Op::Add)
    }
    fn is_source(&self) -> bool {
        matches!(self, Op::Read)
    }
}

fn k(name: &str, i: u32) -> Key {
    Key::new(name, &[i])
}

/// read -> decode -> scale -> mask for `n` blocks, then a tree of combines with fan-in 4.
fn pipeline(n: u32) -> (Graph<Op>, Key) {
    let mut g = Graph::new();
    for i in 0..n {
        g.insert(k("read", i), Task::new(Op::Read, vec![]));
        g.insert(k("decode", i), Task::new(Op::Decode, vec![k("read", i)]));
        g.insert(k("scale", i), Task::new(Op::Scale, vec![k("decode", i)]));
        g.insert(k("mask", i), Task::new(Op::Mask, vec![k("scale", i)]));
    }
    let mut level: Vec<Key> = (0..n).map(|i| k("mask", i)).collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let name = format!("combine{depth}");
        level = level
            .chunks(4)
            .enumerate()
            .map(|(j, group)| {
                let key = k(&name, j as u32);
                g.insert(key.clone(), Task::new(Op::Combine, group.to_vec()));
                key
            })
            .collect();
    }
    (g, level[0].clone())
}

#[test]
fn linear_chains_fuse_into_one_task_and_reductions_stay_parallel() {
    let (g, out) = pipeline(16);
    assert_eq!(g.len(), 16 * 4 + 4 + 1);
    let fused = g.optimize(std::slice::from_ref(&out)).unwrap();
    // Each read->decode->scale->mask chain becomes one task; combines keep their inputs.
    assert_eq!(fused.len(), 16 + 4 + 1);
    let t = fused.get(&k("mask", 3)).unwrap();
    assert!(t.inputs.is_empty());
    assert_eq!(t.label(), "read+decode+scale+mask");
    assert!(t.is_source());
    let stats = fused.stats();
    assert_eq!(stats.calls, g.stats().calls);
    assert_eq!(stats.depth, 3);
    fused.validate().unwrap();
}

#[test]
fn blockwise_ops_absorb_both_inputs_but_shared_tasks_are_kept() {
    let mut g: Graph<Op> = Graph::new();
    g.insert(k("a", 0), Task::new(Op::Read, vec![]));
    g.insert(k("b", 0), Task::new(Op::Read, vec![]));
    g.insert(k("sa", 0), Task::new(Op::Scale, vec![k("a", 0)]));
    g.insert(k("add", 0), Task::new(Op::Add, vec![k("sa", 0), k("b", 0)]));
    // "b" is also read by a second task, so it must stay a task of its own.
    g.insert(k("other", 0), Task::new(Op::Mask, vec![k("b", 0)]));
    let outs = [k("add", 0), k("other", 0)];
    let f = g.fuse(&outs).unwrap();
    assert_eq!(f.len(), 3);
    let add = f.get(&k("add", 0)).unwrap();
    assert_eq!(add.inputs, vec![k("b", 0)]);
    assert_eq!(add.label(), "read+scale+add");
}

#[test]
fn outputs_are_never_fused_away() {
    let (g, _) = pipeline(4);
    let f = g.fuse(&[k("decode", 0), k("combine1", 0)]).unwrap();
    assert!(f.contains(&k("decode", 0)));
    assert!(f.contains(&k("combine1", 0)));
}

#[test]
fn cull_keeps_only_what_outputs_need() {
    let (g, _) = pipeline(8);
    let c = g.cull(&[k("scale", 2)]).unwrap();
    assert_eq!(c.len(), 3);
    assert!(matches!(
        g.cull(&[k("nope", 0)]),
        Err(GraphError::MissingOutput(_))
    ));
}

#[test]
fn missing_dependencies_and_cycles_are_reported_with_keys() {
    let mut g: Graph<Op> = Graph::new();
    g.insert(k("x", 0), Task::new(Op::Decode, vec![k("ghost", 7)]));
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("('ghost', 7)"), "{e}");

    let mut c: Graph<Op> = Graph::new();
    c.insert(k("p", 0), Task::new(Op::Decode, vec![k("q", 0)]));
    c.insert(k("q", 0), Task::new(Op::Decode, vec![k("p", 0)]));
    assert!(matches!(c.validate(), Err(GraphError::Cycle(_))));
}

#[test]
fn order_finishes_branches_before_loading_new_inputs() {
    let (g, out) = pipeline(64);
    let order = g.order(std::slice::from_ref(&out)).unwrap();
    assert_eq!(order.len(), g.len());
    // Every task comes after its inputs.
    let pos: std::collections::HashMap<&Key, usize> =
        order.iter().enumerate().map(|(i, k)| (k, i)).collect();
    for (key, t) in g.iter() {
        for i in &t.inputs {
            assert!(pos[i] < pos[key], "{i} must run before {key}");
        }
    }
    // Depth-first order holds a handful of results; breadth-first (topological) holds all 64.
    let ordered_peak = g.peak_held(&order, std::slice::from_ref(&out));
    let depths = g.depths();
    let mut bfs: Vec<Key> = g.sorted_keys().into_iter().cloned().collect();
    bfs.sort_by_key(|k| depths[k]);
    let bfs_peak = g.peak_held(&bfs, &[out]);
    assert!(ordered_peak <= 12, "peak {ordered_peak}");
    assert!(bfs_peak >= 64, "bfs peak {bfs_peak}");
}

#[test]
fn order_is_deterministic() {
    let (g, out) = pipeline(20);
    let a = g.order(std::slice::from_ref(&out)).unwrap();
    let b = g.clone().order(&[out]).unwrap();
    assert_eq!(a, b);
}

#[test]
fn drawings_name_every_task() {
    let (g, out) = pipeline(4);
    let f = g.optimize(&[out]).unwrap();
    let dot = f.to_dot();
    assert!(dot.starts_with("digraph"));
    assert_eq!(dot.matches(" -> ").count(), f.stats().edges);
    let svg = f.to_svg().unwrap();
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches("<rect x=").count(), f.len());
    assert!(svg.contains("read+decode+scale+mask</title>"));
    assert!(svg.contains(">scale</tspan>"));
    assert_eq!(svg.matches("marker-end=").count(), f.stats().edges);
}

#[test]
fn huge_graphs_refuse_to_draw() {
    let (g, _) = pipeline(1024);
    assert!(matches!(g.to_svg(), Err(GraphError::TooLargeToDraw { .. })));
}

#[test]
fn graphs_round_trip_through_serde() {
    let (g, out) = pipeline(4);
    let f = g.optimize(std::slice::from_ref(&out)).unwrap();
    let json = serde_json::to_string(&f).unwrap();
    let back: Graph<Op> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.len(), f.len());
    assert_eq!(back.get(&out), f.get(&out));
}

#[test]
fn same_computation_same_key() {
    let a = gridflow_graph::Tokenizer::new("add")
        .str("x")
        .u64(3)
        .finish();
    let b = gridflow_graph::Tokenizer::new("add")
        .str("x")
        .u64(3)
        .finish();
    let c = gridflow_graph::Tokenizer::new("add")
        .str("x")
        .u64(4)
        .finish();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(Key::new(a.as_str(), &[1]).prefix(), "add");
}
