//! The parse error, and rendering a message with the source line under it.

use crate::Span;
use thiserror::Error;

/// Why an expression was rejected, and where.
///
/// The `Display` form names only byte offsets; [`ParseError::render`] shows the line and
/// column with the offending source underlined.
///
/// ```
/// let src = "f(a=1, b)";
/// let err = gridflow_expr::parse(src).unwrap_err();
/// assert_eq!(err.message, "positional argument follows keyword argument");
/// assert_eq!(err.span.text(src), Some("b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (at bytes {}..{})", span.start, span.end)]
pub struct ParseError {
    /// What is wrong, in one line.
    pub message: String,
    /// The offending source range (empty at the end of the input).
    pub span: Span,
}

/// The result type of this crate.
pub type Result<T, E = ParseError> = std::result::Result<T, E>;

impl ParseError {
    /// An error with `message` at `span`.
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        ParseError {
            message: message.into(),
            span,
        }
    }

    /// A three-line report: position and message, the source line, carets under the span.
    ///
    /// ```
    /// let src = "ds.tas.sel(lat=45.5,, lon=9)";
    /// let err = gridflow_expr::parse(src).unwrap_err();
    /// assert_eq!(
    ///     err.render(src),
    ///     "error at 1:21: expected an expression, found ','\n  \
    ///      ds.tas.sel(lat=45.5,, lon=9)\n                      ^"
    /// );
    /// ```
    pub fn render(&self, src: &str) -> String {
        render_error(src, self.span, &self.message)
    }
}

/// Renders `message` at `span` of `src` like [`ParseError::render`].
///
/// Useful for later stages (name binding, evaluation) that report errors against the spans
/// of the AST. Lines and columns are 1-based; columns and carets count `char`s, and tabs
/// before the span are repeated in the caret line so the carets line up. A span that
/// crosses lines is underlined to the end of its first line.
///
/// ```
/// use gridflow_expr::{render_error, Span};
///
/// let out = render_error("a +\n  nope", Span::new(6, 10), "name 'nope' is not defined");
/// assert_eq!(out, "error at 2:3: name 'nope' is not defined\n    nope\n    ^^^^");
/// ```
pub fn render_error(src: &str, span: Span, message: &str) -> String {
    let start = floor_char_boundary(src, span.start);
    let line_start = text_of(src, 0, start)
        .rfind('\n')
        .map_or(0, |i| i.saturating_add(1));
    let line_end = text_of(src, start, src.len())
        .find('\n')
        .map_or(src.len(), |i| start.saturating_add(i));
    let line_no = text_of(src, 0, start)
        .matches('\n')
        .count()
        .saturating_add(1);
    let before = text_of(src, line_start, start);
    let text = text_of(src, line_start, line_end).trim_end_matches('\r');
    let text_end = line_start.saturating_add(text.len());
    let end = floor_char_boundary(src, span.end.min(text_end)).max(start);
    let width = text_of(src, start, end).chars().count().max(1);
    let pad: String = before
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!(
        "error at {line_no}:{col}: {message}\n  {text}\n  {pad}{carets}",
        col = before.chars().count().saturating_add(1),
        carets = "^".repeat(width),
    )
}

/// `src[start..end]`, or "" where that is not on char boundaries (spans may come from
/// elsewhere).
pub(crate) fn text_of(src: &str, start: usize, end: usize) -> &str {
    src.get(start..end).unwrap_or("")
}

/// The largest char boundary of `s` at or before `i` (spans from elsewhere may be off).
fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i = i.saturating_sub(1);
    }
    i
}
