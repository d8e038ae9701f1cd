//! Binding strength of Python's operator levels, loosest first; shared by the parser and
//! the printer so both agree.

pub(crate) const TEST: u8 = 1;
pub(crate) const OR: u8 = 2;
pub(crate) const AND: u8 = 3;
pub(crate) const NOT: u8 = 4;
pub(crate) const CMP: u8 = 5;
pub(crate) const BIT_OR: u8 = 6;
pub(crate) const BIT_XOR: u8 = 7;
pub(crate) const BIT_AND: u8 = 8;
pub(crate) const SHIFT: u8 = 9;
pub(crate) const ARITH: u8 = 10;
pub(crate) const TERM: u8 = 11;
pub(crate) const FACTOR: u8 = 12;
pub(crate) const POWER: u8 = 13;
pub(crate) const ATOM: u8 = 14;
