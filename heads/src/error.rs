//! The one error type of `dinoreg-heads`: checkpoint, option and input errors, each naming what was
//! wrong and what was expected. The root crate wraps it in `dinoreg::Error::Heads`.

use std::path::PathBuf;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in a head: a checkpoint that does not fit, an invalid option, an input
/// of the wrong shape. Messages are one line and name the file, tensor or option concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor the model needs is not in the checkpoint.
    #[error("{source_name}: tensor `{name}` is missing{}", expected_suffix(.expected))]
    MissingTensor {
        /// The checkpoint (file or description).
        source_name: String,
        /// The tensor name the model looked for.
        name: String,
        /// The shape the model expected, when known.
        expected: Option<Vec<usize>>,
    },
    /// A tensor is in the checkpoint but has the wrong shape.
    #[error("{source_name}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The checkpoint (file or description).
        source_name: String,
        /// The tensor name.
        name: String,
        /// The shape the model expected.
        expected: Vec<usize>,
        /// The shape found in the checkpoint.
        found: Vec<usize>,
    },
    /// A checkpoint file that cannot be opened or parsed.
    #[error("cannot read checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// An option with a value outside what is allowed.
    #[error("invalid {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: String,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// An input (tensor, image, label map) of the wrong shape or content.
    #[error("invalid input {name}: {reason}")]
    InvalidInput {
        /// The input.
        name: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Long work (training) stopped because its observer asked it to.
    #[error("interrupted: {done} of {total} done")]
    Interrupted {
        /// Units (steps) finished before the stop.
        done: usize,
        /// Units of the whole job.
        total: usize,
    },
    /// An error inside candle (device, dtype, an operation on tensors).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle::Error),
}

fn expected_suffix(expected: &Option<Vec<usize>>) -> String {
    match expected {
        Some(shape) => format!(" (expected shape {shape:?})"),
        None => String::new(),
    }
}

impl Error {
    /// An [`Error::InvalidOption`].
    pub fn option(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidInput`].
    pub fn input(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
