//! How task values cross a process boundary: a small header plus raw bytes.

use std::borrow::Cow;

/// A task value that can be sent to another process as a small header (its type, shape,
/// ...) and a body of raw bytes, with no element-by-element encoding: a chunk's body is its
/// elements' memory as it is.
pub trait WireValue: Sized {
    /// Appends the header describing this value to `out`.
    fn write_header(&self, out: &mut Vec<u8>);

    /// The body bytes: borrowed when the value's memory already is its encoding.
    fn body(&self) -> Cow<'_, [u8]>;

    /// Rebuilds a value from a header and a body written by the two methods above.
    /// Malformed input is an error naming what is wrong, never a panic.
    fn from_parts(header: &[u8], body: Vec<u8>) -> std::result::Result<Self, String>;
}

impl WireValue for Vec<u8> {
    fn write_header(&self, _out: &mut Vec<u8>) {}

    fn body(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }

    fn from_parts(_header: &[u8], body: Vec<u8>) -> std::result::Result<Self, String> {
        Ok(body)
    }
}
