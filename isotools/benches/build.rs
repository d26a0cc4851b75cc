//! `cargo bench -p isotools`: isotools vs genisoimage vs xorriso (and cp for the
//! large file), side by side on the same input.
//!
//! Cases: (a) the 3-file provisioning set, (b) 1,000 small files in nested
//! folders, (c) one 512 MiB file. Each tool writes a Joliet + Rock Ridge image
//! into the same directory; the median of several runs is reported.
//!
//! Environment knobs for a quick run:
//! * `ISOTOOLS_BENCH_BIG_MIB`   size of case (c) in MiB (default 512)
//! * `ISOTOOLS_BENCH_FILES`     number of files in case (b) (default 1000)
//! * `ISOTOOLS_BENCH_RUNS`      runs per tool and case (default 7; case (c) uses half, at least 3)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use isotools::{IsoBuilder, IsoOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fill(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn make_provisioning(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("Autounattend.xml"), fill(12_000, 1)).unwrap();
    fs::write(dir.join("provision.json"), fill(2_000, 2)).unwrap();
    fs::write(dir.join("START.ps1"), fill(6_000, 3)).unwrap();
}

fn make_small_files(dir: &Path, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("group-{:02}/batch-{:02}", i % 10, (i / 10) % 10));
        fs::create_dir_all(&sub).unwrap();
        fs::write(
            sub.join(format!("file-{i:04}.dat")),
            fill(500 + (i * 37) % 8000, i as u64),
        )
        .unwrap();
    }
}

fn make_big(dir: &Path, mib: usize) {
    fs::create_dir_all(dir).unwrap();
    let chunk = fill(1 << 20, 42);
    let mut f = fs::File::create(dir.join("big.bin")).unwrap();
    for _ in 0..mib {
        std::io::Write::write_all(&mut f, &chunk).unwrap();
    }
}

fn ours(src: &Path, out: &Path) {
    let mut b = IsoBuilder::new(IsoOptions {
        volume_id: "BENCH".into(),
        ..IsoOptions::default()
    });
    b.add_tree("/", src).unwrap();
    let image = b.build().unwrap();
    image.write_to(fs::File::create(out).unwrap()).unwrap();
}

fn spawn(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (apt-get install genisoimage xorriso)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn genisoimage(src: &Path, out: &Path) {
    spawn(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-R",
            "-V",
            "BENCH",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
}

fn xorriso(src: &Path, out: &Path) {
    spawn(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-J",
            "-R",
            "-V",
            "BENCH",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
}

fn cp(src: &Path, out: &Path) {
    spawn(
        "cp",
        &[src.join("big.bin").to_str().unwrap(), out.to_str().unwrap()],
    );
}

fn median(f: &dyn Fn(&Path, &Path), src: &Path, out: &Path, runs: usize) -> Duration {
    let mut times = Vec::with_capacity(runs);
    f(src, out); // warm-up (page cache, binaries)
    for _ in 0..runs {
        let _ = fs::remove_file(out);
        let t = Instant::now();
        f(src, out);
        times.push(t.elapsed());
    }
    let _ = fs::remove_file(out);
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too: only run for real in bench mode.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let big_mib = env_usize("ISOTOOLS_BENCH_BIG_MIB", 512);
    let files = env_usize("ISOTOOLS_BENCH_FILES", 1000);
    let runs = env_usize("ISOTOOLS_BENCH_RUNS", 7).max(1);
    let base =
        PathBuf::from(std::env::var("ISOTOOLS_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let tmp = tempfile::Builder::new()
        .prefix("isotools-bench")
        .tempdir_in(&base)
        .unwrap();
    let root = tmp.path();

    let cases: Vec<(String, PathBuf, usize, bool)> = vec![
        (
            "(a) provisioning, 3 files".into(),
            root.join("a"),
            runs,
            false,
        ),
        (
            format!("(b) {files} small files, nested"),
            root.join("b"),
            runs,
            false,
        ),
        (
            format!("(c) one {big_mib} MiB file"),
            root.join("c"),
            (runs / 2).max(3),
            true,
        ),
    ];
    make_provisioning(&cases[0].1);
    make_small_files(&cases[1].1, files);
    make_big(&cases[2].1, big_mib);

    println!(
        "isotools bench: median of N runs, output on {}",
        base.display()
    );
    println!(
        "{:<32} {:>4} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "case", "N", "isotools", "genisoimage", "xorriso", "cp", "geniso/us", "xorriso/us", "us/cp"
    );
    let out = root.join("out.iso");
    let mut ok = true;
    for (name, src, n, with_cp) in &cases {
        let t_ours = median(&ours, src, &out, *n);
        let t_gen = median(&genisoimage, src, &out, *n);
        let t_xor = median(&xorriso, src, &out, *n);
        let t_cp = with_cp.then(|| median(&cp, src, &out, *n));
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        let cp_ratio = t_cp.map(|c| r(t_ours, c));
        println!(
            "{:<32} {:>4} {:>12} {:>12} {:>12} {:>12} {:>9.2}x {:>9.2}x {:>10}",
            name,
            n,
            ms(t_ours),
            ms(t_gen),
            ms(t_xor),
            t_cp.map(ms).unwrap_or_else(|| "-".into()),
            r(t_gen, t_ours),
            r(t_xor, t_ours),
            cp_ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "-".into()),
        );
        ok &= t_ours < t_gen && t_ours < t_xor && cp_ratio.is_none_or(|x| x <= 1.5);
    }
    println!(
        "targets (faster than both tools in every case, within 1.5x of cp for (c)): {}",
        if ok { "MET" } else { "NOT MET" }
    );
}
