//! Property test: random trees read back identically by every independent reader.

mod common;

use common::*;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.,()+=!#&'~-]{1,24}",
        3 => "[a-zäöüßéñЖжя日本語ファイル€😀 ]{1,12}",
        2 => "(longfilename|LongFileName|long file name)-[0-9]{1,3}\\.(txt|TXT|tar\\.gz)",
        1 => "[a-z]{60,64}",
    ]
    .prop_filter("reserved or refused with Joliet", |n| {
        !n.ends_with('.') && !n.ends_with(' ')
    })
}

#[derive(Debug, Clone)]
enum Item {
    File { size: usize, seed: u32 },
    Dir,
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => (Just(0usize), any::<u32>()).prop_map(|(size, seed)| Item::File { size, seed }),
        10 => (1usize..6000, any::<u32>()).prop_map(|(size, seed)| Item::File { size, seed }),
        1 => (2_000_000usize..3_500_000, any::<u32>()).prop_map(|(size, seed)| Item::File { size, seed }),
        3 => Just(Item::Dir),
    ]
}

fn data(size: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

fn spec() -> impl Strategy<Value = Spec> {
    let entry = (prop::collection::vec(name(), 0..=7), name(), item());
    (prop::collection::vec(entry, 1..30), 0usize..100).prop_map(|(entries, wide)| {
        let mut s = Spec::default();
        let mut taken_files = std::collections::BTreeSet::new();
        let mut add = |s: &mut Spec, dirs: &[String], leaf: &str, item: &Item| {
            let dirs_ok = (1..=dirs.len()).all(|i| !taken_files.contains(&dirs[..i].join("/")));
            let mut parts = dirs.to_vec();
            parts.push(leaf.to_string());
            let path = parts.join("/");
            let all_dirs = s.all_dirs();
            if !dirs_ok || taken_files.contains(&path) || all_dirs.contains(&path) {
                return;
            }
            match item {
                Item::Dir => {
                    if parts.len() <= 7 {
                        s.dirs.insert(path);
                    }
                }
                Item::File { size, seed } => {
                    taken_files.insert(path.clone());
                    s.files.insert(path, data(*size, *seed));
                }
            }
        };
        for (dirs, leaf, it) in &entries {
            add(&mut s, dirs, leaf, it);
        }
        // A wide directory whose names all collide after 8.3 mangling.
        for i in 0..wide {
            add(
                &mut s,
                &["wide dir".to_string()],
                &format!("collision candidate {i}.json"),
                &Item::File {
                    size: i,
                    seed: i as u32,
                },
            );
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_reader_sees_the_input(spec in spec()) {
        let dir = tempfile::tempdir().unwrap();
        let image = write_image(spec.builder(options("PROPTEST")), dir.path(), "p.iso");
        verify_all(&image, &spec, "PROPTEST", &dir.path().join("x"));
        // Reproducible: the same spec gives the same bytes.
        let mut again = Vec::new();
        spec.builder(options("PROPTEST")).build().unwrap().write_to(&mut again).unwrap();
        prop_assert!(again == std::fs::read(&image).unwrap());
    }
}
