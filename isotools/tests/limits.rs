//! Defined behaviour at the limits (ECMA-119 depth, 4 GiB files, names, duplicates).

mod common;

use std::io::Read;

use common::*;
use isotools::{IsoBuilder, IsoError, IsoOptions};

fn builder() -> IsoBuilder {
    IsoBuilder::new(options("LIMITS"))
}

#[test]
fn eight_directory_levels_are_accepted_and_nine_refused() {
    let mut ok = builder();
    ok.add_bytes("1/2/3/4/5/6/7/file-at-level-8-dir", b"x".to_vec())
        .unwrap();
    ok.add_dir("a/b/c/d/e/f/g").unwrap();
    ok.build()
        .expect("root + 7 nested directories = 8 levels is valid");

    let mut deep = builder();
    deep.add_bytes("1/2/3/4/5/6/7/8/file", b"x".to_vec())
        .unwrap();
    let err = deep.build().unwrap_err();
    match &err {
        IsoError::TooDeep { path, level } => {
            assert_eq!(path, "/1/2/3/4/5/6/7/8");
            assert_eq!(*level, 9);
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
    assert!(
        err.to_string().contains("at most 8 directory levels"),
        "{err}"
    );
}

/// A reader that must never be read: sizes are checked before any byte is written.
struct NeverRead;
impl Read for NeverRead {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("the 4 GiB source must not be read during build()");
    }
}

#[test]
fn files_over_4gib_minus_1_are_refused_before_writing() {
    let mut b = builder();
    b.add_reader("huge.bin", 1 << 32, NeverRead).unwrap();
    let err = b.build().unwrap_err();
    assert!(
        matches!(err, IsoError::FileTooLarge { size, .. } if size == 1 << 32),
        "{err:?}"
    );
    assert!(err.to_string().contains("4 GiB - 1"), "{err}");

    // Exactly 4 GiB - 1 still fits one extent: layout succeeds and the size is exact.
    let mut b = builder();
    b.add_reader("max.bin", u64::from(u32::MAX), NeverRead)
        .unwrap();
    let image = b.build().unwrap();
    let data_sectors = u64::from(u32::MAX).div_ceil(2048);
    assert!(image.size() > data_sectors * 2048);
    assert_eq!(image.size() % 2048, 0);
}

#[test]
fn duplicate_names_are_errors() {
    let mut b = builder();
    b.add_bytes("dir/a.txt", b"1".to_vec()).unwrap();
    let err = b.add_bytes("dir/a.txt", b"2".to_vec()).unwrap_err();
    assert!(
        matches!(err, IsoError::Duplicate { ref path, .. } if path == "/dir/a.txt"),
        "{err:?}"
    );
    let err = b.add_bytes("dir", b"file over a dir".to_vec()).unwrap_err();
    assert!(matches!(err, IsoError::Duplicate { .. }), "{err:?}");
    let err = b
        .add_bytes("dir/a.txt/below-a-file", b"x".to_vec())
        .unwrap_err();
    assert!(matches!(err, IsoError::Duplicate { .. }), "{err:?}");
    let err = b.add_symlink("dir/a.txt", "elsewhere").unwrap_err();
    assert!(matches!(err, IsoError::Duplicate { .. }), "{err:?}");
    // add_dir on an existing directory is mkdir -p, not a duplicate
    b.add_dir("dir").unwrap();
}

#[test]
fn invalid_names_are_errors() {
    let mut b = builder();
    for bad in ["a/./b", "a/../b", "tab\there", "nul\0", "new\nline"] {
        assert!(
            matches!(
                b.add_bytes(bad, b"x".to_vec()),
                Err(IsoError::InvalidName { .. })
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        b.add_bytes("/", b"x".to_vec()),
        Err(IsoError::InvalidName { .. })
    ));
    let long = "n".repeat(256);
    assert!(matches!(
        b.add_bytes(&long, b"x".to_vec()),
        Err(IsoError::NameTooLong { len: 256, .. })
    ));
}

#[test]
fn joliet_forbidden_characters_and_long_names_are_errors_only_with_joliet() {
    for name in [
        "what?.txt",
        "a:b",
        "back\\slash",
        "star*",
        "semi;colon",
        "dot.",
        "space ",
    ] {
        let mut b = builder();
        b.add_bytes(name, b"x".to_vec()).unwrap();
        let err = b.build().unwrap_err();
        assert!(
            matches!(err, IsoError::InvalidName { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("disable Joliet"), "{err}");
    }
    let long = "j".repeat(65);
    let mut b = builder();
    b.add_bytes(&long, b"x".to_vec()).unwrap();
    assert!(matches!(
        b.build(),
        Err(IsoError::JolietNameTooLong { units: 65, .. })
    ));
    // 33 non-BMP characters are 66 UTF-16 units
    let mut b = builder();
    b.add_bytes(&"😀".repeat(33), b"x".to_vec()).unwrap();
    assert!(matches!(
        b.build(),
        Err(IsoError::JolietNameTooLong { units: 66, .. })
    ));

    // Without Joliet the same names are stored through Rock Ridge.
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::default()
        .file("what?.txt", b"1".to_vec())
        .file(&long, b"2".to_vec());
    let opts = IsoOptions {
        joliet: false,
        ..options("NOJ")
    };
    let image = write_image(spec.builder(opts), dir.path(), "noj.iso");
    assert_eq!(xorriso_names(&image).0, spec.names());
}

#[test]
fn empty_files_and_empty_directories_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::default()
        .file("zero", Vec::new())
        .file("sub/zero too", Vec::new())
        .dir("empty")
        .dir("nested/empty/dirs");
    let image = write_image(spec.builder(options("EMPTY")), dir.path(), "e.iso");
    verify_all(&image, &spec, "EMPTY", &dir.path().join("x"));
}

#[test]
fn non_utf8_names_on_disk_are_errors() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
    let err = builder().add_tree("/", &src).map(|_| ()).unwrap_err();
    match &err {
        IsoError::NonUtf8Name { lossy, .. } => assert_eq!(lossy, "bad\u{fffd}name"),
        other => panic!("expected NonUtf8Name, got {other:?}"),
    }
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn short_sources_and_changed_files_are_errors() {
    let mut b = builder();
    b.add_reader("short.bin", 10, std::io::Cursor::new(vec![1u8; 5]))
        .unwrap();
    let err = b.build().unwrap().write_to(std::io::sink()).unwrap_err();
    assert!(
        matches!(
            err,
            IsoError::SourceLength {
                expected: 10,
                actual: 5,
                ..
            }
        ),
        "{err:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("grows");
    std::fs::write(&f, b"1234").unwrap();
    let mut b = builder();
    b.add_file("grows", &f).unwrap();
    let image = b.build().unwrap();
    std::fs::write(&f, b"123456").unwrap();
    let err = image.write_to(std::io::sink()).unwrap_err();
    assert!(
        matches!(
            err,
            IsoError::SourceLength {
                expected: 4,
                actual: 6,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bad_options_are_errors() {
    for (label, field) in [
        ("", "volume id"),
        ("x".repeat(33).as_str(), "volume id"),
        ("tab\t", "volume id"),
        ("ümlaut", "volume id"),
    ] {
        let b = IsoBuilder::new(IsoOptions {
            volume_id: label.to_string(),
            ..IsoOptions::default()
        });
        match b.build() {
            Err(IsoError::InvalidOption { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{label:?}: {other:?}"),
        }
    }
    let b = IsoBuilder::new(IsoOptions {
        timestamp: Some(-5),
        ..IsoOptions::default()
    });
    assert!(matches!(b.build(), Err(IsoError::InvalidTimestamp(-5))));
    let mut b = IsoBuilder::new(IsoOptions {
        rock_ridge: false,
        ..IsoOptions::default()
    });
    b.add_symlink("l", "target").unwrap();
    assert!(matches!(b.build(), Err(IsoError::InvalidSymlink { .. })));
}

#[test]
fn size_is_known_before_writing_and_progress_reaches_it() {
    let spec = Spec::default()
        .file("a", vec![7u8; 5000])
        .file("b/c", vec![1u8; 3]);
    let mut image = spec.builder(options("SIZE")).build().unwrap();
    let size = image.size();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    image.on_progress(move |done, total| s2.lock().unwrap().push((done, total)));
    let mut out = Vec::new();
    image.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, size);
    let seen = seen.lock().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress is monotonic"
    );
    assert_eq!(seen.last().copied(), Some((size, size)));
}
