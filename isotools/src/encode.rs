//! Byte-level encoders for ECMA-119 structures (both-endian numbers, directory
//! records, path table records, volume descriptors).

/// Logical sector / block size used throughout.
pub const SECTOR: usize = 2048;

pub(crate) fn both16(v: u16) -> [u8; 4] {
    let l = v.to_le_bytes();
    let b = v.to_be_bytes();
    [l[0], l[1], b[0], b[1]]
}

pub(crate) fn both32(v: u32) -> [u8; 8] {
    let l = v.to_le_bytes();
    let b = v.to_be_bytes();
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

/// Size of a directory record without system use data.
pub(crate) fn record_base_len(id_len: usize) -> usize {
    33 + id_len + usize::from(id_len.is_multiple_of(2))
}

/// Fields of one directory record.
pub(crate) struct Record<'a> {
    pub extent: u32,
    pub size: u32,
    pub date: [u8; 7],
    pub is_dir: bool,
    pub identifier: &'a [u8],
    pub system_use: &'a [u8],
}

/// Total encoded length (always even, at most 255 when callers respect the budget).
pub(crate) fn record_len(id_len: usize, su_len: usize) -> usize {
    let n = record_base_len(id_len) + su_len;
    n + n % 2
}

pub(crate) fn push_record(out: &mut Vec<u8>, r: &Record<'_>) {
    let len = record_len(r.identifier.len(), r.system_use.len());
    debug_assert!(len <= 255);
    let start = out.len();
    out.push(len as u8);
    out.push(0); // extended attribute record length
    out.extend_from_slice(&both32(r.extent));
    out.extend_from_slice(&both32(r.size));
    out.extend_from_slice(&r.date);
    out.push(if r.is_dir { 0x02 } else { 0x00 });
    out.push(0); // file unit size
    out.push(0); // interleave gap
    out.extend_from_slice(&both16(1)); // volume sequence number
    out.push(r.identifier.len() as u8);
    out.extend_from_slice(r.identifier);
    if r.identifier.len().is_multiple_of(2) {
        out.push(0);
    }
    out.extend_from_slice(r.system_use);
    out.resize(start + len, 0);
}

/// Path table record length for an identifier.
pub(crate) fn path_record_len(id_len: usize) -> usize {
    8 + id_len + id_len % 2
}

pub(crate) fn push_path_record(
    out: &mut Vec<u8>,
    big_endian: bool,
    extent: u32,
    parent: u16,
    id: &[u8],
) {
    out.push(id.len() as u8);
    out.push(0);
    if big_endian {
        out.extend_from_slice(&extent.to_be_bytes());
        out.extend_from_slice(&parent.to_be_bytes());
    } else {
        out.extend_from_slice(&extent.to_le_bytes());
        out.extend_from_slice(&parent.to_le_bytes());
    }
    out.extend_from_slice(id);
    if id.len() % 2 == 1 {
        out.push(0);
    }
}

/// Text fields of a volume descriptor, already encoded for its character set.
pub(crate) struct VolumeText {
    pub system_id: Vec<u8>,
    pub volume_id: Vec<u8>,
    pub publisher_id: Vec<u8>,
    pub preparer_id: Vec<u8>,
    pub application_id: Vec<u8>,
    /// The padding unit: b" " for the primary, [0, 0x20] for Joliet.
    pub pad: &'static [u8],
}

/// Everything a primary (type 1) or Joliet supplementary (type 2) descriptor holds.
pub(crate) struct VolumeDescriptor<'a> {
    pub joliet: bool,
    pub text: &'a VolumeText,
    pub volume_space: u32,
    pub path_table_size: u32,
    pub l_table: u32,
    pub m_table: u32,
    pub root_record: &'a [u8],
    pub created: [u8; 17],
    pub unspecified: [u8; 17],
}

fn put_padded(buf: &mut [u8], value: &[u8], pad: &[u8]) {
    let mut i = 0;
    while i < buf.len() {
        buf[i] = pad[i % pad.len()];
        i += 1;
    }
    let n = value.len().min(buf.len());
    buf[..n].copy_from_slice(&value[..n]);
}

pub(crate) fn volume_descriptor(vd: &VolumeDescriptor<'_>) -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    s[0] = if vd.joliet { 2 } else { 1 };
    s[1..6].copy_from_slice(b"CD001");
    s[6] = 1;
    let t = vd.text;
    put_padded(&mut s[8..40], &t.system_id, t.pad);
    put_padded(&mut s[40..72], &t.volume_id, t.pad);
    s[80..88].copy_from_slice(&both32(vd.volume_space));
    if vd.joliet {
        s[88..91].copy_from_slice(b"%/E"); // UCS-2 level 3
    }
    s[120..124].copy_from_slice(&both16(1)); // volume set size
    s[124..128].copy_from_slice(&both16(1)); // volume sequence number
    s[128..132].copy_from_slice(&both16(SECTOR as u16));
    s[132..140].copy_from_slice(&both32(vd.path_table_size));
    s[140..144].copy_from_slice(&vd.l_table.to_le_bytes());
    s[148..152].copy_from_slice(&vd.m_table.to_be_bytes());
    s[156..156 + vd.root_record.len()].copy_from_slice(vd.root_record);
    put_padded(&mut s[190..318], b"", t.pad); // volume set id
    put_padded(&mut s[318..446], &t.publisher_id, t.pad);
    put_padded(&mut s[446..574], &t.preparer_id, t.pad);
    put_padded(&mut s[574..702], &t.application_id, t.pad);
    put_padded(&mut s[702..739], b"", t.pad); // copyright file
    put_padded(&mut s[739..776], b"", t.pad); // abstract file
    put_padded(&mut s[776..813], b"", t.pad); // bibliographic file
    s[813..830].copy_from_slice(&vd.created);
    s[830..847].copy_from_slice(&vd.created);
    s[847..864].copy_from_slice(&vd.unspecified);
    s[864..881].copy_from_slice(&vd.created);
    s[881] = 1; // file structure version
    s
}

pub(crate) fn terminator() -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    s[0] = 255;
    s[1..6].copy_from_slice(b"CD001");
    s[6] = 1;
    s
}

pub(crate) fn sectors_for(bytes: u64) -> u64 {
    bytes.div_ceil(SECTOR as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_endian() {
        assert_eq!(both16(0x0102), [2, 1, 1, 2]);
        assert_eq!(both32(0x01020304), [4, 3, 2, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn record_layout() {
        let mut out = Vec::new();
        push_record(
            &mut out,
            &Record {
                extent: 20,
                size: 2048,
                date: [1; 7],
                is_dir: true,
                identifier: &[0],
                system_use: &[],
            },
        );
        assert_eq!(out.len(), 34);
        assert_eq!(out[0], 34);
        assert_eq!(&out[2..10], &both32(20));
        assert_eq!(out[25], 2);
        assert_eq!(out[32], 1);
        // even identifier length gets a pad byte; odd total gets a trailing pad
        assert_eq!(record_len(2, 0), 36);
        assert_eq!(record_len(1, 7), 42);
    }
}
