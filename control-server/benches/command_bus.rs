//! Command-bus load benchmark (not a test): starts the real server binary,
//! registers N simulated agents that heartbeat and long-poll, dispatches
//! commands at a fixed rate, and prints dispatch→claim latency (p50/p99),
//! full-lifecycle throughput, and the server's RSS and CPU.
//!
//!   cargo bench -p control-server --bench command_bus
//!
//! Environment: BOTMOX_BENCH_AGENTS (default "1000,5000"),
//! BOTMOX_BENCH_RATE (commands/s, default 200), BOTMOX_BENCH_SECONDS
//! (dispatch phase, default 10), BOTMOX_BENCH_POSTGRES (a server URL such as
//! postgres://postgres@127.0.0.1:5432; a fresh database is created per run;
//! default: SQLite).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_control-server");

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

struct Server {
    child: Child,
    url: String,
    data: tempfile::TempDir,
}

fn start_server() -> Server {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--tls",
        "off",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data.path())
    .args([
        "--public-rate-limit-per-minute",
        "100000000",
        "--api-rate-limit-per-minute",
        "100000000",
    ])
    .env("BOTMOX_LOG", "warn,control_server::server=info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Ok(base) = std::env::var("BOTMOX_BENCH_POSTGRES") {
        let name = format!(
            "botmox_bench_{}",
            std::process::id() ^ (data.path().as_os_str().len() as u32) ^ rand_suffix()
        );
        let ok = Command::new("psql")
            .args([
                &format!("{base}/postgres"),
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cannot create database {name} on {base}");
        cmd.args(["--database-url", &format!("{base}/{name}")]);
    }
    let mut child = cmd.spawn().expect("start control-server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(i) = line.find("listening on ") {
            break line[i + 13..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, url, data }
}

/// (utime+stime in clock ticks, RSS kB, peak RSS kB) of a process.
fn proc_stats(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks, kb("VmRSS:"), kb("VmHWM:"))
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The server's `Retry-After` (seconds), else 1 s.
fn retry_after(resp: &reqwest::Response) -> Duration {
    let s = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Duration::from_secs(s)
}

async fn post(c: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    c.post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn run(n_agents: usize, rate: u64, seconds: u64) {
    let server = start_server();
    let pid = server.child.id();
    let base = server.url.clone();
    let client = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap();
    let pw = std::fs::read_to_string(server.data.path().join("initial-admin-password")).unwrap();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "admin@localhost", "password": pw.trim()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["data"]["token"].as_str().unwrap().to_string();

    // Register agents (64 at a time).
    let t_reg = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut regs = vec![];
    for i in 0..n_agents {
        let (c, base, admin, sem) = (client.clone(), base.clone(), admin.clone(), sem.clone());
        regs.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            let p = post(
                &c,
                format!("{base}/api/v1/agents/pairings"),
                &admin,
                json!({"name": format!("bench-{i}")}),
            )
            .await;
            let code = p["data"]["pairing_code"].as_str().unwrap().to_string();
            let r: Value = c
                .post(format!("{base}/api/v1/agents/register"))
                .json(&json!({"pairing_code": code}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                r["data"]["agent"]["id"].as_str().unwrap().to_string(),
                r["data"]["agent_token"].as_str().unwrap().to_string(),
            )
        }));
    }
    let mut agents = vec![];
    for r in regs {
        agents.push(r.await.unwrap());
    }
    let reg_time = t_reg.elapsed();

    // Agents: heartbeat, then long-poll; run each command (running → succeeded).
    let claims: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let completed = Arc::new(AtomicUsize::new(0));
    // Polls answered neither 200 nor 204, by status.
    let refused: Arc<Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = vec![];
    for (_, token) in &agents {
        let (c, base, token) = (client.clone(), base.clone(), token.clone());
        let (claims, completed, stop) = (claims.clone(), completed.clone(), stop.clone());
        let refused = refused.clone();
        workers.push(tokio::spawn(async move {
            let hb = post(
                &c,
                format!("{base}/api/v1/agents/heartbeat"),
                &token,
                json!({}),
            )
            .await;
            // Obey the server's intervals, as a real agent does.
            let interval = hb["data"]["intervals"]["heartbeat_interval_s"]
                .as_u64()
                .unwrap_or(30);
            let poll_ms = hb["data"]["intervals"]["poll_timeout_s"]
                .as_u64()
                .unwrap_or(50)
                * 1000;
            let mut last_hb = Instant::now();
            loop {
                if last_hb.elapsed() >= Duration::from_secs(interval) {
                    post(
                        &c,
                        format!("{base}/api/v1/agents/heartbeat"),
                        &token,
                        json!({}),
                    )
                    .await;
                    last_hb = Instant::now();
                }
                let poll = c
                    .get(format!(
                        "{base}/api/v1/vm-ops/commands/next?timeout_ms={poll_ms}"
                    ))
                    .bearer_auth(&token)
                    .send();
                let resp = tokio::select! {
                    r = poll => r,
                    _ = stop.notified() => return,
                };
                let Ok(resp) = resp else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                match resp.status().as_u16() {
                    200 => {}
                    204 => continue,
                    // Shed or failing: wait as a real agent does.
                    code => {
                        refused
                            .lock()
                            .unwrap()
                            .entry(code)
                            .and_modify(|n| *n += 1)
                            .or_insert(1u64);
                        tokio::time::sleep(retry_after(&resp)).await;
                        continue;
                    }
                }
                let at = Instant::now();
                let cmd: Value = resp.json().await.unwrap();
                let id = cmd["data"]["id"].as_str().unwrap().to_string();
                claims.lock().unwrap().insert(id.clone(), at);
                let url = format!("{base}/api/v1/vm-ops/commands/{id}");
                for status in ["running", "succeeded"] {
                    c.patch(&url)
                        .bearer_auth(&token)
                        .json(&json!({"status": status, "attempt": 1}))
                        .send()
                        .await
                        .unwrap();
                }
                completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ticks0, _, _) = proc_stats(pid);
    let (_, rss_idle, _) = proc_stats(pid);

    // Dispatch at a fixed rate, round-robin over agents.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let shed = Arc::new(AtomicUsize::new(0));
    let total = (rate * seconds) as usize;
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut dispatches = vec![];
    for i in 0..total {
        tick.tick().await;
        let (c, base, admin, sent) = (client.clone(), base.clone(), admin.clone(), sent.clone());
        let shed = shed.clone();
        let agent_id = agents[i % agents.len()].0.clone();
        dispatches.push(tokio::spawn(async move {
            // Latency counts from the first attempt; a shed dispatch is
            // retried after its Retry-After, as a client should.
            let at = Instant::now();
            let r = loop {
                let resp = c
                    .post(format!("{base}/api/v1/vm-ops/proxmox/start"))
                    .bearer_auth(&admin)
                    .json(&json!({"agent_id": agent_id, "params": {"vmid": i}}))
                    .send()
                    .await
                    .unwrap();
                if resp.status().as_u16() == 429 {
                    shed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(retry_after(&resp)).await;
                    continue;
                }
                break resp.json::<Value>().await.unwrap();
            };
            if let Some(id) = r["data"]["id"].as_str() {
                sent.lock().unwrap().insert(id.to_string(), at);
            } else {
                eprintln!("dispatch failed: {r}");
            }
        }));
    }
    for d in dispatches {
        d.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = t0.elapsed();
    let (ticks1, rss, peak) = proc_stats(pid);
    let done = completed.load(Ordering::Relaxed);
    stop.notify_waiters();
    for w in workers {
        w.abort();
    }

    let sent = sent.lock().unwrap();
    let claims = claims.lock().unwrap();
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, s)| claims.get(id).map(|c| c.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    let shed = shed.load(Ordering::Relaxed);
    if shed > 0 {
        eprintln!("{n_agents} agents: {shed} dispatch attempts were shed (429) and retried");
    }
    let refused = refused.lock().unwrap();
    if !refused.is_empty() {
        eprintln!("{n_agents} agents: polls answered with (status: count) {refused:?}");
    }
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (ticks1 - ticks0) as f64 / hz / wall.as_secs_f64() * 100.0;
    println!(
        "| {n_agents:>6} | {rate:>5}/s | {:>6.1} | {:>7.1} | {:>7.1} | {:>6}/{:<6} | {:>8.1}/s | {:>7.1} | {:>7.1} | {:>7.1} | {:>5.0}% | {:>6.1}s |",
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        done,
        total,
        done as f64 / wall.as_secs_f64(),
        rss_idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        cpu,
        reg_time.as_secs_f64(),
    );
    let mut child = server.child;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}

fn main() {
    let agents: Vec<usize> = std::env::var("BOTMOX_BENCH_AGENTS")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let rate = env_or("BOTMOX_BENCH_RATE", 200u64);
    let seconds = env_or("BOTMOX_BENCH_SECONDS", 10u64);
    let backend = std::env::var("BOTMOX_BENCH_POSTGRES")
        .map(|_| "postgres")
        .unwrap_or("sqlite");
    println!("command bus benchmark: backend {backend}, plain HTTP on loopback, {seconds} s dispatch phase");
    println!("| agents | rate    | p50 ms | p99 ms  | max ms  | done/sent     | lifecycles  | RSS idle MB | RSS MB | peak MB | CPU   | register |");
    println!("|-------:|--------:|-------:|--------:|--------:|--------------:|------------:|--------:|--------:|--------:|------:|-------:|");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in agents {
        rt.block_on(run(n, rate, seconds));
    }
}
