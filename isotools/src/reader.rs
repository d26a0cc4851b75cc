//! A small, defensive ISO 9660 lister used by `isotools ls`.
//!
//! It is meant for people inspecting images, not as the verifier of our own
//! writer (tests use xorriso, isoinfo, 7z, bsdtar and `cdfs` for that). It must
//! never panic or allocate without bound on arbitrary input: every offset is
//! checked, directory sizes, entry counts, depth and continuation chains are
//! capped, and directory loops are detected.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};

const SECTOR: u64 = 2048;
/// Largest directory extent read (bytes).
pub const MAX_DIR_BYTES: u64 = 16 << 20;
/// Most entries listed per namespace.
pub const MAX_ENTRIES: usize = 200_000;
/// Deepest directory nesting followed.
pub const MAX_DEPTH: usize = 64;
const MAX_DESCRIPTORS: u64 = 64;
const MAX_CE_HOPS: usize = 8;
const MAX_NM_BYTES: usize = 1024;
/// Total bytes of paths kept in a listing.
pub const MAX_PATH_BYTES: usize = 64 << 20;
/// Total directory bytes read per namespace.
pub const MAX_DIR_TOTAL: u64 = 256 << 20;

/// Why an image could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading the image failed.
    #[error("cannot read image: {0}")]
    Io(#[from] io::Error),
    /// No ISO 9660 primary volume descriptor was found.
    #[error("not an ISO 9660 image: {0}")]
    NotIso(String),
    /// A structure points outside the image or is malformed.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// A safety limit was hit.
    #[error("image exceeds a listing limit: {0}")]
    Limit(String),
}

/// One file or directory seen in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Full path, `/`-separated; Rock Ridge names in the primary namespace when present.
    pub path: String,
    /// The raw ISO 9660 identifier (Joliet decoded from UCS-2), version included.
    pub iso_name: String,
    /// Whether this is a directory.
    pub is_dir: bool,
    /// Data length in bytes.
    pub size: u64,
}

/// The result of listing an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Primary volume identifier (trailing spaces removed).
    pub volume_id: String,
    /// Joliet volume identifier, when a Joliet descriptor exists.
    pub joliet_volume_id: Option<String>,
    /// Whether Rock Ridge (SUSP SP entry in the root) was found.
    pub rock_ridge: bool,
    /// Entries of the primary namespace (with Rock Ridge names when present).
    pub primary: Vec<Entry>,
    /// Entries of the Joliet namespace.
    pub joliet: Option<Vec<Entry>>,
}

struct Img<R> {
    r: R,
    len: u64,
}

impl<R: Read + Seek> Img<R> {
    fn read(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| ReadError::Corrupt("offset overflow".into()))?;
        if end > self.len {
            return Err(ReadError::Corrupt(format!(
                "range {offset}..{end} lies beyond the image end ({})",
                self.len
            )));
        }
        self.r.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len as usize];
        self.r.read_exact(&mut buf)?;
        Ok(buf)
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

fn trim_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_string()
}

fn ucs2(b: &[u8]) -> String {
    let units = b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn strip_version(name: &str) -> &str {
    let n = match name.rfind(';') {
        Some(i) if name[i + 1..].chars().all(|c| c.is_ascii_digit()) => &name[..i],
        _ => name,
    };
    match n.strip_suffix('.') {
        Some(s) if !s.is_empty() => s,
        _ => n,
    }
}

/// Lists an image from any seekable reader.
pub fn list<R: Read + Seek>(mut r: R) -> Result<Listing, ReadError> {
    let len = r.seek(SeekFrom::End(0))?;
    let mut img = Img { r, len };
    let mut primary_root = None;
    let mut joliet_root = None;
    let mut volume_id = String::new();
    let mut joliet_volume_id = None;
    for lba in 16..16 + MAX_DESCRIPTORS {
        if (lba + 1) * SECTOR > len {
            break;
        }
        let vd = img.read(lba * SECTOR, SECTOR)?;
        if &vd[1..6] != b"CD001" {
            break;
        }
        match vd[0] {
            1 if primary_root.is_none() => {
                volume_id = trim_text(&vd[40..72]);
                primary_root = Some(vd[156..190].to_vec());
            }
            2 if vd[88] == b'%' && vd[89] == b'/' && matches!(vd[90], b'@' | b'C' | b'E') => {
                joliet_volume_id = Some(ucs2(&vd[40..72]).trim_end().to_string());
                joliet_root = Some(vd[156..190].to_vec());
            }
            255 => break,
            _ => {}
        }
    }
    let primary_root =
        primary_root.ok_or_else(|| ReadError::NotIso("no primary volume descriptor".into()))?;
    let (primary, rock_ridge) = walk(&mut img, &primary_root, false)?;
    let joliet = match joliet_root {
        Some(root) => Some(walk(&mut img, &root, true)?.0),
        None => None,
    };
    Ok(Listing {
        volume_id,
        joliet_volume_id,
        rock_ridge,
        primary,
        joliet,
    })
}

/// Lists an image held in memory.
pub fn list_bytes(bytes: &[u8]) -> Result<Listing, ReadError> {
    list(io::Cursor::new(bytes))
}

struct Raw {
    extent: u32,
    size: u32,
    is_dir: bool,
    id: Vec<u8>,
    su: Vec<u8>,
}

fn parse_records(data: &[u8]) -> Result<Vec<Raw>, ReadError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let len = data[pos] as usize;
        if len == 0 {
            pos = (pos / SECTOR as usize + 1) * SECTOR as usize;
            continue;
        }
        if len < 34 || pos + len > data.len() {
            return Err(ReadError::Corrupt(format!(
                "bad directory record length {len}"
            )));
        }
        let rec = &data[pos..pos + len];
        let id_len = rec[32] as usize;
        if 33 + id_len > len {
            return Err(ReadError::Corrupt(
                "identifier longer than its record".into(),
            ));
        }
        let su_start = (33 + id_len + usize::from(id_len.is_multiple_of(2))).min(len);
        out.push(Raw {
            extent: le32(rec, 2),
            size: le32(rec, 10),
            is_dir: rec[25] & 0x02 != 0,
            id: rec[33..33 + id_len].to_vec(),
            su: rec[su_start..].to_vec(),
        });
        if out.len() > MAX_ENTRIES {
            return Err(ReadError::Limit(format!("more than {MAX_ENTRIES} records")));
        }
        pos += len;
    }
    Ok(out)
}

/// Scans SUSP entries: returns (NM name, found SP).
fn scan_susp<R: Read + Seek>(
    img: &mut Img<R>,
    su: &[u8],
) -> Result<(Option<String>, bool), ReadError> {
    let mut name: Vec<u8> = Vec::new();
    let mut has_nm = false;
    let mut has_sp = false;
    let mut area = su.to_vec();
    for _ in 0..=MAX_CE_HOPS {
        let mut next = None;
        let mut pos = 0usize;
        while pos + 4 <= area.len() {
            let sig = [area[pos], area[pos + 1]];
            let len = area[pos + 2] as usize;
            if len < 4 || pos + len > area.len() {
                break;
            }
            let e = &area[pos..pos + len];
            match &sig {
                b"SP" => has_sp = true,
                b"NM" if len >= 5 => {
                    has_nm = true;
                    if name.len() + len - 5 > MAX_NM_BYTES {
                        return Err(ReadError::Limit("alternate name too long".into()));
                    }
                    name.extend_from_slice(&e[5..]);
                }
                b"CE" if len >= 28 => {
                    next = Some((le32(e, 4), le32(e, 12), le32(e, 20)));
                }
                b"ST" => break,
                _ => {}
            }
            pos += len;
        }
        match next {
            Some((block, off, clen)) if u64::from(clen) <= SECTOR => {
                area = img.read(u64::from(block) * SECTOR + u64::from(off), u64::from(clen))?;
            }
            Some(_) => {
                return Err(ReadError::Corrupt(
                    "continuation area larger than a sector".into(),
                ))
            }
            None => break,
        }
    }
    Ok((
        has_nm.then(|| String::from_utf8_lossy(&name).into_owned()),
        has_sp,
    ))
}

fn walk<R: Read + Seek>(
    img: &mut Img<R>,
    root: &[u8],
    joliet: bool,
) -> Result<(Vec<Entry>, bool), ReadError> {
    let root_extent = le32(root, 2);
    let root_size = le32(root, 10);
    let mut entries = Vec::new();
    let mut visited = HashSet::new();
    let mut rock_ridge = false;
    let mut path_bytes = 0usize;
    let mut dir_bytes = 0u64;
    let mut stack = vec![(root_extent, root_size, String::new(), 0usize)];
    while let Some((extent, size, prefix, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(ReadError::Limit(format!(
                "directories nested deeper than {MAX_DEPTH}"
            )));
        }
        if !visited.insert(extent) {
            return Err(ReadError::Corrupt(format!(
                "directory loop at block {extent}"
            )));
        }
        dir_bytes += u64::from(size);
        if u64::from(size) > MAX_DIR_BYTES || dir_bytes > MAX_DIR_TOTAL {
            return Err(ReadError::Limit(format!("directory of {size} bytes")));
        }
        let data = img.read(u64::from(extent) * SECTOR, u64::from(size))?;
        for rec in parse_records(&data)? {
            if rec.id == [0] {
                if depth == 0 && !joliet {
                    rock_ridge = scan_susp(img, &rec.su)?.1;
                }
                continue;
            }
            if rec.id == [1] {
                continue;
            }
            let iso_name = if joliet {
                ucs2(&rec.id)
            } else {
                String::from_utf8_lossy(&rec.id).into_owned()
            };
            let rr_name = if rock_ridge && !joliet {
                scan_susp(img, &rec.su)?.0
            } else {
                None
            };
            let shown = rr_name.unwrap_or_else(|| strip_version(&iso_name).to_string());
            let path = format!("{prefix}/{shown}");
            path_bytes += path.len();
            if path_bytes > MAX_PATH_BYTES {
                return Err(ReadError::Limit("listing larger than 64 MiB".into()));
            }
            if rec.is_dir {
                stack.push((rec.extent, rec.size, path.clone(), depth + 1));
            }
            entries.push(Entry {
                path,
                iso_name,
                is_dir: rec.is_dir,
                size: u64::from(rec.size),
            });
            if entries.len() > MAX_ENTRIES {
                return Err(ReadError::Limit(format!("more than {MAX_ENTRIES} entries")));
            }
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((entries, rock_ridge))
}

/// Renders a listing for people.
pub fn render(l: &Listing) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "Volume id: {}", l.volume_id);
    if let Some(j) = &l.joliet_volume_id {
        let _ = writeln!(s, "Joliet volume id: {j}");
    }
    let _ = writeln!(s, "Rock Ridge: {}", if l.rock_ridge { "yes" } else { "no" });
    let section = |s: &mut String, title: &str, entries: &[Entry]| {
        let _ = writeln!(s, "\n[{title}]");
        for e in entries {
            let kind = if e.is_dir { 'd' } else { '-' };
            let _ = writeln!(s, "{kind} {:>12}  {}  ({})", e.size, e.path, e.iso_name);
        }
    };
    let title = if l.rock_ridge {
        "primary + Rock Ridge"
    } else {
        "primary"
    };
    section(&mut s, title, &l.primary);
    if let Some(j) = &l.joliet {
        section(&mut s, "Joliet", j);
    }
    s
}
