//! Layout: validates the tree, assigns names and sectors, and encodes every
//! structure that precedes the file data (the "metadata area").
//!
//! Sector map: system area (0-15), primary VD, Joliet SVD, terminator, path
//! tables (primary L, M, Joliet L, M), primary directories (each followed by
//! its SUSP continuation sectors), Joliet directories, then file data in primary directory order. Joliet
//! and primary records point at the same file extents.

use std::collections::VecDeque;

use crate::encode::{
    self, path_record_len, push_path_record, push_record, record_len, sectors_for, Record,
    VolumeDescriptor, VolumeText, SECTOR,
};
use crate::error::{IsoError, Result};
use crate::names::{self, assign_primary, joliet_identifier};
use crate::susp;
use crate::time::{unspecified_volume_date, IsoTime};
use crate::tree::{Kind, Tree, ROOT};

/// ECMA-119 6.8.2.1: at most 8 directory levels, root included.
pub const MAX_DIR_LEVELS: usize = 8;
/// Longest accepted symlink target in bytes.
pub const MAX_SYMLINK_TARGET: usize = 1024;

/// Options after validation.
pub(crate) struct Resolved {
    pub volume_id: String,
    pub publisher_id: String,
    pub preparer_id: String,
    pub application_id: String,
    pub joliet: bool,
    pub rock_ridge: bool,
    pub time: IsoTime,
}

/// The computed image: metadata bytes plus the file extents that follow them.
pub(crate) struct Plan {
    pub meta: Vec<u8>,
    /// Files in data order: (node, size). Each starts on a sector boundary.
    pub files: Vec<(usize, u64)>,
    pub total_sectors: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dot {
    No,
    Current,
    Parent,
}

/// One directory record to emit in a namespace.
struct Rec {
    id: Vec<u8>,
    /// Node the record describes (for "." / ".." the directory itself / its parent).
    node: usize,
    dot: Dot,
    inline: Vec<u8>,
    overflow: Vec<u8>,
    /// Where the overflow was placed: (block, offset).
    ce: Option<(u32, u32)>,
}

impl Rec {
    fn su_len(&self) -> usize {
        self.inline.len()
            + if self.overflow.is_empty() {
                0
            } else {
                susp::CE_LEN
            }
    }
    fn len(&self) -> usize {
        record_len(self.id.len(), self.su_len())
    }
}

/// One namespace (primary+RR or Joliet).
struct Namespace {
    /// Directories in path-table order (BFS, children sorted by identifier).
    dirs: Vec<usize>,
    /// Records per directory, parallel to `dirs`.
    records: Vec<Vec<Rec>>,
    /// Directory extent (block, bytes), parallel to `dirs`.
    extents: Vec<(u32, u32)>,
    /// Path-table identifier per directory, parallel to `dirs`.
    pt_ids: Vec<Vec<u8>>,
    /// Position of each node's directory in `dirs` (usize::MAX if not a dir).
    dir_pos: Vec<usize>,
    path_table_size: usize,
}

impl Namespace {
    fn dir_sectors(records: &[Rec]) -> u64 {
        let mut sectors = 1u64;
        let mut pos = 0usize;
        for r in records {
            let len = r.len();
            if pos + len > SECTOR {
                sectors += 1;
                pos = 0;
            }
            pos += len;
        }
        sectors
    }
}

fn validate(tree: &Tree, opts: &Resolved) -> Result<()> {
    let mut level = vec![0usize; tree.nodes.len()];
    level[ROOT] = 1;
    // Nodes are appended after their parent, so a forward scan sees parents first.
    for (idx, node) in tree.nodes.iter().enumerate().skip(1) {
        let path = || tree.path_of(idx);
        names::check_basic(&path(), &node.name)?;
        match &node.kind {
            Kind::Dir { .. } => {
                level[idx] = level[node.parent] + 1;
                if level[idx] > MAX_DIR_LEVELS {
                    return Err(IsoError::TooDeep {
                        path: path(),
                        level: level[idx],
                    });
                }
            }
            Kind::File { size, .. } => {
                if *size > u64::from(u32::MAX) {
                    return Err(IsoError::FileTooLarge {
                        path: path(),
                        size: *size,
                    });
                }
            }
            Kind::Symlink { target } => {
                let bad = |reason: &str| IsoError::InvalidSymlink {
                    path: path(),
                    reason: reason.to_string(),
                };
                if !opts.rock_ridge {
                    return Err(bad("symbolic links can only be stored with Rock Ridge; enable Rock Ridge or add the target file instead"));
                }
                if target.is_empty() || target.len() > MAX_SYMLINK_TARGET {
                    return Err(bad("the target must be 1 to 1024 bytes long"));
                }
                if target.split('/').any(|c| c.len() > 200) || target.contains('\0') {
                    return Err(bad(
                        "each target component must be at most 200 bytes and contain no NUL",
                    ));
                }
            }
        }
        if opts.joliet && !matches!(node.kind, Kind::Symlink { .. }) {
            names::joliet_units(&path(), &node.name)?;
        }
    }
    Ok(())
}

/// Sorted `(identifier, child)` pairs of one directory in the primary namespace.
fn primary_children(tree: &Tree, dir: usize) -> Vec<(Vec<u8>, usize)> {
    let kids: Vec<usize> = tree.children(dir).collect(); // BTreeMap order: by original name
    let input: Vec<(&str, bool)> = kids
        .iter()
        .map(|&k| (tree.nodes[k].name.as_str(), !tree.nodes[k].is_dir()))
        .collect();
    let mut named: Vec<_> = assign_primary(&input).into_iter().zip(kids).collect();
    named.sort_by(|a, b| (&a.0.base, &a.0.ext).cmp(&(&b.0.base, &b.0.ext)));
    named
        .into_iter()
        .map(|(p, k)| (p.identifier(), k))
        .collect()
}

/// Sorted `(identifier, child)` pairs of one directory in the Joliet namespace.
fn joliet_children(tree: &Tree, dir: usize) -> Vec<(Vec<u8>, usize)> {
    let mut named: Vec<(Vec<u16>, usize)> = tree
        .children(dir)
        .filter(|&k| !matches!(tree.nodes[k].kind, Kind::Symlink { .. }))
        .map(|k| (tree.nodes[k].name.encode_utf16().collect(), k))
        .collect();
    named.sort();
    named
        .into_iter()
        .map(|(u, k)| (joliet_identifier(&u), k))
        .collect()
}

fn subdir_count(tree: &Tree, dir: usize) -> u32 {
    tree.children(dir)
        .filter(|&k| tree.nodes[k].is_dir())
        .count() as u32
}

/// Rock Ridge entries for a record: (inline, overflow).
fn rr_entries(
    tree: &Tree,
    rec_node: usize,
    dot: Dot,
    id_len: usize,
    opts: &Resolved,
) -> (Vec<u8>, Vec<u8>) {
    let node = &tree.nodes[rec_node];
    let date = opts.time.record_bytes();
    let (mode, nlink) = match &node.kind {
        Kind::Dir { .. } => (susp::S_IFDIR | node.mode, 2 + subdir_count(tree, rec_node)),
        Kind::File { .. } => (susp::S_IFREG | node.mode, 1),
        Kind::Symlink { .. } => (susp::S_IFLNK | 0o777, 1),
    };
    let mut fixed = Vec::new();
    let is_root_dot = rec_node == ROOT && dot == Dot::Current;
    if is_root_dot {
        fixed.extend_from_slice(&susp::sp());
    }
    fixed.extend_from_slice(&susp::px(mode, nlink));
    fixed.extend_from_slice(&susp::tf(date));
    if is_root_dot {
        return (fixed, susp::er());
    }
    let mut extra = Vec::new();
    if dot == Dot::No {
        extra.extend_from_slice(&susp::nm(&node.name));
        if let Kind::Symlink { target } = &node.kind {
            extra.extend_from_slice(&susp::sl(target));
        }
    }
    if record_len(id_len, fixed.len() + extra.len()) <= 255 {
        fixed.extend_from_slice(&extra);
        (fixed, Vec::new())
    } else {
        (fixed, extra)
    }
}

fn build_namespace(tree: &Tree, opts: &Resolved, joliet: bool) -> Namespace {
    let mut dirs = Vec::new();
    let mut pt_ids = Vec::new();
    let mut dir_pos = vec![usize::MAX; tree.nodes.len()];
    let mut children_of: Vec<Vec<(Vec<u8>, usize)>> = Vec::new();
    let mut queue = VecDeque::from([(ROOT, vec![0u8])]);
    while let Some((dir, id)) = queue.pop_front() {
        dir_pos[dir] = dirs.len();
        dirs.push(dir);
        pt_ids.push(id);
        let kids = if joliet {
            joliet_children(tree, dir)
        } else {
            primary_children(tree, dir)
        };
        for (kid_id, k) in &kids {
            if tree.nodes[*k].is_dir() {
                queue.push_back((*k, kid_id.clone()));
            }
        }
        children_of.push(kids);
    }
    let rr = opts.rock_ridge && !joliet;
    let records = dirs
        .iter()
        .zip(children_of)
        .map(|(&dir, kids)| {
            let parent = tree.nodes[dir].parent;
            let mut recs = Vec::with_capacity(kids.len() + 2);
            for (id, node, dot) in [
                (vec![0u8], dir, Dot::Current),
                (vec![1u8], parent, Dot::Parent),
            ]
            .into_iter()
            .chain(kids.into_iter().map(|(id, k)| (id, k, Dot::No)))
            {
                let (inline, overflow) = if rr {
                    rr_entries(tree, node, dot, id.len(), opts)
                } else {
                    (Vec::new(), Vec::new())
                };
                recs.push(Rec {
                    id,
                    node,
                    dot,
                    inline,
                    overflow,
                    ce: None,
                });
            }
            recs
        })
        .collect();
    let path_table_size = pt_ids.iter().map(|id| path_record_len(id.len())).sum();
    Namespace {
        extents: vec![(0, 0); dirs.len()],
        dirs,
        records,
        pt_ids,
        dir_pos,
        path_table_size,
    }
}

/// Validates, lays out and encodes the metadata area.
pub(crate) fn plan(tree: &Tree, opts: &Resolved) -> Result<Plan> {
    validate(tree, opts)?;
    let mut primary = build_namespace(tree, opts, false);
    let mut joliet = opts.joliet.then(|| build_namespace(tree, opts, true));
    if primary.dirs.len() > usize::from(u16::MAX) {
        return Err(IsoError::ImageTooLarge(format!(
            "{} directories; path tables allow at most 65535",
            primary.dirs.len()
        )));
    }

    // --- sector assignment -------------------------------------------------
    let mut next: u64 = 16;
    let pvd_at = next;
    next += 1;
    let svd_at = next;
    if joliet.is_some() {
        next += 1;
    }
    let term_at = next;
    next += 1;
    let tables = |ns: &Namespace, next: &mut u64| {
        let secs = sectors_for(ns.path_table_size as u64);
        let l = *next;
        let m = l + secs;
        *next = m + secs;
        (l as u32, m as u32)
    };
    let p_tables = tables(&primary, &mut next);
    let j_tables = joliet.as_ref().map(|j| tables(j, &mut next));
    // Each primary directory is followed by its own SUSP continuation sectors:
    // streaming readers (libarchive) only pick up a CE area they reach while
    // reading forward, right after the directory that references it. Every
    // continuation area starts a sector of its own (offset 0) because some
    // readers (cdfs 0.2.3) ignore the CE offset field. Overflow only happens
    // for long Rock Ridge names and symlink targets, so the cost is small.
    for (i, recs) in primary.records.iter_mut().enumerate() {
        let secs = Namespace::dir_sectors(recs);
        primary.extents[i] = (next as u32, (secs as usize * SECTOR) as u32);
        next += secs;
        for r in recs.iter_mut().filter(|r| !r.overflow.is_empty()) {
            r.ce = Some((next as u32, 0));
            next += 1;
        }
    }
    if let Some(j) = joliet.as_mut() {
        for (i, recs) in j.records.iter().enumerate() {
            let secs = Namespace::dir_sectors(recs);
            j.extents[i] = (next as u32, (secs as usize * SECTOR) as u32);
            next += secs;
        }
    }
    let data_start = next;
    let mut files = Vec::new();
    let mut file_extent = vec![0u32; tree.nodes.len()];
    for recs in &primary.records {
        for r in recs.iter().filter(|r| r.dot == Dot::No) {
            if let Kind::File { size, .. } = tree.nodes[r.node].kind {
                files.push((r.node, size));
                if size > 0 {
                    file_extent[r.node] = next as u32;
                    next += sectors_for(size);
                }
            }
        }
    }
    let total_sectors = next;
    if total_sectors > u64::from(u32::MAX) {
        return Err(IsoError::ImageTooLarge(format!(
            "{total_sectors} sectors; ECMA-119 addresses at most 4294967295"
        )));
    }

    // --- encoding ------------------------------------------------------------
    let date = opts.time.record_bytes();
    let extent_of = |ns: &Namespace, node: usize| -> (u32, u32, bool) {
        match &tree.nodes[node].kind {
            Kind::Dir { .. } => {
                let (b, s) = ns.extents[ns.dir_pos[node]];
                (b, s, true)
            }
            Kind::File { size, .. } => (file_extent[node], *size as u32, false),
            Kind::Symlink { .. } => (0, 0, false),
        }
    };
    let mut meta = vec![0u8; (data_start as usize) * SECTOR];
    let root_record = |ns: &Namespace| {
        let mut v = Vec::with_capacity(34);
        let (b, s) = ns.extents[0];
        push_record(
            &mut v,
            &Record {
                extent: b,
                size: s,
                date,
                is_dir: true,
                identifier: &[0],
                system_use: &[],
            },
        );
        v
    };
    let created = opts.time.volume_bytes();
    let ascii = |s: &str| s.as_bytes().to_vec();
    let p_text = VolumeText {
        system_id: Vec::new(),
        volume_id: ascii(&opts.volume_id),
        publisher_id: ascii(&opts.publisher_id),
        preparer_id: ascii(&opts.preparer_id),
        application_id: ascii(&opts.application_id),
        pad: b" ",
    };
    let put = |meta: &mut Vec<u8>, sector: u64, bytes: &[u8]| {
        let at = sector as usize * SECTOR;
        meta[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let p_root = root_record(&primary);
    put(
        &mut meta,
        pvd_at,
        &encode::volume_descriptor(&VolumeDescriptor {
            joliet: false,
            text: &p_text,
            volume_space: total_sectors as u32,
            path_table_size: primary.path_table_size as u32,
            l_table: p_tables.0,
            m_table: p_tables.1,
            root_record: &p_root,
            created,
            unspecified: unspecified_volume_date(),
        }),
    );
    if let (Some(j), Some(jt)) = (&joliet, j_tables) {
        let ucs = |s: &str, max: usize| -> Vec<u8> {
            s.encode_utf16()
                .take(max)
                .flat_map(|u| u.to_be_bytes())
                .collect()
        };
        let j_text = VolumeText {
            system_id: Vec::new(),
            volume_id: ucs(&opts.volume_id, 16),
            publisher_id: ucs(&opts.publisher_id, 64),
            preparer_id: ucs(&opts.preparer_id, 64),
            application_id: ucs(&opts.application_id, 64),
            pad: &[0, 0x20],
        };
        let j_root = root_record(j);
        put(
            &mut meta,
            svd_at,
            &encode::volume_descriptor(&VolumeDescriptor {
                joliet: true,
                text: &j_text,
                volume_space: total_sectors as u32,
                path_table_size: j.path_table_size as u32,
                l_table: jt.0,
                m_table: jt.1,
                root_record: &j_root,
                created,
                unspecified: unspecified_volume_date(),
            }),
        );
    }
    put(&mut meta, term_at, &encode::terminator());

    for (ns, (l, m)) in std::iter::once((&primary, p_tables)).chain(joliet.as_ref().zip(j_tables)) {
        for (sector, big) in [(l, false), (m, true)] {
            let mut t = Vec::with_capacity(ns.path_table_size);
            for (i, &dir) in ns.dirs.iter().enumerate() {
                let parent = ns.dir_pos[tree.nodes[dir].parent] + 1;
                push_path_record(&mut t, big, ns.extents[i].0, parent as u16, &ns.pt_ids[i]);
            }
            put(&mut meta, u64::from(sector), &t);
        }
    }

    for (ns, rr) in
        std::iter::once((&primary, opts.rock_ridge)).chain(joliet.as_ref().map(|j| (j, false)))
    {
        for (i, recs) in ns.records.iter().enumerate() {
            let mut buf = Vec::with_capacity(ns.extents[i].1 as usize);
            let mut pos = 0usize;
            for r in recs {
                let len = r.len();
                if pos + len > SECTOR {
                    buf.resize(buf.len() + SECTOR - pos, 0);
                    pos = 0;
                }
                let (extent, size, is_dir) = extent_of(ns, r.node);
                let mut su = r.inline.clone();
                if let (true, Some((block, off))) = (rr, r.ce) {
                    su.extend_from_slice(&susp::ce(block, off, r.overflow.len() as u32));
                }
                push_record(
                    &mut buf,
                    &Record {
                        extent,
                        size,
                        date,
                        is_dir,
                        identifier: &r.id,
                        system_use: &su,
                    },
                );
                pos += len;
            }
            put(&mut meta, u64::from(ns.extents[i].0), &buf);
        }
    }
    for recs in &primary.records {
        for r in recs {
            if let Some((block, off)) = r.ce {
                let at = block as usize * SECTOR + off as usize;
                meta[at..at + r.overflow.len()].copy_from_slice(&r.overflow);
            }
        }
    }
    Ok(Plan {
        meta,
        files,
        total_sectors,
    })
}
