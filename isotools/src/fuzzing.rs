//! Entry points shared by the cargo-fuzz targets (`isotools/fuzz`) and the
//! regular test suite (`tests/fuzz_entry.rs`), so CI exercises them on stable.

use std::collections::BTreeSet;

use crate::{reader, IsoBuilder, IsoOptions};

/// Builds an image from names decoded from `data` and checks the result.
///
/// Byte 0 selects Joliet (bit 0) and Rock Ridge (bit 1); the rest is read as
/// (lossy) UTF-8 and split on `\n` into paths, each added as a small file.
/// Panics only if an accepted image does not read back with the same names.
pub fn builder_names(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut b = IsoBuilder::new(IsoOptions {
        joliet: flags & 1 != 0,
        rock_ridge: flags & 2 != 0,
        timestamp: Some(0),
        ..IsoOptions::default()
    });
    let mut added = BTreeSet::new();
    for (i, path) in text.split('\n').take(64).enumerate() {
        if b.add_bytes(path, vec![i as u8; i % 5]).is_ok() {
            let norm: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            added.insert(format!("/{}", norm.join("/")));
        }
    }
    let Ok(image) = b.build() else { return };
    let size = image.size();
    let mut out = Vec::new();
    let written = image
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    assert_eq!(written, size);
    assert_eq!(out.len() as u64, size);
    let listing = reader::list_bytes(&out).expect("our own image must list");
    let files = |entries: &[reader::Entry]| -> BTreeSet<String> {
        entries
            .iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.path.clone())
            .collect()
    };
    if flags & 2 != 0 {
        assert_eq!(files(&listing.primary), added, "Rock Ridge names");
    } else {
        assert_eq!(
            listing.primary.iter().filter(|e| !e.is_dir).count(),
            added.len()
        );
    }
    if flags & 1 != 0 {
        let joliet = listing.joliet.as_deref().expect("Joliet tree");
        assert_eq!(files(joliet), added, "Joliet names");
    }
}
