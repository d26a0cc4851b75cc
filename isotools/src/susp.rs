//! System Use Sharing Protocol (IEEE P1281) and Rock Ridge (IEEE P1282, RRIP 1.10) entries.

use crate::encode::both32;

/// POSIX file type bits used in PX.
pub(crate) const S_IFDIR: u32 = 0o040_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFLNK: u32 = 0o120_000;

/// Length of a CE entry.
pub(crate) const CE_LEN: usize = 28;

const ER_ID: &[u8] = b"RRIP_1991A";
const ER_DES: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SRC: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

fn header(out: &mut Vec<u8>, sig: &[u8; 2], len: usize) {
    debug_assert!(len <= 255);
    out.extend_from_slice(sig);
    out.push(len as u8);
    out.push(1);
}

/// SP: marks SUSP use; must be the first entry of the root's "." record.
pub(crate) fn sp() -> Vec<u8> {
    let mut v = Vec::with_capacity(7);
    header(&mut v, b"SP", 7);
    v.extend_from_slice(&[0xBE, 0xEF, 0]);
    v
}

/// ER: identifies the Rock Ridge extension (lives in the root's continuation area).
pub(crate) fn er() -> Vec<u8> {
    let len = 8 + ER_ID.len() + ER_DES.len() + ER_SRC.len();
    let mut v = Vec::with_capacity(len);
    header(&mut v, b"ER", len);
    v.extend_from_slice(&[ER_ID.len() as u8, ER_DES.len() as u8, ER_SRC.len() as u8, 1]);
    v.extend_from_slice(ER_ID);
    v.extend_from_slice(ER_DES);
    v.extend_from_slice(ER_SRC);
    v
}

/// PX: POSIX mode (with type bits), link count, uid, gid.
pub(crate) fn px(mode: u32, nlink: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(36);
    header(&mut v, b"PX", 36);
    v.extend_from_slice(&both32(mode));
    v.extend_from_slice(&both32(nlink));
    v.extend_from_slice(&both32(0));
    v.extend_from_slice(&both32(0));
    v
}

/// TF: modification time only (7-byte form).
pub(crate) fn tf(date: [u8; 7]) -> Vec<u8> {
    let mut v = Vec::with_capacity(12);
    header(&mut v, b"TF", 12);
    v.push(0x02);
    v.extend_from_slice(&date);
    v
}

/// NM: the alternate (POSIX) name. Names are at most 255 bytes, so a name
/// longer than 250 bytes is split over two NM entries with the CONTINUE flag.
pub(crate) fn nm(name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut v = Vec::with_capacity(bytes.len() + 10);
    let mut chunks = bytes.chunks(250).peekable();
    while let Some(chunk) = chunks.next() {
        header(&mut v, b"NM", 5 + chunk.len());
        v.push(if chunks.peek().is_some() { 0x01 } else { 0x00 });
        v.extend_from_slice(chunk);
    }
    v
}

/// SL: a symbolic link target, as component records packed into SL entries.
/// Callers guarantee every component is at most 200 bytes.
pub(crate) fn sl(target: &str) -> Vec<u8> {
    let mut comps: Vec<Vec<u8>> = Vec::new();
    if target.starts_with('/') {
        comps.push(vec![0x08, 0]);
    }
    for part in target.split('/').filter(|p| !p.is_empty()) {
        match part {
            "." => comps.push(vec![0x02, 0]),
            ".." => comps.push(vec![0x04, 0]),
            _ => {
                let mut c = vec![0, part.len() as u8];
                c.extend_from_slice(part.as_bytes());
                comps.push(c);
            }
        }
    }
    // Group components into entries of at most 255 bytes.
    let mut groups: Vec<Vec<u8>> = vec![Vec::new()];
    for c in comps {
        let cur = groups.last_mut().map(|g| g.len()).unwrap_or(0);
        if 5 + cur + c.len() > 255 {
            groups.push(Vec::new());
        }
        if let Some(g) = groups.last_mut() {
            g.extend_from_slice(&c);
        }
    }
    let mut v = Vec::new();
    let n = groups.len();
    for (i, g) in groups.into_iter().enumerate() {
        header(&mut v, b"SL", 5 + g.len());
        v.push(if i + 1 < n { 0x01 } else { 0x00 });
        v.extend_from_slice(&g);
    }
    v
}

/// CE: points to the continuation area holding the rest of the entries.
pub(crate) fn ce(block: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(CE_LEN);
    header(&mut v, b"CE", CE_LEN);
    v.extend_from_slice(&both32(block));
    v.extend_from_slice(&both32(offset));
    v.extend_from_slice(&both32(len));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_lengths_match_headers() {
        for e in [sp(), er(), px(S_IFREG | 0o644, 1), tf([0; 7]), ce(1, 2, 3)] {
            assert_eq!(e[2] as usize, e.len(), "{:?}", &e[..2]);
        }
        let long = "n".repeat(255);
        let v = nm(&long);
        assert_eq!(v.len(), 255 + 10);
        assert_eq!(v[4], 0x01);
        assert_eq!(v[2], 255);
    }

    #[test]
    fn symlink_components() {
        let v = sl("/usr/../lib");
        assert_eq!(&v[..2], b"SL");
        assert_eq!(
            &v[5..],
            &[0x08, 0, 0, 3, b'u', b's', b'r', 0x04, 0, 0, 3, b'l', b'i', b'b']
        );
    }
}
