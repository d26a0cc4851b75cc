//! The `isotools` binary, checked with independent readers.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn isotools(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_isotools"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run isotools")
}

fn ok(args: &[&str]) -> std::process::Output {
    let out = isotools(args);
    assert!(
        out.status.success(),
        "isotools {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn nocloud_seed_is_seen_by_isoinfo_and_xorriso() {
    let dir = tempfile::tempdir().unwrap();
    let ud = dir.path().join("ud.yaml");
    let md = dir.path().join("md.yaml");
    let nc = dir.path().join("nc.yaml");
    std::fs::write(&ud, "#cloud-config\nhostname: vm1\n").unwrap();
    std::fs::write(&md, "instance-id: vm1\n").unwrap();
    std::fs::write(&nc, "version: 2\n").unwrap();
    let iso = dir.path().join("seed.iso");
    ok(&[
        "nocloud",
        "--user-data",
        s(&ud),
        "--meta-data",
        s(&md),
        "--network-config",
        s(&nc),
        "-o",
        s(&iso),
        "--date",
        "2024-05-01T10:00:00Z",
    ]);

    assert_eq!(isoinfo_label(&iso), "cidata");
    let rr = isoinfo_names(&iso, Some("-R"));
    for f in ["user-data", "meta-data", "network-config"] {
        assert!(rr.files.contains(f), "isoinfo -R lacks {f}: {rr:?}");
    }
    let (x, _) = xorriso_names(&iso);
    assert_eq!(x, rr, "xorriso and isoinfo -R agree");
    let xorriso_out = String::from_utf8(run("xorriso", &["-indev", s(&iso), "-toc"])).unwrap();
    assert!(
        xorriso_out.contains("cidata"),
        "xorriso -toc shows the label: {xorriso_out}"
    );
    let spec = Spec::default()
        .file("user-data", std::fs::read(&ud).unwrap())
        .file("meta-data", std::fs::read(&md).unwrap())
        .file("network-config", std::fs::read(&nc).unwrap());
    verify_all(&iso, &spec, "cidata", &dir.path().join("x"));
}

#[test]
fn build_directory_all_readers_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::default()
        .file("Autounattend.xml", b"<x/>".to_vec())
        .file("scripts/START.ps1", b"exit 0".to_vec())
        .file("scripts/über lange Datei.txt", vec![9u8; 70_000])
        .dir("empty")
        .symlink("scripts/latest", "START.ps1");
    let src = dir.path().join("src");
    spec.materialize(&src);
    let a = dir.path().join("a.iso");
    let b = dir.path().join("b.iso");
    for out in [&a, &b] {
        ok(&[
            "build",
            s(&src),
            "-o",
            s(out),
            "-V",
            "PROVISION",
            "--date",
            "2024-01-02T03:04:05+00:00",
        ]);
    }
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "CLI builds are reproducible"
    );
    verify_all(&a, &spec, "PROVISION", &dir.path().join("x"));

    // SOURCE_DATE_EPOCH gives the same bytes as the equivalent --date
    let c = dir.path().join("c.iso");
    let st = Command::new(env!("CARGO_BIN_EXE_isotools"))
        .args(["build", s(&src), "-o", s(&c), "-V", "PROVISION"])
        .env("SOURCE_DATE_EPOCH", "1704164645")
        .status()
        .unwrap();
    assert!(st.success());
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&c).unwrap());
}

#[test]
fn build_flags_disable_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    Spec::default()
        .file("Mixed Case.txt", b"1".to_vec())
        .materialize(&src);
    let nj = dir.path().join("nj.iso");
    ok(&[
        "build",
        s(&src),
        "-o",
        s(&nj),
        "--no-joliet",
        "--date",
        "2024-01-01T00:00:00Z",
    ]);
    let info = String::from_utf8(run("isoinfo", &["-d", "-i", s(&nj)])).unwrap();
    assert!(
        !info.contains("Joliet with UCS") && info.contains("Rock Ridge"),
        "{info}"
    );
    let nr = dir.path().join("nr.iso");
    ok(&[
        "build",
        s(&src),
        "-o",
        s(&nr),
        "--no-rock",
        "--date",
        "2024-01-01T00:00:00Z",
    ]);
    let info = String::from_utf8(run("isoinfo", &["-d", "-i", s(&nr)])).unwrap();
    assert!(
        info.contains("Joliet with UCS") && !info.contains("Rock Ridge signatures"),
        "{info}"
    );
    assert!(isoinfo_names(&nr, None).files.contains("MIXED_CA.TXT"));
    assert!(isoinfo_names(&nr, Some("-J"))
        .files
        .contains("Mixed Case.txt"));
}

#[test]
fn ls_prints_both_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    Spec::default()
        .file("Autounattend.xml", b"<x/>".to_vec())
        .file("deep/er/user-data", b"u".to_vec())
        .materialize(&src);
    let iso = dir.path().join("l.iso");
    ok(&["build", s(&src), "-o", s(&iso), "-V", "LSTEST"]);
    let out = String::from_utf8(ok(&["ls", s(&iso)]).stdout).unwrap();
    assert!(out.contains("Volume id: LSTEST"), "{out}");
    assert!(out.contains("Rock Ridge: yes"), "{out}");
    assert!(out.contains("/deep/er/user-data  (USER_DAT.;1)"), "{out}");
    assert!(out.contains("[Joliet]"), "{out}");
    assert!(
        out.contains("/Autounattend.xml  (Autounattend.xml)"),
        "{out}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.iso");
    std::fs::write(&junk, vec![0x41u8; 100_000]).unwrap();
    let out = isotools(&["ls", s(&junk)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an ISO 9660 image"), "{err}");

    let out = isotools(&[
        "build",
        "/nonexistent/dir",
        "-o",
        s(&dir.path().join("o.iso")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));

    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let out = isotools(&[
        "build",
        s(&src),
        "-o",
        s(&dir.path().join("o.iso")),
        "--date",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    std::fs::write(src.join("a:b"), b"x").unwrap();
    let out = isotools(&["build", s(&src), "-o", s(&dir.path().join("o.iso"))]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not allowed in Joliet names")
            && err.contains("disable Joliet")
            && err.contains("/a:b"),
        "{err}"
    );
}

#[test]
fn progress_goes_to_stderr_when_requested() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    Spec::default()
        .file("big.bin", vec![3u8; 3 << 20])
        .materialize(&src);
    let iso = dir.path().join("p.iso");
    let out = ok(&["build", s(&src), "-o", s(&iso), "--progress"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("100%") && err.contains("wrote "), "{err}");
    assert!(out.stdout.is_empty());
}
