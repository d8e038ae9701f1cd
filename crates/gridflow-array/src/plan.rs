//! [`ArrayOp`] as the plan sees it ([`Operation`]): labels for drawings and errors, which
//! operations are blockwise or sources, and the lowering hooks (see [`crate::lower`]).

use crate::Scalar;
use crate::kernels::group::GroupOp;
use crate::ops::ArrayOp;
use gridflow_graph::{Expr, Operation};

impl Operation for ArrayOp {
    fn label(&self) -> String {
        match self {
            ArrayOp::Full { value, .. } => format!("full({value})"),
            ArrayOp::Arange { .. } => "arange".into(),
            ArrayOp::Random { .. } => "random".into(),
            ArrayOp::Literal(_) => "array".into(),
            ArrayOp::Read { source, .. } => format!("read-{}", source.0.kind()),
            ArrayOp::Unary(op) => op.name().into(),
            ArrayOp::AsType(d) => format!("astype({d})"),
            ArrayOp::Binary(op) => op.name().into(),
            ArrayOp::BinaryScalar { op, scalar, .. } => {
                format!("{}({})", op.name(), compact(*scalar))
            }
            ArrayOp::Where => "where".into(),
            ArrayOp::MaskEq(fill) => format!("mask({})", compact(*fill)),
            ArrayOp::ReduceBlock { spec, .. } => format!("{}-chunk", spec.op.name()),
            ArrayOp::ReduceCombine { spec } => format!("{}-combine", spec.op.name()),
            ArrayOp::ReduceFinalize { spec, .. } => format!("{}-agg", spec.op.name()),
            ArrayOp::Slice(_) => "getitem".into(),
            ArrayOp::Take { .. } => "take".into(),
            ArrayOp::Gather { .. } => "rechunk".into(),
            ArrayOp::Transpose(_) => "transpose".into(),
            ArrayOp::DropAxes(_) => "squeeze".into(),
            ArrayOp::ExpandAxes(_) => "expand_dims".into(),
            ArrayOp::MapBlocks { kernel, .. } => kernel.clone(),
            ArrayOp::Stream(plan) => plan.label(),
            ArrayOp::Group(g) => g.label(),
        }
    }

    fn is_blockwise(&self) -> bool {
        matches!(
            self,
            ArrayOp::Unary(_)
                | ArrayOp::AsType(_)
                | ArrayOp::Binary(_)
                | ArrayOp::BinaryScalar { .. }
                | ArrayOp::Where
                | ArrayOp::MaskEq(_)
        )
    }

    fn is_source(&self) -> bool {
        matches!(
            self,
            ArrayOp::Full { .. }
                | ArrayOp::Arange { .. }
                | ArrayOp::Random { .. }
                | ArrayOp::Literal(_)
                | ArrayOp::Read { .. }
                | ArrayOp::Stream(_)
        )
    }

    fn lowers(&self) -> bool {
        match self {
            ArrayOp::ReduceBlock { .. }
            | ArrayOp::Group(GroupOp::Partial(_))
            | ArrayOp::Slice(_)
            | ArrayOp::Take { .. }
            | ArrayOp::DropAxes(_)
            | ArrayOp::ExpandAxes(_)
            | ArrayOp::Transpose(_) => true,
            op => op.is_pointwise(),
        }
    }

    fn lower(expr: &Expr<ArrayOp>) -> Option<Expr<ArrayOp>> {
        crate::lower::lower(expr)
    }

    fn peak_bytes(expr: &Expr<ArrayOp>) -> Option<u64> {
        match expr {
            Expr::Call {
                op: ArrayOp::Stream(plan),
                ..
            } => plan.peak_bytes,
            _ => None,
        }
    }
}

/// A scalar for labels: at most 4 significant digits (`0.01745`, `273.1`, `1e+06`).
fn compact(s: Scalar) -> String {
    match s {
        Scalar::Float(v) if v != 0.0 && v.is_finite() && (v.abs() >= 1e5 || v.abs() < 1e-3) => {
            format!("{v:.3e}")
        }
        Scalar::Float(v) if v.is_finite() => {
            let t = format!(
                "{:.*}",
                (3 - v.abs().log10().floor().clamp(-4.0, 3.0) as i32).max(0) as usize,
                v
            );
            if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                t
            }
        }
        other => other.to_string(),
    }
}
