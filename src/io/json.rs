//! JSON outputs that stay readable when they hold long arrays (masks, per-image results): an array
//! written one compact object a line, atomically.

use std::path::Path;

use serde::Serialize;

use crate::io::output::write_bytes;
use crate::{Error, Result};

/// `items` as a JSON array with one compact object a line: `"[\n{…},\n{…}\n]"`.
///
/// ```
/// let text = dinoreg::io::json::json_lines(&[serde_json::json!({"a": 1}), serde_json::json!({"a": 2})])?;
/// assert_eq!(text, "[\n{\"a\":1},\n{\"a\":2}\n]");
/// # Ok::<(), dinoreg::Error>(())
/// ```
pub fn json_lines<T: Serialize>(items: &[T]) -> Result<String> {
    let rows = items
        .iter()
        .map(serde_json::to_string)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::input("JSON output", e.to_string()))?;
    Ok(format!("[\n{}\n]", rows.join(",\n")))
}

/// Writes [`json_lines`] of `items` to `path`, atomically.
pub fn write_json_lines<T: Serialize>(path: impl AsRef<Path>, items: &[T]) -> Result<()> {
    write_bytes(path.as_ref(), json_lines(items)?.as_bytes())
}
