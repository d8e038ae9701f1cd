//! Byte ranges into the parsed source.

/// A half-open byte range `start..end` into the source string.
///
/// Both ends always fall on `char` boundaries of the source the span came from.
///
/// ```
/// use gridflow_expr::{parse, Span};
///
/// let e = parse("ds.tas")?;
/// assert_eq!(e.span, Span::new(0, 6));
/// assert_eq!(e.span.text("ds.tas"), Some("ds.tas"));
/// # Ok::<(), gridflow_expr::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The covered text of `src`, or `None` if the span does not fit `src`.
    pub fn text<'a>(&self, src: &'a str) -> Option<&'a str> {
        src.get(self.start..self.end)
    }
}
