//! Public builder API: describe the tree, lay it out, then stream it to any `Write`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::encode::SECTOR;
use crate::error::{IsoError, Result};
use crate::layout::{self, Plan, Resolved};
use crate::time::IsoTime;
use crate::tree::{Kind, Source, Tree, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};

/// Image-wide options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoOptions {
    /// Volume label (1-32 printable ASCII characters, stored verbatim, so `cidata`
    /// stays lower case like genisoimage/xorriso do). Joliet gets its first 16 characters.
    pub volume_id: String,
    /// Publisher identifier (up to 128 printable ASCII characters).
    pub publisher_id: String,
    /// Data preparer identifier (up to 128 printable ASCII characters).
    pub preparer_id: String,
    /// Application identifier (up to 128 printable ASCII characters).
    pub application_id: String,
    /// Write a Joliet supplementary volume (Windows names). Default: on.
    pub joliet: bool,
    /// Write Rock Ridge entries in the primary volume (POSIX names, modes, symlinks). Default: on.
    pub rock_ridge: bool,
    /// Unix time used for every date in the image. `None` means "now" at build time;
    /// set it for byte-identical (reproducible) output.
    pub timestamp: Option<i64>,
}

impl Default for IsoOptions {
    fn default() -> Self {
        IsoOptions {
            volume_id: "CDROM".into(),
            publisher_id: String::new(),
            preparer_id: String::new(),
            application_id: "ISOTOOLS".into(),
            joliet: true,
            rock_ridge: true,
            timestamp: None,
        }
    }
}

fn check_text(field: &'static str, value: &str, max: usize, required: bool) -> Result<()> {
    let bad = |reason: String| IsoError::InvalidOption { field, reason };
    if required && value.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if value.len() > max {
        return Err(bad(format!(
            "{:?} is {} characters; at most {max} allowed",
            value,
            value.len()
        )));
    }
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(bad(format!(
            "{value:?} contains {c:?}; only printable ASCII is allowed"
        )));
    }
    Ok(())
}

impl IsoOptions {
    fn resolve(&self) -> Result<Resolved> {
        check_text("volume id", &self.volume_id, 32, true)?;
        check_text("publisher id", &self.publisher_id, 128, false)?;
        check_text("preparer id", &self.preparer_id, 128, false)?;
        check_text("application id", &self.application_id, 128, false)?;
        let ts = match self.timestamp {
            Some(t) => t,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        };
        Ok(Resolved {
            volume_id: self.volume_id.clone(),
            publisher_id: self.publisher_id.clone(),
            preparer_id: self.preparer_id.clone(),
            application_id: self.application_id.clone(),
            joliet: self.joliet,
            rock_ridge: self.rock_ridge,
            time: IsoTime::from_unix(ts)?,
        })
    }
}

/// Collects the tree of an image. Paths use `/` separators; missing parent
/// directories are created. Nothing is read from readers or disk files until
/// [`IsoImage::write_to`].
#[derive(Debug)]
pub struct IsoBuilder {
    options: IsoOptions,
    tree: Tree,
}

impl IsoBuilder {
    /// A builder with the given options.
    pub fn new(options: IsoOptions) -> Self {
        IsoBuilder {
            options,
            tree: Tree::new(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &IsoOptions {
        &self.options
    }

    /// Mutable access to the options.
    pub fn options_mut(&mut self) -> &mut IsoOptions {
        &mut self.options
    }

    /// Adds a file held in memory (mode 0644).
    pub fn add_bytes(&mut self, path: &str, data: impl Into<Vec<u8>>) -> Result<&mut Self> {
        self.add_bytes_with_mode(path, data, DEFAULT_FILE_MODE)
    }

    /// Adds a file held in memory with explicit permission bits.
    pub fn add_bytes_with_mode(
        &mut self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<&mut Self> {
        let data = data.into();
        let size = data.len() as u64;
        self.tree.add_leaf(
            path,
            mode,
            Kind::File {
                size,
                source: Some(Source::Bytes(data)),
            },
        )?;
        Ok(self)
    }

    /// Adds a file whose `len` bytes are streamed from `reader` while writing.
    /// The reader must deliver exactly `len` bytes (fewer is an error; extra bytes
    /// are not read).
    pub fn add_reader(
        &mut self,
        path: &str,
        len: u64,
        reader: impl Read + Send + 'static,
    ) -> Result<&mut Self> {
        self.tree.add_leaf(
            path,
            DEFAULT_FILE_MODE,
            Kind::File {
                size: len,
                source: Some(Source::Reader(Box::new(reader))),
            },
        )?;
        Ok(self)
    }

    /// Adds a file from disk; its length is taken now, its bytes are streamed
    /// while writing (a size change in between is reported as an error).
    pub fn add_file(&mut self, path: &str, disk_path: impl AsRef<Path>) -> Result<&mut Self> {
        let disk_path = disk_path.as_ref();
        let meta = fs::metadata(disk_path).map_err(|e| read_err("file", disk_path, e))?;
        self.tree.add_leaf(
            path,
            file_mode(&meta, DEFAULT_FILE_MODE),
            Kind::File {
                size: meta.len(),
                source: Some(Source::Path(disk_path.to_path_buf())),
            },
        )?;
        Ok(self)
    }

    /// Creates a directory (and parents). Adding an existing directory is a no-op.
    pub fn add_dir(&mut self, path: &str) -> Result<&mut Self> {
        self.tree.add_dir(path, DEFAULT_DIR_MODE)?;
        Ok(self)
    }

    /// Adds a symbolic link (Rock Ridge only; not visible in Joliet).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        self.tree.add_leaf(
            path,
            0o777,
            Kind::Symlink {
                target: target.to_string(),
            },
        )?;
        Ok(self)
    }

    /// Adds the contents of `disk_dir` (recursively) under `iso_dir` (use `""` or `/`
    /// for the root). Modes are kept; symlinks are stored as symlinks; devices,
    /// FIFOs and sockets are refused; non-UTF-8 names are refused.
    pub fn add_tree(&mut self, iso_dir: &str, disk_dir: impl AsRef<Path>) -> Result<&mut Self> {
        let disk_dir = disk_dir.as_ref();
        let meta = fs::metadata(disk_dir).map_err(|e| read_err("directory", disk_dir, e))?;
        if !meta.is_dir() {
            return Err(read_err(
                "directory",
                disk_dir,
                io::Error::other("not a directory"),
            ));
        }
        self.tree
            .add_dir(iso_dir, file_mode(&meta, DEFAULT_DIR_MODE))?;
        let mut stack = vec![(
            iso_dir.trim_end_matches('/').to_string(),
            disk_dir.to_path_buf(),
        )];
        while let Some((iso, dir)) = stack.pop() {
            let rd = fs::read_dir(&dir).map_err(|e| read_err("directory", &dir, e))?;
            for entry in rd {
                let entry = entry.map_err(|e| read_err("directory", &dir, e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    return Err(IsoError::NonUtf8Name {
                        parent: dir.clone(),
                        lossy: name.to_string_lossy().into_owned(),
                    });
                };
                let iso_path = format!("{iso}/{name}");
                let disk = entry.path();
                let meta = fs::symlink_metadata(&disk).map_err(|e| read_err("file", &disk, e))?;
                let ft = meta.file_type();
                if ft.is_dir() {
                    self.tree
                        .add_dir(&iso_path, file_mode(&meta, DEFAULT_DIR_MODE))?;
                    stack.push((iso_path, disk));
                } else if ft.is_file() {
                    self.tree.add_leaf(
                        &iso_path,
                        file_mode(&meta, DEFAULT_FILE_MODE),
                        Kind::File {
                            size: meta.len(),
                            source: Some(Source::Path(disk)),
                        },
                    )?;
                } else if ft.is_symlink() {
                    let target = fs::read_link(&disk).map_err(|e| read_err("symlink", &disk, e))?;
                    let Some(target) = target.to_str() else {
                        return Err(IsoError::InvalidSymlink {
                            path: iso_path,
                            reason: "the target is not valid UTF-8".into(),
                        });
                    };
                    self.add_symlink(&iso_path, target)?;
                } else {
                    return Err(read_err(
                        "file",
                        &disk,
                        io::Error::other("unsupported file type (device, FIFO or socket); remove it from the source tree"),
                    ));
                }
            }
        }
        Ok(self)
    }

    /// Validates names and limits and lays out the image. After this the exact
    /// size is known ([`IsoImage::size`]).
    pub fn build(self) -> Result<IsoImage> {
        let resolved = self.options.resolve()?;
        let plan = layout::plan(&self.tree, &resolved)?;
        Ok(IsoImage {
            tree: self.tree,
            plan,
            progress: None,
        })
    }
}

fn read_err(what: &'static str, path: &Path, source: io::Error) -> IsoError {
    IsoError::Read {
        what,
        path: path.display().to_string(),
        source,
    }
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata, _default: u32) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_meta: &fs::Metadata, default: u32) -> u32 {
    default
}

/// Progress callback: `(bytes written so far, total bytes)`.
pub type ProgressFn = Box<dyn FnMut(u64, u64) + Send>;

/// A laid-out image, ready to be written once.
pub struct IsoImage {
    tree: Tree,
    plan: Plan,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for IsoImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsoImage")
            .field("size", &self.size())
            .field("files", &self.plan.files.len())
            .finish()
    }
}

/// Large sources are copied in pieces of this size so progress advances.
const PROGRESS_CHUNK: u64 = 64 << 20;
static ZEROS: [u8; SECTOR] = [0; SECTOR];

impl IsoImage {
    /// Exact number of bytes [`IsoImage::write_to`] will write (e.g. for Content-Length).
    pub fn size(&self) -> u64 {
        self.plan.total_sectors * SECTOR as u64
    }

    /// Calls `f(written, total)` after the metadata and after every file (or 64 MiB piece).
    pub fn on_progress(&mut self, f: impl FnMut(u64, u64) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// Writes the whole image sequentially; never seeks. Returns the bytes written.
    pub fn write_to<W: Write>(mut self, mut out: W) -> Result<u64> {
        let total = self.size();
        out.write_all(&self.plan.meta).map_err(IsoError::Write)?;
        let mut written = self.plan.meta.len() as u64;
        self.report(written, total);
        let files = std::mem::take(&mut self.plan.files);
        for (node, size) in files {
            let path = self.tree.path_of(node);
            let source = match &mut self.tree.nodes[node].kind {
                Kind::File { source, .. } => source.take(),
                _ => None,
            };
            match source {
                Some(Source::Bytes(b)) => {
                    out.write_all(&b).map_err(IsoError::Write)?;
                    written += b.len() as u64;
                }
                Some(Source::Reader(mut r)) => {
                    written = self.copy(&mut r, &mut out, &path, size, written, total)?;
                }
                Some(Source::Path(p)) => {
                    let mut f = File::open(&p).map_err(|e| read_err("file", &p, e))?;
                    let now = f.metadata().map_err(|e| read_err("file", &p, e))?.len();
                    if now != size {
                        return Err(IsoError::SourceLength {
                            path,
                            expected: size,
                            actual: now,
                        });
                    }
                    written = self.copy(&mut f, &mut out, &path, size, written, total)?;
                }
                None => {
                    return Err(IsoError::Read {
                        what: "file",
                        path,
                        source: io::Error::other("source already consumed"),
                    })
                }
            }
            let pad = (SECTOR as u64 - size % SECTOR as u64) % SECTOR as u64;
            out.write_all(&ZEROS[..pad as usize])
                .map_err(IsoError::Write)?;
            written += pad;
            self.report(written, total);
        }
        out.flush().map_err(IsoError::Write)?;
        debug_assert_eq!(written, total);
        Ok(written)
    }

    fn report(&mut self, written: u64, total: u64) {
        if let Some(f) = self.progress.as_mut() {
            f(written, total);
        }
    }

    /// Copies exactly `size` bytes. `io::copy` on `Take<File>` into a `File` uses
    /// `copy_file_range`/`sendfile` on Linux, which is what keeps case (c) of the
    /// benchmark close to `cp`.
    fn copy<R: Read + ?Sized, W: Write>(
        &mut self,
        src: &mut R,
        out: &mut W,
        path: &str,
        size: u64,
        mut written: u64,
        total: u64,
    ) -> Result<u64> {
        let mut left = size;
        while left > 0 {
            let piece = left.min(PROGRESS_CHUNK);
            let n = io::copy(&mut src.take(piece), out).map_err(|e| IsoError::Read {
                what: "file",
                path: format!("{path} (copying into the image)"),
                source: e,
            })?;
            written += n;
            left -= n;
            if n < piece {
                return Err(IsoError::SourceLength {
                    path: path.to_string(),
                    expected: size,
                    actual: size - left,
                });
            }
            if left > 0 {
                self.report(written, total);
            }
        }
        Ok(written)
    }
}
