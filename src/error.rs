//! The error type of `dinoreg`. Every failure on user input is one of these, with a one-line message
//! that names the thing (file, tensor, option) and what was expected. Library code never panics on
//! user input.

use std::path::PathBuf;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `dinoreg`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `config.json` that cannot be read, parsed, or that is inconsistent.
    #[error("config {path}: {reason}")]
    Config {
        /// The file, or `<preset>`/`<memory>` when the config did not come from a file.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// An option (out_indices, out_features, sizes, flags) with a value that is not allowed.
    #[error("invalid {name}: {reason}")]
    InvalidOption {
        /// The option.
        name: String,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// An input tensor or array of the wrong shape, dtype or content.
    #[error("invalid input {name}: {reason}")]
    InvalidInput {
        /// The input.
        name: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// An image that cannot be opened or decoded.
    #[error("image {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A model that cannot be found locally or downloaded from the Hub.
    #[error("model {model}: {reason}")]
    Model {
        /// The model argument (folder or Hub id).
        model: String,
        /// What is missing and what to do.
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
    /// Long work stopped because its [`Progress`](crate::progress::Progress) was cancelled.
    #[error("interrupted: {done} of {total} done")]
    Interrupted {
        /// Units finished before the stop.
        done: usize,
        /// Units of the whole job.
        total: usize,
    },
    /// A checkpoint, head or head-input error (missing or mis-shaped tensors among them).
    #[error(transparent)]
    Heads(#[from] dinoreg_heads::Error),
    /// A failure inside candle.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle::Error),
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

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
