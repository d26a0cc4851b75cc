//! Shared helpers: build images from a spec and read them back with independent readers.
//!
//! Every external tool is required: a missing binary fails the test with the apt
//! package to install (CI installs xorriso, genisoimage, p7zip-full, libarchive-tools).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use isotools::{IsoBuilder, IsoOptions};

pub const FIXED_TIME: i64 = 1_700_000_000;

/// What an image should contain. Paths are relative, `/`-separated.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
    pub symlinks: BTreeMap<String, String>,
}

impl Spec {
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.to_string(), data.into());
        self
    }
    pub fn dir(mut self, path: &str) -> Self {
        self.dirs.insert(path.to_string());
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.symlinks.insert(path.to_string(), target.to_string());
        self
    }

    /// Every directory, including parents implied by files.
    pub fn all_dirs(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let all = self
            .files
            .keys()
            .chain(self.dirs.iter())
            .chain(self.symlinks.keys());
        for p in all {
            let parts: Vec<&str> = p.split('/').collect();
            let upto = if self.dirs.contains(p) {
                parts.len()
            } else {
                parts.len() - 1
            };
            for i in 1..=upto {
                out.insert(parts[..i].join("/"));
            }
        }
        out
    }

    /// Expected namespace view: (dirs, files) without symlinks.
    pub fn names(&self) -> Names {
        Names {
            dirs: self.all_dirs(),
            files: self.files.keys().cloned().collect(),
        }
    }

    pub fn builder(&self, options: IsoOptions) -> IsoBuilder {
        let mut b = IsoBuilder::new(options);
        for d in &self.dirs {
            b.add_dir(d).expect("add_dir");
        }
        for (p, data) in &self.files {
            if data.len() > 1 << 20 {
                // Large files go through the streaming reader path.
                let len = data.len() as u64;
                b.add_reader(p, len, std::io::Cursor::new(data.clone()))
                    .expect("add_reader");
            } else {
                b.add_bytes(p, data.clone()).expect("add_bytes");
            }
        }
        for (p, t) in &self.symlinks {
            b.add_symlink(p, t).expect("add_symlink");
        }
        b
    }

    /// Writes the spec as a directory tree on disk.
    pub fn materialize(&self, root: &Path) {
        fs::create_dir_all(root).unwrap();
        for d in self.all_dirs() {
            fs::create_dir_all(root.join(&d)).unwrap();
        }
        for (p, data) in &self.files {
            fs::write(root.join(p), data).unwrap();
        }
        for (p, t) in &self.symlinks {
            std::os::unix::fs::symlink(t, root.join(p)).unwrap();
        }
    }
}

pub fn options(label: &str) -> IsoOptions {
    IsoOptions {
        volume_id: label.into(),
        timestamp: Some(FIXED_TIME),
        ..IsoOptions::default()
    }
}

/// Builds the image into `dir/name`, checking that the declared size is what gets written.
pub fn write_image(b: IsoBuilder, dir: &Path, name: &str) -> PathBuf {
    let image = b.build().expect("build");
    let size = image.size();
    let path = dir.join(name);
    let written = image
        .write_to(fs::File::create(&path).unwrap())
        .expect("write_to");
    assert_eq!(written, size);
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    assert_eq!(size % 2048, 0);
    path
}

/// A set of directory and file paths as some reader sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub dirs: BTreeSet<String>,
    pub files: BTreeSet<String>,
}

fn install_hint(tool: &str) -> &'static str {
    match tool {
        "xorriso" => "apt-get install xorriso",
        "isoinfo" | "isovfy" | "genisoimage" => "apt-get install genisoimage",
        "7z" => "apt-get install p7zip-full",
        "bsdtar" => "apt-get install libarchive-tools",
        _ => "install it",
    }
}

/// Runs a tool and returns stdout; a missing tool or a failure fails the test.
pub fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}); {}", install_hint(tool)));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn img(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Parses one shell-quoted xorriso token starting at `s` (which begins with `'`).
fn unquote_xorriso(s: &str) -> (String, &str) {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    loop {
        match chars.next() {
            Some((_, '\'')) => {
                for (_, c) in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            Some((_, '"')) => {
                for (_, c) in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    out.push(c);
                }
            }
            Some((i, _)) => return (out, &s[i..]),
            None => return (out, ""),
        }
    }
}

/// `xorriso -indev IMG -find / -exec lsdl`: Rock Ridge names (plus symlink targets).
pub fn xorriso_names(image: &Path) -> (Names, BTreeMap<String, String>) {
    let out = run(
        "xorriso",
        &[
            "-abort_on",
            "FAILURE",
            "-indev",
            img(image),
            "-find",
            "/",
            "-exec",
            "lsdl",
        ],
    );
    let text = String::from_utf8(out).expect("xorriso output is UTF-8");
    let mut names = Names::default();
    let mut links = BTreeMap::new();
    for line in text.lines() {
        let Some(q) = line.find('\'') else { continue };
        let (path, rest) = unquote_xorriso(&line[q..]);
        let path = path.trim_start_matches('/').to_string();
        if path.is_empty() {
            continue;
        }
        match line.as_bytes()[0] {
            b'd' => {
                names.dirs.insert(path);
            }
            b'l' => {
                let t = rest.trim_start().trim_start_matches("->").trim_start();
                links.insert(path, unquote_xorriso(t).0);
            }
            _ => {
                names.files.insert(path);
            }
        }
    }
    (names, links)
}

/// `isoinfo -l [-R|-J] -i IMG`. Joliet names are printed in ISO-8859-1 by
/// isoinfo (other characters become `_`), so they are decoded as Latin-1.
pub fn isoinfo_names(image: &Path, flag: Option<&str>) -> Names {
    let mut args = vec!["-l"];
    args.extend(flag);
    args.extend(["-i", img(image)]);
    let out = run("isoinfo", &args);
    let latin1 = flag == Some("-J");
    let text: String = if latin1 {
        out.iter().map(|&b| b as char).collect()
    } else {
        String::from_utf8(out).expect("isoinfo output is UTF-8")
    };
    let mut names = Names::default();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("Directory listing of ") {
            cur = d.trim_start_matches('/').to_string();
            continue;
        }
        let Some(i) = line.find("]  ") else { continue };
        let mut name = line[i + 3..]
            .strip_suffix(' ')
            .unwrap_or(&line[i + 3..])
            .to_string();
        if name == "." || name == ".." {
            continue;
        }
        let kind = line.as_bytes()[0];
        if kind == b'l' {
            if let Some(j) = name.find(" -> ") {
                name.truncate(j);
            }
            continue; // symlinks are checked through xorriso and bsdtar
        }
        if flag != Some("-R") && kind != b'd' {
            name = name.strip_suffix(";1").unwrap_or(&name).to_string();
        }
        let path = format!("{cur}{name}");
        if kind == b'd' {
            names.dirs.insert(path);
        } else {
            names.files.insert(path);
        }
    }
    names
}

/// Asserts two name sets are equal, printing only the differences.
#[track_caller]
pub fn assert_names(got: &Names, want: &Names, what: &str) {
    if got == want {
        return;
    }
    let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b).cloned().collect()
    };
    panic!(
        "{what}: names differ\n  dirs only in reader: {:?}\n  dirs missing: {:?}\n  files only in reader: {:?}\n  files missing: {:?}",
        diff(&got.dirs, &want.dirs),
        diff(&want.dirs, &got.dirs),
        diff(&got.files, &want.files),
        diff(&want.files, &got.files)
    );
}

/// Asserts extracted contents equal the input, naming the first differing path.
#[track_caller]
pub fn assert_contents(
    got: &BTreeMap<String, Vec<u8>>,
    want: &BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    if got == want {
        return;
    }
    let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    for k in keys {
        let (g, w) = (got.get(k), want.get(k));
        if g != w {
            panic!(
                "{what}: content of {k:?} differs (reader: {:?} bytes, input: {:?} bytes)",
                g.map(Vec::len),
                w.map(Vec::len)
            );
        }
    }
}

/// How isoinfo prints a Joliet name: Latin-1 as-is, anything else as `_`.
pub fn isoinfo_joliet_view(n: &Names) -> Names {
    // One `_` per UTF-16 code unit: a non-BMP character (surrogate pair) prints as `__`.
    let map = |s: &String| -> String {
        s.chars()
            .flat_map(|c| {
                let n = if (c as u32) < 0x100 { 0 } else { c.len_utf16() };
                let keep = if n == 0 { Some(c) } else { None };
                keep.into_iter().chain(std::iter::repeat_n('_', n))
            })
            .collect()
    };
    Names {
        dirs: n.dirs.iter().map(map).collect(),
        files: n.files.iter().map(map).collect(),
    }
}

/// `isoinfo -d`: the primary volume id.
pub fn isoinfo_label(image: &Path) -> String {
    let out = String::from_utf8(run("isoinfo", &["-d", "-i", img(image)])).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("Volume id: "))
        .expect("isoinfo -d prints a volume id")
        .trim_end()
        .to_string()
}

/// `7z l -slt`: names (7-Zip reads the Joliet tree when present).
pub fn sevenz_names(image: &Path) -> Names {
    let out = String::from_utf8(run("7z", &["l", "-slt", "-sccUTF-8", img(image)])).unwrap();
    let mut names = Names::default();
    let mut path: Option<String> = None;
    let mut started = false;
    for line in out.lines() {
        if line.starts_with("----------") {
            started = true;
            continue;
        }
        if !started {
            continue;
        }
        if let Some(p) = line.strip_prefix("Path = ") {
            path = Some(p.to_string());
        } else if let Some(f) = line.strip_prefix("Folder = ") {
            if let Some(p) = path.take() {
                if f == "+" {
                    names.dirs.insert(p);
                } else {
                    names.files.insert(p);
                }
            }
        }
    }
    names
}

/// `bsdtar -tvf`: names (libarchive reads Rock Ridge when present, then Joliet).
/// Returns (names, symlinks).
pub fn bsdtar_names(image: &Path) -> (Names, BTreeMap<String, String>) {
    let out = String::from_utf8(run("bsdtar", &["-tvf", img(image)])).unwrap();
    let mut names = Names::default();
    let mut links = BTreeMap::new();
    for line in out.lines() {
        // perms links uid gid size month day year-or-time NAME
        let mut rest = line;
        for _ in 0..8 {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap_or(rest.len());
            rest = &rest[end..];
        }
        let name = rest.strip_prefix(' ').unwrap_or(rest);
        let name = name.strip_prefix("./").unwrap_or(name);
        if name == "." || name.is_empty() {
            continue;
        }
        match line.as_bytes()[0] {
            b'd' => {
                names.dirs.insert(name.trim_end_matches('/').to_string());
            }
            b'l' => {
                let (n, t) = name.split_once(" -> ").expect("symlink line has a target");
                links.insert(n.to_string(), t.to_string());
            }
            _ => {
                names.files.insert(name.to_string());
            }
        }
    }
    (names, links)
}

/// An extracted tree: (directories, file contents, symlink targets).
pub type Extracted = (
    BTreeSet<String>,
    BTreeMap<String, Vec<u8>>,
    BTreeMap<String, String>,
);

/// Reads an extracted tree back: (dirs, file contents, symlinks).
pub fn read_tree(root: &Path) -> Extracted {
    let mut dirs = BTreeSet::new();
    let mut files = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let ft = fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_symlink() {
                links.insert(
                    rel,
                    fs::read_link(&p).unwrap().to_str().unwrap().to_string(),
                );
            } else if ft.is_dir() {
                dirs.insert(rel);
                stack.push(p);
            } else {
                files.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    (dirs, files, links)
}

/// Extracts with `7z x` and returns the tree.
pub fn sevenz_extract(image: &Path, into: &Path) -> Extracted {
    let out = format!("-o{}", into.display());
    run("7z", &["x", "-y", "-sccUTF-8", &out, img(image)]);
    read_tree(into)
}

/// Extracts with `bsdtar -xf` and returns the tree.
pub fn bsdtar_extract(image: &Path, into: &Path) -> Extracted {
    fs::create_dir_all(into).unwrap();
    run("bsdtar", &["-xf", img(image), "-C", into.to_str().unwrap()]);
    read_tree(into)
}

/// Walks one namespace with the `cdfs` crate: (names, file contents).
/// `joliet = false` uses the primary tree (Rock Ridge names when present).
pub fn cdfs_tree(image: &Path, joliet: bool) -> (Names, BTreeMap<String, Vec<u8>>) {
    use cdfs::{DirectoryEntry, ISODirectory, ISO9660};
    use std::io::Read;
    let iso = ISO9660::new(fs::File::open(image).unwrap()).expect("cdfs opens the image");
    let root = if joliet {
        iso.root_at(1).expect("cdfs sees a Joliet tree").clone()
    } else {
        iso.root_at(0).expect("primary").clone()
    };
    let mut names = Names::default();
    let mut data = BTreeMap::new();
    let mut stack: Vec<(String, ISODirectory<fs::File>)> = vec![(String::new(), root)];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in dir.contents() {
            let entry = entry.expect("cdfs reads the directory");
            let id = entry.identifier().to_string();
            if id == "." || id == ".." {
                continue;
            }
            let id = if joliet {
                id.strip_suffix(";1").map(str::to_string).unwrap_or(id)
            } else {
                id
            };
            let path = if prefix.is_empty() {
                id
            } else {
                format!("{prefix}/{id}")
            };
            match entry {
                DirectoryEntry::Directory(d) => {
                    names.dirs.insert(path.clone());
                    stack.push((path, d));
                }
                DirectoryEntry::File(f) => {
                    let mut buf = Vec::new();
                    f.read().read_to_end(&mut buf).expect("cdfs reads the file");
                    names.files.insert(path.clone());
                    data.insert(path, buf);
                }
                DirectoryEntry::Symlink(_) => {}
            }
        }
    }
    (names, data)
}

fn d_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '~')
}

/// `isoinfo -l` without extensions: level-1 names, all distinct, one per input
/// entry (symlinks are plain file records in the primary namespace).
pub fn check_primary_names(image: &Path, want: &Names, symlinks: usize) {
    let p = isoinfo_names(image, None);
    assert_eq!(
        p.dirs.len(),
        want.dirs.len(),
        "primary directory count: {p:?}"
    );
    assert_eq!(
        p.files.len(),
        want.files.len() + symlinks,
        "primary file count: {p:?}"
    );
    for d in &p.dirs {
        for c in d.split('/') {
            assert!(c.len() <= 8 && d_chars(c), "primary directory name {c:?}");
        }
    }
    for f in &p.files {
        let (dir, name) = f.rsplit_once('/').unwrap_or(("", f));
        assert!(dir.is_empty() || p.dirs.contains(dir));
        let (base, ext) = name
            .split_once('.')
            .expect("level-1 file names contain a dot");
        assert!(
            base.len() <= 8 && d_chars(base),
            "primary file name {name:?}"
        );
        assert!(
            ext.len() <= 3 && (ext.is_empty() || d_chars(ext)),
            "primary file name {name:?}"
        );
    }
}

/// Full check of a Joliet + Rock Ridge image against its spec with every reader.
pub fn verify_all(image: &Path, spec: &Spec, label: &str, scratch: &Path) {
    let want = spec.names();
    assert_eq!(isoinfo_label(image), label, "isoinfo -d label");
    let isovfy = String::from_utf8(run("isovfy", &["-i", img(image)])).unwrap();
    assert!(isovfy.contains("No errors found"), "isovfy: {isovfy}");

    check_primary_names(image, &want, spec.symlinks.len());

    let (xn, xl) = xorriso_names(image);
    assert_names(&xn, &want, "xorriso (Rock Ridge) names");
    assert_eq!(xl, spec.symlinks, "xorriso symlink targets");
    assert_names(
        &isoinfo_names(image, Some("-R")),
        &want,
        "isoinfo -l -R names",
    );
    assert_names(
        &isoinfo_names(image, Some("-J")),
        &isoinfo_joliet_view(&want),
        "isoinfo -l -J names",
    );
    assert_names(&sevenz_names(image), &want, "7z l names (Joliet)");
    let (bn, bl) = bsdtar_names(image);
    assert_names(&bn, &want, "bsdtar -tvf names (Rock Ridge)");
    assert_eq!(bl, spec.symlinks, "bsdtar -tvf symlinks");

    let (d7, f7, _) = sevenz_extract(image, &scratch.join("7z"));
    assert_names(
        &Names {
            dirs: d7,
            files: f7.keys().cloned().collect(),
        },
        &want,
        "7z x tree",
    );
    assert_contents(&f7, &spec.files, "7z x");
    let (db, fb, lb) = bsdtar_extract(image, &scratch.join("bsdtar"));
    assert_names(
        &Names {
            dirs: db,
            files: fb.keys().cloned().collect(),
        },
        &want,
        "bsdtar -xf tree",
    );
    assert_contents(&fb, &spec.files, "bsdtar -xf");
    assert_eq!(lb, spec.symlinks, "bsdtar symlinks");

    for joliet in [false, true] {
        let (names, data) = cdfs_tree(image, joliet);
        assert_names(&names, &want, &format!("cdfs names (joliet={joliet})"));
        assert_contents(&data, &spec.files, &format!("cdfs (joliet={joliet})"));
    }
}
