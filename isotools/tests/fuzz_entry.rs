//! The cargo-fuzz entry points, driven by proptest so they run on stable in CI.
//! For real coverage-guided fuzzing see docs/isotools.md ("Fuzzing").

mod common;

use proptest::prelude::*;

fn sample_image() -> Vec<u8> {
    let mut b = isotools::IsoBuilder::new(common::options("FUZZ"));
    b.add_bytes("Autounattend.xml", b"<x/>".to_vec()).unwrap();
    b.add_bytes(&format!("dir/{}", "長".repeat(60)), b"ce".to_vec())
        .unwrap();
    b.add_bytes("dir/sub/user-data", vec![1u8; 3000]).unwrap();
    b.add_symlink("dir/link", "../Autounattend.xml").unwrap();
    let mut out = Vec::new();
    b.build().unwrap().write_to(&mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ls_never_panics_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..40_000)) {
        let _ = isotools::reader::list_bytes(&data);
    }

    #[test]
    fn ls_never_panics_on_mutated_images(muts in prop::collection::vec((0usize..40 * 2048, any::<u8>()), 1..24)) {
        let mut img = sample_image();
        let len = img.len();
        for (pos, byte) in muts {
            img[pos % len] = byte;
        }
        if let Ok(l) = isotools::reader::list_bytes(&img) {
            let _ = isotools::reader::render(&l);
        }
    }

    #[test]
    fn builder_name_handling(flags in any::<u8>(), names in prop::collection::vec(
        prop_oneof![
            "\\PC{0,70}",
            "[a-z/.]{0,12}",
            "([a-zA-Z0-9 ]{1,10}/){0,9}[a-zA-Z0-9 ]{1,10}",
        ], 0..20)) {
        let mut data = vec![flags];
        data.extend_from_slice(names.join("\n").as_bytes());
        isotools::fuzzing::builder_names(&data);
    }
}

#[test]
fn ls_rejects_directory_loops_and_huge_sizes() {
    // Point the root directory of the primary volume at itself with a huge size.
    let mut img = sample_image();
    let root = 16 * 2048 + 156;
    img[root + 10..root + 14].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = isotools::reader::list_bytes(&img).unwrap_err();
    assert!(
        matches!(err, isotools::reader::ReadError::Limit(_)),
        "{err:?}"
    );
}
