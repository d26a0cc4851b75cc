//! Fixed cases read back by xorriso, isoinfo, isovfy, 7z, bsdtar and the `cdfs` crate.

mod common;

use std::io::Write;

use common::*;
use isotools::{nocloud_seed, windows_config_iso, IsoOptions};

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn mixed_spec() -> Spec {
    let mut s = Spec::default()
        .file("Autounattend.xml", b"<unattend/>\n".to_vec())
        .file("provision.json", b"{\"vm\":1}".to_vec())
        .file("START.ps1", b"Write-Host hi\r\n".to_vec())
        .file("empty file", Vec::new())
        .dir("empty dir")
        .file("docs/a name with spaces.txt", b"spaces".to_vec())
        .file("docs/ümlaut-ß-é.txt", b"latin".to_vec())
        .file("docs/日本語のファイル名.txt", b"cjk".to_vec())
        .file(
            &format!("docs/{}", "長".repeat(60)),
            b"long utf-8 name in a CE area".to_vec(),
        )
        .file(&format!("docs/{}", "x".repeat(64)), b"64 chars".to_vec())
        .file("a/b/c/d/e/f/g/deepest file.bin", pattern(5000, 7))
        .file("big/stream.bin", pattern(3 * 1024 * 1024 + 17, 3))
        .file("exact/two-sectors.bin", pattern(4096, 5))
        .symlink("docs/link-to-json", "../provision.json");
    for i in 0..40 {
        // All of these mangle to LONGFILE.TXT in the primary namespace.
        s = s.file(
            &format!("collide/longfilename-{i:03}.txt"),
            format!("n{i}").into_bytes(),
        );
    }
    s
}

#[test]
fn mixed_tree_every_reader_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let spec = mixed_spec();
    let image = write_image(spec.builder(options("MIXED")), dir.path(), "mixed.iso");
    verify_all(&image, &spec, "MIXED", &dir.path().join("x"));
}

#[test]
fn tree_from_disk_is_streamed_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let spec = mixed_spec();
    let src = dir.path().join("src");
    spec.materialize(&src);
    let mut b = isotools::IsoBuilder::new(options("DISK"));
    b.add_tree("/", &src).unwrap();
    let image = write_image(b, dir.path(), "disk.iso");
    verify_all(&image, &spec, "DISK", &dir.path().join("x"));
}

#[test]
fn windows_helper_keeps_exact_case_in_joliet() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("Autounattend.xml", b"<unattend/>".to_vec()),
        ("provision.json", b"{}".to_vec()),
        ("START.ps1", b"exit 0".to_vec()),
    ];
    let mut b = windows_config_iso(files.clone()).unwrap();
    b.options_mut().timestamp = Some(FIXED_TIME);
    let image = write_image(b, dir.path(), "win.iso");
    let joliet = isoinfo_names(&image, Some("-J"));
    let want: std::collections::BTreeSet<String> =
        ["Autounattend.xml", "provision.json", "START.ps1"]
            .map(String::from)
            .into();
    assert_eq!(joliet.files, want, "Joliet root as Windows Setup sees it");
    let mut spec = Spec::default();
    for (n, d) in files {
        spec = spec.file(n, d);
    }
    verify_all(&image, &spec, "PROVISION", &dir.path().join("x"));
}

#[test]
fn nocloud_helper_has_cidata_label_and_files() {
    for nc in [None, Some(b"version: 2\n".to_vec())] {
        let dir = tempfile::tempdir().unwrap();
        let mut b = nocloud_seed(
            b"#cloud-config\n".to_vec(),
            b"instance-id: i-1\n".to_vec(),
            nc.clone(),
        )
        .unwrap();
        b.options_mut().timestamp = Some(FIXED_TIME);
        let image = write_image(b, dir.path(), "seed.iso");
        let mut spec = Spec::default()
            .file("user-data", b"#cloud-config\n".to_vec())
            .file("meta-data", b"instance-id: i-1\n".to_vec());
        if let Some(nc) = nc {
            spec = spec.file("network-config", nc);
        }
        verify_all(&image, &spec, "cidata", &dir.path().join("x"));
    }
}

#[test]
fn rock_ridge_only_keeps_255_byte_names() {
    let dir = tempfile::tempdir().unwrap();
    let long = "r".repeat(255);
    let colon = "needs:rock ridge?.txt";
    let spec = Spec::default()
        .file(&long, b"long".to_vec())
        .file(&format!("sub/{colon}"), b"colon".to_vec())
        .file(
            &format!("sub/{}", "é".repeat(127)),
            b"254 bytes of utf-8".to_vec(),
        );
    let opts = IsoOptions {
        joliet: false,
        ..options("RRONLY")
    };
    let image = write_image(spec.builder(opts), dir.path(), "rr.iso");
    let info = String::from_utf8(run("isoinfo", &["-d", "-i", image.to_str().unwrap()])).unwrap();
    assert!(
        !info.contains("Joliet with UCS"),
        "no Joliet descriptor expected: {info}"
    );
    assert!(info.contains("Rock Ridge"), "{info}");
    assert_eq!(xorriso_names(&image).0, spec.names());
    assert_eq!(isoinfo_names(&image, Some("-R")), spec.names());
    assert_eq!(bsdtar_names(&image).0, spec.names());
    let (_, files, _) = bsdtar_extract(&image, &dir.path().join("b"));
    assert!(files == spec.files);
    let (names, data) = cdfs_tree(&image, false);
    assert_eq!(names, spec.names());
    assert!(data == spec.files);
}

fn is_d_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '~')
}

#[test]
fn joliet_only_image_has_unique_level1_primary_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::default()
        .file("Read Me.txt", b"1".to_vec())
        .file("read-me.txt", b"2".to_vec());
    for i in 0..120 {
        spec = spec.file(
            &format!("wide/Some Long Name {i}.config.json"),
            vec![i as u8; i],
        );
        spec = spec.dir(&format!("wide/directory number {i}"));
    }
    let opts = IsoOptions {
        rock_ridge: false,
        ..options("JOLIET")
    };
    let image = write_image(spec.builder(opts), dir.path(), "j.iso");
    let primary = isoinfo_names(&image, None);
    assert_eq!(primary.files.len(), spec.files.len());
    assert_eq!(primary.dirs.len(), spec.all_dirs().len());
    for p in primary.files.iter() {
        let name = p.rsplit('/').next().unwrap();
        let (base, ext) = name.split_once('.').expect("level-1 file names have a dot");
        assert!(
            base.len() <= 8 && ext.len() <= 3 && is_d_chars(base) && is_d_chars(ext),
            "{name}"
        );
    }
    for p in primary.dirs.iter() {
        let name = p.rsplit('/').next().unwrap();
        assert!(name.len() <= 8 && is_d_chars(name), "{name}");
    }
    assert_eq!(
        isoinfo_names(&image, Some("-J")),
        isoinfo_joliet_view(&spec.names())
    );
    assert_eq!(sevenz_names(&image), spec.names());
    assert_eq!(
        bsdtar_names(&image).0,
        spec.names(),
        "libarchive falls back to Joliet"
    );
    let (names, data) = cdfs_tree(&image, true);
    assert_eq!(names, spec.names());
    assert!(data == spec.files);
    let (d7, f7, _) = sevenz_extract(&image, &dir.path().join("7"));
    assert_eq!(d7, spec.all_dirs());
    assert!(f7 == spec.files);
}

#[test]
fn same_input_same_bytes() {
    let spec = mixed_spec();
    let build = |t: i64| {
        let mut out = Vec::new();
        let opts = IsoOptions {
            timestamp: Some(t),
            ..options("REPRO")
        };
        spec.builder(opts)
            .build()
            .unwrap()
            .write_to(&mut out)
            .unwrap();
        out
    };
    let a = build(FIXED_TIME);
    let b = build(FIXED_TIME);
    assert!(a == b, "two builds with the same date differ");
    assert!(
        build(FIXED_TIME + 1) != a,
        "the timestamp must reach the image"
    );
}

/// A sink that only implements `Write` (no `Seek`), like an HTTP request body.
struct PipeOnly<W: Write>(W);
impl<W: Write> Write for PipeOnly<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[test]
fn streams_into_a_pipe_read_by_bsdtar() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let spec = mixed_spec();
    let out = dir.path().join("piped");
    std::fs::create_dir_all(&out).unwrap();
    let mut child = Command::new("bsdtar")
        .args(["-xf", "-", "-C", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("bsdtar (apt-get install libarchive-tools)");
    let stdin = child.stdin.take().unwrap();
    let image = spec.builder(options("PIPE")).build().unwrap();
    let size = image.size();
    let written = image.write_to(PipeOnly(stdin)).unwrap();
    assert_eq!(written, size);
    assert!(child.wait().unwrap().success());
    let (dirs, files, links) = read_tree(&out);
    assert_eq!(dirs, spec.all_dirs());
    assert!(files == spec.files);
    assert_eq!(links, spec.symlinks);
}

#[test]
fn joliet_and_rock_ridge_share_file_extents() {
    let spec = Spec::default()
        .file("a.bin", pattern(3 << 20, 1))
        .file("b.bin", pattern(1 << 20, 2));
    let size = |joliet: bool, rock_ridge: bool| {
        let opts = IsoOptions {
            joliet,
            rock_ridge,
            ..options("SHARE")
        };
        spec.builder(opts).build().unwrap().size()
    };
    let data = (4u64 << 20) / 2048;
    let plain = size(false, false) / 2048;
    let both = size(true, true) / 2048;
    // The data is stored once: adding a namespace adds only a few metadata sectors.
    assert!(plain >= data && plain < data + 32, "{plain}");
    assert!(both > plain && both < plain + 16, "{both} vs {plain}");
}

/// Joliet and Rock Ridge names as `isoinfo -f` lists them are the same for
/// an isotools image and a `genisoimage -J -R` image of the same tree: no
/// `;1` on Joliet file names (what Windows Setup is usually fed).
#[test]
fn joliet_and_rock_ridge_listings_match_genisoimage() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::default()
        .file("Autounattend.xml", b"<unattend/>\n".to_vec())
        .file("provision.json", b"{}".to_vec())
        .file("START.ps1", b"exit 0".to_vec())
        .file("playbook.yml", b"- hosts: all\n".to_vec())
        .file("scripts/setup.ps1", b"exit 0".to_vec())
        .file("scripts/a name with spaces.cmd", b"@echo off".to_vec())
        .file("docs/ümlaut.txt", b"latin".to_vec())
        .dir("empty");
    let src = dir.path().join("src");
    spec.materialize(&src);
    let mut b = isotools::IsoBuilder::new(options("CMP"));
    b.add_tree("/", &src).unwrap();
    let ours = write_image(b, dir.path(), "ours.iso");
    let theirs = dir.path().join("theirs.iso");
    run(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-R",
            "-V",
            "CMP",
            "-o",
            theirs.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    for flag in ["-J", "-R"] {
        let listing = |image: &std::path::Path| {
            let out = run("isoinfo", &["-f", flag, "-i", image.to_str().unwrap()]);
            let mut lines: Vec<String> = out
                .split(|b| *b == b'\n')
                .map(|l| l.iter().map(|&b| b as char).collect::<String>())
                .filter(|l| !l.is_empty())
                .collect();
            lines.sort();
            lines
        };
        let (a, b) = (listing(&ours), listing(&theirs));
        assert_eq!(a, b, "isoinfo -f {flag}: isotools vs genisoimage");
        assert!(
            a.contains(&"/Autounattend.xml".to_string()),
            "{flag}: {a:?}"
        );
        assert!(a.iter().all(|l| !l.ends_with(";1")), "{flag}: {a:?}");
    }
}
