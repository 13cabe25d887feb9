//! `result.json`: the [`RunResult`] itself, pretty-printed; and reading it back.

use std::io::{self, Write};
use std::path::Path;

use super::RunResult;

/// Writes `result` as pretty JSON followed by a newline.
pub fn write<W: Write>(result: &RunResult, mut w: W) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut w, result)?;
    writeln!(w)
}

/// Reads a `result.json`.
pub fn read(path: &Path) -> io::Result<RunResult> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
