//! Output that cannot panic: standard output is written fallibly (a closed pipe or a full
//! disk is an error the caller returns, not a panic), and notes on standard error are
//! best effort (when stderr itself fails there is nowhere left to say so).

use std::fmt;
use std::io::{self, Write};

/// A failed write to standard output; `main` ends quietly when its cause is a closed pipe.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("writing to standard output")
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl StdoutError {
    /// Whether the reader went away (`gridflow ... | head -1`): not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes one line to standard output and flushes it, so that an error shows up here.
pub fn line(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut o = io::stdout().lock();
    o.write_fmt(args)
        .and_then(|()| o.write_all(b"\n"))
        .and_then(|()| o.flush())
        .map_err(StdoutError)
}

/// Writes one line to standard error, ignoring failures.
pub fn note_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// `println!` that returns a [`StdoutError`] instead of panicking.
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::out::line(format_args!($($t)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! note {
    ($($t:tt)*) => {
        $crate::out::note_line(format_args!($($t)*))
    };
}

pub(crate) use {note, outln};
