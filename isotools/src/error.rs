//! Typed errors returned at the library boundary.

use std::path::PathBuf;

/// Everything that can go wrong while describing, laying out or writing an image.
///
/// Every variant names the offending path (as seen inside the image) and says
/// what to change, so callers can show the message to people unchanged.
#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    /// A name component is empty, `.`/`..`, contains `/`, NUL or a control
    /// character, or a character Joliet forbids.
    #[error("invalid name {name:?} at '{path}': {reason}")]
    InvalidName {
        /// Path of the entry inside the image (may be partial).
        path: String,
        /// The rejected name component.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A name component is longer than 255 bytes (the POSIX / Rock Ridge limit).
    #[error("name at '{path}' is {len} bytes long; the limit is 255 bytes (Rock Ridge NM / POSIX NAME_MAX), shorten it")]
    NameTooLong {
        /// Path of the entry inside the image.
        path: String,
        /// Length in bytes.
        len: usize,
    },
    /// With Joliet enabled a name must fit in 64 UCS-2 code units.
    #[error("name at '{path}' is {units} UCS-2 characters long; Joliet allows at most 64, shorten it or disable Joliet")]
    JolietNameTooLong {
        /// Path of the entry inside the image.
        path: String,
        /// Length in UTF-16 code units.
        units: usize,
    },
    /// A file or directory path cannot be read from disk because it is not UTF-8.
    #[error("name {lossy:?} under '{parent}' is not valid UTF-8; rename it (image names must be Unicode)")]
    NonUtf8Name {
        /// Parent directory on disk.
        parent: PathBuf,
        /// Lossy rendering of the name.
        lossy: String,
    },
    /// The same name was added twice in one directory, or a file was added
    /// where a directory exists (or the other way round).
    #[error("duplicate entry '{path}': {reason}")]
    Duplicate {
        /// Path inside the image.
        path: String,
        /// What collided.
        reason: String,
    },
    /// A directory is nested deeper than ECMA-119 allows.
    #[error("directory '{path}' is at level {level}; ECMA-119 allows at most 8 directory levels (root is level 1), flatten the tree")]
    TooDeep {
        /// Path of the first directory that is too deep.
        path: String,
        /// Its level (root = 1).
        level: usize,
    },
    /// A single file is larger than one ECMA-119 extent can describe.
    #[error("file '{path}' is {size} bytes; the limit is 4294967295 bytes (4 GiB - 1) because multi-extent files are not supported, split the file")]
    FileTooLarge {
        /// Path inside the image.
        path: String,
        /// Declared size.
        size: u64,
    },
    /// The image would need more than 2^32 - 1 sectors or more than 65535 directories.
    #[error("image is too large: {0}")]
    ImageTooLarge(String),
    /// Symbolic links need Rock Ridge, or the target is unusable.
    #[error("symlink '{path}': {reason}")]
    InvalidSymlink {
        /// Path inside the image.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Volume id, publisher or application id is not representable.
    #[error("invalid {field}: {reason}")]
    InvalidOption {
        /// The option name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The timestamp cannot be stored in ISO 9660 dates (years 1970..=2155 are accepted).
    #[error("timestamp {0} (unix seconds) is outside the supported range 1970-01-01..2155-12-31")]
    InvalidTimestamp(i64),
    /// A file source delivered a different number of bytes than declared.
    #[error("source for '{path}' delivered {actual} bytes but {expected} were declared; the input changed or the declared length is wrong")]
    SourceLength {
        /// Path inside the image.
        path: String,
        /// Declared length.
        expected: u64,
        /// Bytes actually delivered (for oversized file sources: at least this many).
        actual: u64,
    },
    /// Reading a source or a directory on disk failed.
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        /// What was being read ("file", "directory", "reader").
        what: &'static str,
        /// Path (on disk or inside the image).
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing to the output sink failed.
    #[error("cannot write image: {0}")]
    Write(#[source] std::io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = IsoError> = std::result::Result<T, E>;
