//! `botmox-loadgen`: simulates N agents speaking the real agent protocol
//! (pairing + register, heartbeat at the server's interval, long-poll claim,
//! `running` → output chunk → `succeeded`) against a control server running
//! as **another process**, dispatches commands at a fixed rate (or ramps the
//! rate), and prints dispatch→claim latency (p50/p99/max), lifecycles/s,
//! the server's RSS and CPU (from `/proc/<pid>`), and, with `--storm`, how
//! long every agent takes to be back after a server restart.
//!
//! Two ways to run it:
//! - **spawn** (`--server-bin target/release/control-server`): the loadgen
//!   starts the server (plain HTTP on loopback, a temporary data dir, SQLite
//!   or `--database-url`), optionally pinned with `taskset` (`--server-cpu`),
//!   and can restart it (`--storm`);
//! - **attach** (`--url … --admin-password … [--server-pid …]`): a server
//!   somebody else started; several loadgen processes can split the agents
//!   (each registers its own, `--name-prefix` tells them apart) so that each
//!   stays under the per-process descriptor limit. `--dispatch-url` sends the
//!   dispatches through another server process on the same database.
//!
//! See docs/benchmarks.md for the figures and how they were taken.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use rand::Rng;
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
#[command(name = "botmox-loadgen", about = "Bot-Mox command-bus load generator")]
struct Args {
    /// Simulated agents (this process).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Commands dispatched per second (this process).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Length of the dispatch phase, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Ramp the rate by this factor per step until p99 > --ramp-p99-ms.
    #[arg(long)]
    ramp: Option<f64>,
    #[arg(long, default_value_t = 100.0)]
    ramp_p99_ms: f64,
    /// Idle phase before dispatching: idle RSS and CPU are measured here.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Spawn this control-server binary (plain HTTP on loopback).
    #[arg(long)]
    server_bin: Option<String>,
    /// Database for the spawned server (default: SQLite in a temporary dir).
    #[arg(long)]
    database_url: Option<String>,
    /// Pin the spawned server to this CPU (`taskset -c`).
    #[arg(long)]
    server_cpu: Option<String>,
    /// Extra argument for the spawned server (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Attach to this server instead of spawning one.
    #[arg(long)]
    url: Option<String>,
    /// Admin password of the attached server (`admin@localhost`).
    #[arg(long)]
    admin_password: Option<String>,
    /// Process id of the attached server (for RSS/CPU).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Dispatch through this server (another process on the same database).
    #[arg(long)]
    dispatch_url: Option<String>,
    /// Agent name prefix (tells several loadgen processes apart).
    #[arg(long, default_value = "load")]
    name_prefix: String,
    /// After the dispatch phase, restart the spawned server and measure how
    /// long every agent takes to be back.
    #[arg(long)]
    storm: bool,
    /// Agents start within this many seconds (random offset each), like a
    /// fleet that did not all boot at the same instant.
    #[arg(long, default_value_t = 30)]
    spread_seconds: u64,
    /// Concurrent registrations.
    #[arg(long, default_value_t = 64)]
    register_concurrency: usize,
    /// PostgreSQL database of an attached server, only to report its size.
    #[arg(long)]
    size_database_url: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Raise the soft open-file limit to the hard one (one socket per agent).
fn raise_nofile_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let l = getrlimit(Resource::Nofile);
        if l.current != l.maximum {
            let r = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: l.maximum,
                    maximum: l.maximum,
                },
            );
            eprintln!(
                "loadgen: RLIMIT_NOFILE soft {:?} -> {:?}: {}",
                l.current,
                l.maximum,
                if r.is_ok() { "raised" } else { "refused" }
            );
        } else {
            eprintln!("loadgen: RLIMIT_NOFILE {:?}", l.current);
        }
    }
}

/// (utime+stime clock ticks, RSS kB, peak RSS kB) of a process.
fn proc_stats(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (n(11) + n(12), kb("VmRSS:"), kb("VmHWM:"))
}

/// CPU share of one core between two `proc_stats` samples.
fn cpu_pct(t0: u64, t1: u64, wall: Duration) -> f64 {
    (t1.saturating_sub(t0)) as f64 / 100.0 / wall.as_secs_f64() * 100.0
}

/// The database's size in bytes: PostgreSQL (`--database-url`) through
/// `psql`, a spawned server's SQLite files (database, WAL) from its data
/// dir; `None` for an attached server on SQLite.
fn database_bytes(a: &Args, server: &Server) -> Option<u64> {
    let url = a.database_url.as_ref().or(a.size_database_url.as_ref());
    if let Some(url) = url {
        let out = Command::new("psql")
            .args([
                url.as_str(),
                "-Atc",
                "SELECT pg_database_size(current_database())",
            ])
            .output()
            .ok()?;
        return String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    }
    let dir = server.data.as_ref()?.path();
    let mut total = 0;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".db") || name.contains(".sqlite") {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Some(total)
}

struct Server {
    child: Option<Child>,
    url: String,
    pid: Option<u32>,
    data: Option<tempfile::TempDir>,
    listen: String,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn_server(
    a: &Args,
    bin: &str,
    data: &std::path::Path,
    listen: &str,
) -> anyhow::Result<Child> {
    let mut cmd = match &a.server_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["serve", "--tls", "off", "--listen", listen, "--data-dir"])
        .arg(data)
        .args([
            "--public-rate-limit-per-minute",
            "100000000",
            "--api-rate-limit-per-minute",
            "100000000",
        ])
        .args(&a.server_args)
        .env(
            "BOTMOX_LOG",
            std::env::var("BOTMOX_LOG")
                .unwrap_or_else(|_| "warn,control_server::server=info".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(db) = &a.database_url {
        cmd.args(["--database-url", db]);
    }
    let mut child = cmd.spawn().with_context(|| format!("start {bin}"))?;
    let mut lines = BufReader::new(child.stderr.take().context("server stderr")?).lines();
    loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow!("the server exited before listening"))??;
        if line.contains("RLIMIT_NOFILE") {
            eprintln!("server: {}", line.trim());
        }
        if line.contains("listening on ") {
            break;
        }
    }
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains("WARN") || l.contains("ERROR") {
                eprintln!("server: {l}");
            }
        }
    });
    Ok(child)
}

impl Server {
    fn start(a: &Args) -> anyhow::Result<Server> {
        if let Some(bin) = &a.server_bin {
            let data = tempfile::tempdir()?;
            let listen = format!("127.0.0.1:{}", free_port()?);
            let child = spawn_server(a, bin, data.path(), &listen)?;
            // With taskset the child is taskset, which execs the server: same pid.
            let pid = child.id();
            Ok(Server {
                url: format!("http://{listen}"),
                pid: Some(pid),
                child: Some(child),
                data: Some(data),
                listen,
            })
        } else {
            let url = a
                .url
                .clone()
                .ok_or_else(|| anyhow!("give --server-bin (spawn) or --url (attach)"))?;
            Ok(Server {
                child: None,
                pid: a.server_pid,
                data: None,
                listen: String::new(),
                url,
            })
        }
    }

    fn admin_password(&self, a: &Args) -> anyhow::Result<String> {
        match (&self.data, &a.admin_password) {
            (_, Some(p)) => Ok(p.clone()),
            (Some(d), None) => Ok(std::fs::read_to_string(
                d.path().join("initial-admin-password"),
            )?
            .trim()
            .to_string()),
            (None, None) => bail!("--admin-password is required with --url"),
        }
    }

    /// SIGTERM, wait, start again on the same data dir and port.
    fn restart(&mut self, a: &Args) -> anyhow::Result<Instant> {
        let (Some(child), Some(data), Some(bin)) = (&mut self.child, &self.data, &a.server_bin)
        else {
            bail!("--storm needs a spawned server (--server-bin)");
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait()?;
        let fresh = spawn_server(a, bin, data.path(), &self.listen)?;
        let ready = Instant::now();
        self.pid = Some(fresh.id());
        self.child = Some(fresh);
        Ok(ready)
    }

    fn stop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

/// Shared counters of all simulated agents.
#[derive(Default)]
struct Shared {
    claims: Mutex<HashMap<String, Instant>>,
    completed: AtomicUsize,
    /// Per agent: ms since `epoch` of its last successful heartbeat.
    last_hb_ok: Vec<AtomicU64>,
    /// Answers by class, counted from `count_from` on.
    too_many: AtomicUsize,
    errors: AtomicUsize,
    refused: AtomicUsize,
    counting: AtomicBool,
}

struct Agent {
    index: usize,
    token: String,
}

async fn post(c: &reqwest::Client, url: &str, token: &str, body: Value) -> anyhow::Result<Value> {
    let r = c.post(url).bearer_auth(token).json(&body).send().await?;
    let st = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !st.is_success() {
        bail!("{url}: {st}: {v}");
    }
    Ok(v)
}

/// Pair and register one agent: `(agent id, agent token)`.
async fn register(
    c: &reqwest::Client,
    base: &str,
    admin: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let p = post(
        c,
        &format!("{base}/api/v1/agents/pairings"),
        admin,
        json!({"name": name}),
    )
    .await?;
    let code = p["data"]["pairing_code"]
        .as_str()
        .ok_or_else(|| anyhow!("no pairing code: {p}"))?;
    let r = c
        .post(format!("{base}/api/v1/agents/register"))
        .json(&json!({"pairing_code": code, "machine_name": name, "version": "loadgen", "platform": "linux", "capabilities": ["proxmox"]}))
        .send()
        .await?;
    let v: Value = r.json().await?;
    match (
        v["data"]["agent"]["id"].as_str(),
        v["data"]["agent_token"].as_str(),
    ) {
        (Some(id), Some(token)) => Ok((id.to_string(), token.to_string())),
        _ => Err(anyhow!("register failed: {v}")),
    }
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// One agent, like the reference agent: heartbeat at the dictated
/// interval, long poll, run each command; after any failure back off
/// (1 s → 30 s, ±20 %, `Retry-After` on 429) and heartbeat first.
async fn agent_loop(
    c: reqwest::Client,
    base: String,
    me: Agent,
    shared: Arc<Shared>,
    epoch: Instant,
    stop: Arc<tokio::sync::Notify>,
    start_after: Duration,
) {
    tokio::time::sleep(start_after).await;
    let mut poll_ms = 50_000u64;
    let mut next_hb = Instant::now();
    let mut backoff = Duration::from_secs(1);
    let record = |r: &Result<reqwest::Response, reqwest::Error>| {
        if !shared.counting.load(Ordering::Relaxed) {
            return None;
        }
        match r {
            Ok(r) if r.status().as_u16() == 429 => {
                shared.too_many.fetch_add(1, Ordering::Relaxed);
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
            }
            Ok(r) if !r.status().is_success() && r.status().as_u16() != 204 => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(_) => None,
            Err(_) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    };
    loop {
        let mut failed: Option<Option<Duration>> = None;
        if Instant::now() >= next_hb {
            let r = c
                .post(format!("{base}/api/v1/agents/heartbeat"))
                .bearer_auth(&me.token)
                .json(&json!({"version": "loadgen"}))
                .send()
                .await;
            let retry_after = record(&r);
            match r {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    let i = &v["data"]["intervals"];
                    // the server's jittered delay, within the interval
                    let interval_ms = i["heartbeat_interval_s"].as_u64().unwrap_or(30) * 1000;
                    let hb_every = Duration::from_millis(
                        v["data"]["next_heartbeat_in_ms"]
                            .as_u64()
                            .map_or(interval_ms, |ms| ms.clamp(1000, interval_ms)),
                    );
                    poll_ms = i["poll_timeout_s"].as_u64().unwrap_or(50) * 1000;
                    shared.last_hb_ok[me.index]
                        .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    next_hb = Instant::now() + hb_every;
                    backoff = Duration::from_secs(1);
                }
                _ => failed = Some(retry_after),
            }
        }
        if failed.is_none() {
            // One connection per agent: the poll ends by the time the next
            // heartbeat is due, so heartbeats go out when the server said
            // (a real agent heartbeats from a task of its own).
            let until_hb = next_hb
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
            let timeout_ms = until_hb.clamp(1000, poll_ms);
            let poll = c
                .get(format!(
                    "{base}/api/v1/vm-ops/commands/next?timeout_ms={timeout_ms}"
                ))
                .bearer_auth(&me.token)
                .timeout(Duration::from_millis(timeout_ms + 10_000))
                .send();
            let r = tokio::select! {
                r = poll => r,
                _ = stop.notified() => return,
            };
            let retry_after = record(&r);
            match r {
                Ok(r) if r.status().as_u16() == 200 => {
                    let at = Instant::now();
                    let cmd: Value = r.json().await.unwrap_or(Value::Null);
                    if let Some(id) = cmd["data"]["id"].as_str() {
                        shared
                            .claims
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.to_string(), at);
                        if run_lifecycle(
                            &c,
                            &base,
                            &me.token,
                            id,
                            cmd["data"]["attempt"].as_i64().unwrap_or(1),
                        )
                        .await
                        {
                            shared.completed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(r) if r.status().as_u16() == 204 => {}
                _ => failed = Some(retry_after),
            }
        }
        if let Some(retry_after) = failed {
            let wait = retry_after.unwrap_or_else(|| jitter(backoff));
            backoff = (backoff * 2).min(Duration::from_secs(30));
            next_hb = Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.notified() => return,
            }
        }
    }
}

/// `running` → one output chunk → `succeeded`.
async fn run_lifecycle(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    attempt: i64,
) -> bool {
    let url = format!("{base}/api/v1/vm-ops/commands/{id}");
    let patch = |status: &'static str| {
        c.patch(&url)
            .bearer_auth(token)
            .json(&json!({"status": status, "attempt": attempt}))
            .send()
    };
    let ok = |r: Result<reqwest::Response, reqwest::Error>| {
        r.map(|r| r.status().is_success()).unwrap_or(false)
    };
    if !ok(patch("running").await) {
        return false;
    }
    let out = c
        .post(format!("{url}/output"))
        .bearer_auth(token)
        .json(&json!({"chunks": [{"seq": 0, "stream": "stdout", "data": "started\n"}]}))
        .send()
        .await;
    if !ok(out) {
        return false;
    }
    ok(patch("succeeded").await)
}

struct Phase {
    rate: f64,
    sent: usize,
    done: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    lifecycles_s: f64,
    cpu: f64,
    rss_kb: u64,
}

/// Where and to whom commands are dispatched.
struct Target {
    c: reqwest::Client,
    dispatch_base: String,
    admin: String,
    agent_ids: Vec<String>,
    shared: Arc<Shared>,
    pid: Option<u32>,
}

/// Dispatch `rate`/s for `seconds`, round-robin; wait for the lifecycles.
async fn dispatch_phase(t: &Target, rate: f64, seconds: u64) -> Phase {
    let (c, dispatch_base, admin, agent_ids, shared, pid) = (
        &t.c,
        t.dispatch_base.as_str(),
        t.admin.as_str(),
        &t.agent_ids,
        &t.shared,
        t.pid,
    );
    let total = (rate * seconds as f64).round() as usize;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let done0 = shared.completed.load(Ordering::Relaxed);
    let (ticks0, _, _) = pid.map(proc_stats).unwrap_or_default();
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (c, url, admin, sent) = (
            c.clone(),
            format!("{dispatch_base}/api/v1/vm-ops/proxmox/start"),
            admin.to_string(),
            sent.clone(),
        );
        let agent = agent_ids[i % agent_ids.len()].clone();
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            match post(
                &c,
                &url,
                &admin,
                json!({"agent_id": agent, "params": {"vmid": 100 + i % 1000}}),
            )
            .await
            {
                Ok(v) => {
                    if let Some(id) = v["data"]["id"].as_str() {
                        sent.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.to_string(), at);
                    }
                }
                Err(e) => eprintln!("dispatch failed: {e}"),
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.completed.load(Ordering::Relaxed) - done0 < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t0.elapsed();
    let (ticks1, rss, _) = pid.map(proc_stats).unwrap_or_default();
    let done = shared.completed.load(Ordering::Relaxed) - done0;
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let claims = shared.claims.lock().unwrap_or_else(|e| e.into_inner());
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, s)| claims.get(id).map(|c| c.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    Phase {
        rate,
        sent: sent.len(),
        done,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        max: lat.last().copied().unwrap_or_default(),
        lifecycles_s: done as f64 / wall.as_secs_f64(),
        cpu: cpu_pct(ticks0, ticks1, wall),
        rss_kb: rss,
    }
}

fn print_phase(label: &str, agents: usize, p: &Phase) {
    println!(
        "{label}: agents {agents} rate {:.0}/s sent {} done {} | dispatch->claim p50 {:.1} ms p99 {:.1} ms max {:.1} ms | {:.1} lifecycles/s | server CPU {:.0}% of a core, RSS {:.1} MB",
        p.rate,
        p.sent,
        p.done,
        ms(p.p50),
        ms(p.p99),
        ms(p.max),
        p.lifecycles_s,
        p.cpu,
        p.rss_kb as f64 / 1024.0
    );
}

async fn run(a: Args) -> anyhow::Result<()> {
    raise_nofile_limit();
    let mut server = Server::start(&a)?;
    let base = server.url.clone();
    let dispatch_base = a.dispatch_url.clone().unwrap_or_else(|| base.clone());
    let c = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let pw = server.admin_password(&a)?;
    let login: Value = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "admin@localhost", "password": pw}))
        .send()
        .await?
        .json()
        .await?;
    let admin = login["data"]["token"]
        .as_str()
        .ok_or_else(|| anyhow!("login failed: {login}"))?
        .to_string();

    // Register.
    let t_reg = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(a.register_concurrency));
    let mut regs = Vec::with_capacity(a.agents);
    for i in 0..a.agents {
        let (c, base, admin, sem) = (c.clone(), base.clone(), admin.clone(), sem.clone());
        let name = format!("{}-{i}", a.name_prefix);
        regs.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            register(&c, &base, &admin, &name).await
        }));
    }
    let mut tokens = Vec::with_capacity(a.agents);
    let mut agent_ids = Vec::with_capacity(a.agents);
    for r in regs {
        let (id, token) = r.await??;
        agent_ids.push(id);
        tokens.push(token);
    }
    let reg_time = t_reg.elapsed();
    eprintln!(
        "registered {} agents in {:.1} s",
        a.agents,
        reg_time.as_secs_f64()
    );

    let shared = Arc::new(Shared {
        last_hb_ok: (0..a.agents).map(|_| AtomicU64::new(0)).collect(),
        ..Default::default()
    });
    let epoch = Instant::now();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::with_capacity(a.agents);
    for (index, token) in tokens.into_iter().enumerate() {
        workers.push(tokio::spawn(agent_loop(
            c.clone(),
            base.clone(),
            Agent { index, token },
            shared.clone(),
            epoch,
            stop.clone(),
            Duration::from_millis(if a.spread_seconds == 0 {
                0
            } else {
                rand::rng().random_range(0..a.spread_seconds * 1000)
            }),
        )));
    }
    // Idle: every agent heartbeats and long-polls (after the start spread).
    tokio::time::sleep(Duration::from_secs(a.spread_seconds + 2)).await;
    let (it0, _, _) = server.pid.map(proc_stats).unwrap_or_default();
    let t_idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.idle_seconds)).await;
    let (it1, rss_idle, _) = server.pid.map(proc_stats).unwrap_or_default();
    let idle_cpu = cpu_pct(it0, it1, t_idle.elapsed());
    println!(
        "idle: {} agents for {} s | server CPU {:.1}% of a core, RSS {:.1} MB",
        a.agents,
        a.idle_seconds,
        idle_cpu,
        rss_idle as f64 / 1024.0
    );

    let db_before = database_bytes(&a, &server);
    let done_before = shared.completed.load(Ordering::Relaxed);
    let target = Target {
        c: c.clone(),
        dispatch_base,
        admin,
        agent_ids,
        shared: shared.clone(),
        pid: server.pid,
    };
    let fixed = dispatch_phase(&target, a.rate as f64, a.seconds).await;
    print_phase("fixed", a.agents, &fixed);
    if let Some(factor) = a.ramp {
        let mut rate = a.rate as f64;
        let mut best: Option<Phase> = None;
        loop {
            rate *= factor;
            let p = dispatch_phase(&target, rate, a.seconds).await;
            print_phase("ramp", a.agents, &p);
            if ms(p.p99) > a.ramp_p99_ms || p.done < p.sent {
                break;
            }
            best = Some(p);
        }
        match best {
            Some(b) => println!(
                "maximum sustainable (p99 <= {} ms, all done): {:.0} dispatched/s, {:.1} lifecycles/s",
                a.ramp_p99_ms, b.rate, b.lifecycles_s
            ),
            None => println!("no ramp step above {} /s stayed under p99 {} ms", a.rate, a.ramp_p99_ms),
        }
    }

    if let (Some(b), Some(after)) = (db_before, database_bytes(&a, &server)) {
        let lifecycles = shared.completed.load(Ordering::Relaxed) - done_before;
        println!(
            "database: {:.1} MB with {} agents registered, {:.1} MB after {} lifecycles ({:.2} KB per lifecycle)",
            b as f64 / 1e6,
            a.agents,
            after as f64 / 1e6,
            lifecycles,
            after.saturating_sub(b) as f64 / 1e3 / lifecycles.max(1) as f64
        );
    }
    if a.storm {
        shared.counting.store(true, Ordering::Relaxed);
        let down = Instant::now();
        let ready = server.restart(&a)?;
        let ready_ms = epoch.elapsed().as_millis() as u64;
        eprintln!(
            "server restarted (down {:.1} s); waiting for every agent",
            ready.duration_since(down).as_secs_f64()
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let back = shared
                .last_hb_ok
                .iter()
                .filter(|t| t.load(Ordering::Relaxed) >= ready_ms)
                .count();
            if back == a.agents || Instant::now() > deadline {
                println!(
                    "storm: {back}/{} agents heartbeated again {:.1} s after the server was ready | answers after restart: {} x 429, {} other errors, {} connection failures",
                    a.agents,
                    ready.elapsed().as_secs_f64(),
                    shared.too_many.load(Ordering::Relaxed),
                    shared.errors.load(Ordering::Relaxed),
                    shared.refused.load(Ordering::Relaxed),
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.notify_waiters();
    for w in workers {
        w.abort();
    }
    println!(
        "| {} | {:.0}/s | {:.1} | {:.1} | {:.1} | {}/{} | {:.0}/s | {:.0} MB | {:.1}% | {:.0} MB | {:.0}% | {:.0} s |",
        a.agents,
        fixed.rate,
        ms(fixed.p50),
        ms(fixed.p99),
        ms(fixed.max),
        fixed.done,
        fixed.sent,
        fixed.lifecycles_s,
        rss_idle as f64 / 1024.0,
        idle_cpu,
        fixed.rss_kb as f64 / 1024.0,
        fixed.cpu,
        reg_time.as_secs_f64()
    );
    server.stop();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(a))
}
