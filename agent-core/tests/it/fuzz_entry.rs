//! The cargo-fuzz entry points (`agent_core::fuzzing`, targets in
//! `agent-core/fuzz/`) on stable: every checked-in seed of
//! `agent-core/fuzz/seeds/<target>/`, then a short bounded mutation run from
//! those seeds (fixed RNG seed, so a failure reproduces). For real
//! coverage-guided fuzzing see docs/security.md ("Fuzzing").

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs per target in the bounded run.
const ROUNDS: usize = 20_000;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 10,
        "{target}: too few seeds in {}",
        dir.display()
    );
    out.into_iter().map(|(_, d)| d).collect()
}

/// Byte-level mutations in the spirit of libFuzzer's: flip, set to an
/// interesting byte, insert, delete, duplicate a range, splice another seed.
fn mutate(rng: &mut StdRng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    const INTERESTING: &[u8] =
        b"\0\t\n\r $`;|&<>(){}'\"\\/:.=?%+-_~@!#*[]\x7f\xc2\xa0\xe2\x80\xa8\xff";
    let mut d = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = d.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                d[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            2 => {
                let i = rng.random_range(0..=len);
                d.insert(i, INTERESTING[rng.random_range(0..INTERESTING.len())]);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(8));
                d.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(32));
                let chunk = d[i..i + n].to_vec();
                let at = rng.random_range(0..=len);
                d.splice(at..at, chunk);
            }
            _ => {
                let other = &pool[rng.random_range(0..pool.len())];
                let cut = rng.random_range(0..=d.len());
                let from = rng.random_range(0..=other.len());
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
        }
    }
    d
}

fn run(target: &str, entry: fn(&[u8])) {
    let pool = seeds(target);
    for s in &pool {
        entry(s);
    }
    let mut rng = StdRng::seed_from_u64(0x0b07_0011);
    let mut last = pool[0].clone();
    for round in 0..ROUNDS {
        // walk from the last mutant half of the time, else from a seed
        let base = if round % 2 == 0 {
            last.clone()
        } else {
            pool[rng.random_range(0..pool.len())].clone()
        };
        let m = mutate(&mut rng, &base, &pool);
        entry(&m);
        last = if m.len() > 4096 { pool[0].clone() } else { m };
    }
}

#[test]
fn fuzz_pairing_input_seeds_and_bounded_run() {
    run("pairing_input", agent_core::fuzzing::pairing_input);
}

#[test]
fn fuzz_protocol_json_seeds_and_bounded_run() {
    run("protocol_json", agent_core::fuzzing::protocol_json);
}

#[test]
fn fuzz_ssh_allowlist_seeds_and_bounded_run() {
    run("ssh_allowlist", agent_core::fuzzing::ssh_allowlist);
}
