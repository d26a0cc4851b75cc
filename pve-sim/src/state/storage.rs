//! Storages: `local` (directory, files on disk) and `local-lvm` (thin
//! volumes kept in memory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;

/// Storage backends the simulator models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Dir,
    LvmThin,
}

impl StorageKind {
    pub fn plugin_type(self) -> &'static str {
        match self {
            StorageKind::Dir => "dir",
            StorageKind::LvmThin => "lvmthin",
        }
    }
}

/// A thin volume (VM disk) on an LVM-thin storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskVolume {
    pub vmid: u32,
    pub size: u64,
    pub ctime: u64,
}

/// One storage.
#[derive(Debug, Clone)]
pub struct Storage {
    pub id: String,
    pub kind: StorageKind,
    pub content: Vec<String>,
    pub total: u64,
    /// Directory for `Dir` storages: `<data-dir>/<id>`.
    pub path: PathBuf,
    /// Volumes of `LvmThin` storages, by volume name (`vm-101-disk-0`).
    pub disks: BTreeMap<String, DiskVolume>,
}

/// A volume as listed by `GET .../storage/{storage}/content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeInfo {
    pub volid: String,
    pub content: String,
    pub format: String,
    pub size: u64,
    pub ctime: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
}

/// Directory content types and their sub-directory.
const DIR_CONTENT: &[&str] = &["iso", "vztmpl", "backup", "import", "snippets"];

fn file_format(content: &str, name: &str) -> String {
    match content {
        "iso" => "iso".into(),
        "vztmpl" | "backup" => name
            .rsplit('.')
            .next()
            .map(|ext| format!("t{}", ext.trim_start_matches('t')))
            .unwrap_or_else(|| "raw".into()),
        _ => name.rsplit('.').next().unwrap_or("raw").to_string(),
    }
}

impl Storage {
    pub fn supports(&self, content: &str) -> bool {
        self.content.iter().any(|c| c == content)
    }

    /// Where files of `content` live in a directory storage.
    pub fn content_dir(&self, content: &str) -> PathBuf {
        self.path.join(content)
    }

    /// Lists volumes, optionally filtered by content type and owner VM.
    pub fn list(
        &self,
        content: Option<&str>,
        vmid: Option<u32>,
    ) -> std::io::Result<Vec<VolumeInfo>> {
        let mut out = Vec::new();
        match self.kind {
            StorageKind::Dir => {
                for ct in DIR_CONTENT.iter().filter(|c| self.supports(c)) {
                    if content.is_some_and(|c| c != *ct) || vmid.is_some() {
                        continue;
                    }
                    let dir = self.content_dir(ct);
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries {
                        let entry = entry?;
                        let meta = entry.metadata()?;
                        if !meta.is_file() {
                            continue;
                        }
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if name.starts_with('.') {
                            continue;
                        }
                        let ctime = meta
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map(|d| d.as_secs())
                            .unwrap_or_default();
                        out.push(VolumeInfo {
                            volid: format!("{}:{ct}/{name}", self.id),
                            content: ct.to_string(),
                            format: file_format(ct, &name),
                            size: meta.len(),
                            ctime,
                            vmid: None,
                        });
                    }
                }
            }
            StorageKind::LvmThin => {
                if content.is_none_or(|c| c == "images") {
                    for (name, disk) in &self.disks {
                        if vmid.is_some_and(|v| v != disk.vmid) {
                            continue;
                        }
                        out.push(VolumeInfo {
                            volid: format!("{}:{name}", self.id),
                            content: "images".into(),
                            format: "raw".into(),
                            size: disk.size,
                            ctime: disk.ctime,
                            vmid: Some(disk.vmid),
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.volid.cmp(&b.volid));
        Ok(out)
    }

    pub fn used(&self) -> u64 {
        self.list(None, None)
            .map(|v| v.iter().map(|x| x.size).sum())
            .unwrap_or_default()
    }

    /// Path of a directory-storage volume (`iso/name.iso`), if it is one.
    pub fn file_path(&self, rel: &str) -> Option<PathBuf> {
        let (ct, name) = rel.split_once('/')?;
        let valid = self.kind == StorageKind::Dir
            && DIR_CONTENT.contains(&ct)
            && !name.is_empty()
            && !name.contains('/')
            && name != ".."
            && name != ".";
        valid.then(|| self.content_dir(ct).join(name))
    }

    /// Whether a volume (name relative to the storage) exists.
    pub fn has_volume(&self, rel: &str) -> bool {
        match self.kind {
            StorageKind::Dir => self.file_path(rel).is_some_and(|p| p.is_file()),
            StorageKind::LvmThin => self.disks.contains_key(rel_disk_name(rel)),
        }
    }

    /// The next free `vm-<vmid>-disk-N` name.
    pub fn next_disk_name(&self, vmid: u32) -> String {
        (0..)
            .map(|n| format!("vm-{vmid}-disk-{n}"))
            .find(|n| !self.disks.contains_key(n))
            .unwrap_or_default()
    }
}

/// For linked clones (`base-9000-disk-0/vm-101-disk-0`) the own volume name.
pub fn rel_disk_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Splits `storage:rest` volume ids.
pub fn split_volid(volid: &str) -> Option<(&str, &str)> {
    volid.split_once(':')
}

/// PVE's upload file-name normalisation (non `[-_.a-zA-Z0-9]` → `_`).
pub fn normalize_filename(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_filename("my file (1).iso"), "my_file__1_.iso");
        assert_eq!(normalize_filename("../../etc/passwd"), "passwd");
        assert_eq!(
            rel_disk_name("base-9000-disk-0/vm-101-disk-0"),
            "vm-101-disk-0"
        );
        assert_eq!(split_volid("local:iso/a.iso"), Some(("local", "iso/a.iso")));
    }
}
