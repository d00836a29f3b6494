//! Why a configuration could not be loaded, naming the key at fault.

use std::path::PathBuf;

/// A configuration that could not be read or is not valid. Keys are dotted paths such as
/// `grpc.listen`, whether they came from the file or the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin} is not valid TOML: {reason}")]
    Syntax {
        /// The file's path, or `inline TOML`.
        origin: String,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// A required key is absent.
    #[error("missing config key `{key}`")]
    Missing {
        /// The key, e.g. `service.name`.
        key: String,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("invalid config value for `{key}` ({value}): {reason}")]
    Invalid {
        /// The key, e.g. `grpc.listen`.
        key: String,
        /// The offending value, as TOML.
        value: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A key that no section knows; usually a typo.
    #[error("unknown config key `{key}`")]
    Unknown {
        /// The key, e.g. `grpc.listn`.
        key: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// What was wrong with it.
        reason: String,
    },
}
