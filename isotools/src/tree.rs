//! The input model: a tree of directories, files (with their byte sources) and symlinks.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use crate::error::{IsoError, Result};
use crate::names;

/// Where the bytes of a file come from. Only [`Source::Bytes`] is held in memory;
/// the others are opened/read while the image is written.
pub(crate) enum Source {
    Bytes(Vec<u8>),
    Reader(Box<dyn Read + Send>),
    Path(PathBuf),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Source::Reader(_) => f.write_str("Reader"),
            Source::Path(p) => write!(f, "Path({})", p.display()),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Kind {
    Dir { children: BTreeMap<String, usize> },
    File { size: u64, source: Option<Source> },
    Symlink { target: String },
}

#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub parent: usize,
    pub mode: u32,
    pub kind: Kind,
}

impl Node {
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// Index of the root directory in [`Tree::nodes`].
pub(crate) const ROOT: usize = 0;

/// Default permission bits for directories and files added without a mode.
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Default permission bits for files added without a mode.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub(crate) fn new() -> Self {
        Tree {
            nodes: vec![Node {
                name: String::new(),
                parent: ROOT,
                mode: DEFAULT_DIR_MODE,
                kind: Kind::Dir {
                    children: BTreeMap::new(),
                },
            }],
        }
    }

    /// Full path of a node inside the image, for messages.
    pub(crate) fn path_of(&self, mut idx: usize) -> String {
        let mut parts = Vec::new();
        while idx != ROOT {
            parts.push(self.nodes[idx].name.as_str());
            idx = self.nodes[idx].parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    pub(crate) fn children(&self, idx: usize) -> impl Iterator<Item = usize> + '_ {
        let list = match &self.nodes[idx].kind {
            Kind::Dir { children } => Some(children.values().copied()),
            _ => None,
        };
        list.into_iter().flatten()
    }

    fn split(path: &str) -> Result<Vec<&str>> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for p in &parts {
            names::check_basic(path, p)?;
        }
        Ok(parts)
    }

    /// Returns the directory for `parts`, creating missing directories.
    fn ensure_dir(&mut self, full: &str, parts: &[&str]) -> Result<usize> {
        let mut cur = ROOT;
        for part in parts {
            let existing = match &self.nodes[cur].kind {
                Kind::Dir { children } => children.get(*part).copied(),
                _ => None,
            };
            cur = match existing {
                Some(i) if self.nodes[i].is_dir() => i,
                Some(i) => {
                    return Err(IsoError::Duplicate {
                        path: self.path_of(i),
                        reason: format!("'{full}' needs a directory here but a file was added"),
                    })
                }
                None => self.insert(
                    cur,
                    part,
                    DEFAULT_DIR_MODE,
                    Kind::Dir {
                        children: BTreeMap::new(),
                    },
                ),
            };
        }
        Ok(cur)
    }

    fn insert(&mut self, parent: usize, name: &str, mode: u32, kind: Kind) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(Node {
            name: name.to_string(),
            parent,
            mode,
            kind,
        });
        if let Kind::Dir { children } = &mut self.nodes[parent].kind {
            children.insert(name.to_string(), idx);
        }
        idx
    }

    /// Creates a directory (and its parents); an existing directory is kept (like `mkdir -p`).
    pub(crate) fn add_dir(&mut self, path: &str, mode: u32) -> Result<usize> {
        let parts = Self::split(path)?;
        let idx = self.ensure_dir(path, &parts)?;
        if idx != ROOT {
            self.nodes[idx].mode = mode & 0o7777;
        }
        Ok(idx)
    }

    /// Adds a leaf (file or symlink); refuses an existing name in the same directory.
    pub(crate) fn add_leaf(&mut self, path: &str, mode: u32, kind: Kind) -> Result<usize> {
        let parts = Self::split(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(IsoError::InvalidName {
                path: path.to_string(),
                name: String::new(),
                reason: "a file needs a name; the path names the root directory".into(),
            });
        };
        let parent = self.ensure_dir(path, dirs)?;
        if let Kind::Dir { children } = &self.nodes[parent].kind {
            if let Some(&i) = children.get(*name) {
                let what = if self.nodes[i].is_dir() {
                    "a directory"
                } else {
                    "an entry"
                };
                return Err(IsoError::Duplicate {
                    path: self.path_of(i),
                    reason: format!("{what} with this name was already added"),
                });
            }
        }
        Ok(self.insert(parent, name, mode & 0o7777, kind))
    }
}
