//! The Windows agent under Wine: the REAL `botmox-agent.exe` (built for
//! `x86_64-pc-windows-gnu` by `scripts/wine-test-env.sh`) run by Debian's
//! Wine 8 in a private WINEPREFIX, against the REAL control-server
//! (in-process, see `runtime::Server`), pve-sim and a real OpenSSH sshd on
//! loopback. Nothing of the Linux agent is used: every agent step is the
//! Windows binary, with its Windows defaults (config in `%APPDATA%`, logs in
//! `%LOCALAPPDATA%`, the Credential Manager as secret store, the Service
//! Control Manager for service mode).
//!
//! Wine 8 lacks `bcryptprimitives.dll` (`ProcessPrng`, which Rust's std
//! calls for randomness on Windows); the tests build a tiny stand-in from
//! `agent-core/tests/wine/bcryptprimitives.c` with mingw-w64 and put it
//! beside the exe in the test's temp dir. Real Windows ships that DLL.
//!
//! Requirements: `wine`, `wineserver`, `x86_64-w64-mingw32-gcc` and the
//! Windows build of the agent (`BOTMOX_WIN_BIN_DIR`, else
//! `<target>/x86_64-pc-windows-gnu/debug/`). When one is missing the tests
//! fail under `CI=true` or `BOTMOX_REQUIRE_WINE=1` (set by
//! `scripts/test.sh`), and otherwise say plainly that they did not run.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use pve_sim::PveSim;
use serde_json::{json, Value};

use crate::common::{free_port, keygen, run_tool};
use crate::runtime::{sim, wait_until, walk, Server};

/// Where the SCM keeps a service's registration.
const SERVICE_KEY: &str = r"HKLM\System\CurrentControlSet\Services\BotMoxAgent";

const SHIM_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wine/bcryptprimitives.c");

// ------------------------------------------------------------------ wine

/// What the Wine tests need, or why they cannot run.
fn requirements(exe_names: &[&str]) -> Result<PathBuf, String> {
    for tool in ["wine", "wineserver", "wineboot", "x86_64-w64-mingw32-gcc"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            return Err(format!("{tool} is not installed"));
        }
    }
    let dir = win_bin_dir();
    for name in exe_names {
        if !dir.join(name).is_file() {
            return Err(format!(
                "{} is missing (build it with scripts/wine-test-env.sh)",
                dir.join(name).display()
            ));
        }
    }
    Ok(dir)
}

/// Where the Windows binaries are: `BOTMOX_WIN_BIN_DIR`, else
/// `<target>/x86_64-pc-windows-gnu/debug` next to this test's host build.
pub(crate) fn win_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BOTMOX_WIN_BIN_DIR") {
        return PathBuf::from(d);
    }
    let host = Path::new(env!("CARGO_BIN_EXE_botmox-agent"));
    let target = host
        .parent()
        .and_then(Path::parent)
        .expect("<target>/debug/botmox-agent");
    target.join("x86_64-pc-windows-gnu").join("debug")
}

/// Ok(dir) when the Wine suite can run; Err after saying why it did not
/// (outside CI). Under `CI=true` or `BOTMOX_REQUIRE_WINE=1` it panics.
pub(crate) fn require(test: &str, exe_names: &[&str]) -> Option<PathBuf> {
    match requirements(exe_names) {
        Ok(d) => Some(d),
        Err(why) => {
            let strict = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
                || std::env::var("BOTMOX_REQUIRE_WINE").is_ok_and(|v| v == "1");
            assert!(
                !strict,
                "{test}: the Wine suite must run here but cannot: {why}"
            );
            eprintln!("{test} NOT RUN: {why}; run `bash scripts/wine-test-env.sh` first");
            None
        }
    }
}

/// A private Wine prefix in a temp dir with a persistent wineserver for
/// the test's life (`wineserver -k` on drop), and a bin dir holding the
/// Windows executables and the `bcryptprimitives.dll` stand-in.
pub(crate) struct Wine {
    _tmp: tempfile::TempDir,
    pub(crate) prefix: PathBuf,
    pub(crate) bin: PathBuf,
    /// scratch space outside the prefix (logs of runs, keys, outputs)
    pub(crate) scratch: PathBuf,
    server: Option<Child>,
}

impl Wine {
    /// `exes`: file names to copy from `src` into the bin dir.
    pub(crate) fn new(src: &Path, exes: &[&str]) -> Wine {
        // BOTMOX_WINE_KEEP=1 keeps the prefix, logs and outputs for a look
        let tmp = tempfile::Builder::new()
            .prefix("botmox-wine-")
            .disable_cleanup(std::env::var("BOTMOX_WINE_KEEP").is_ok_and(|v| v == "1"))
            .tempdir()
            .unwrap();
        let prefix = tmp.path().join("prefix");
        let bin = tmp.path().join("bin");
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        for e in exes {
            std::fs::copy(src.join(e), bin.join(e)).unwrap();
        }
        let gcc = Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-Wall", "-Werror", "-o"])
            .arg(bin.join("bcryptprimitives.dll"))
            .arg(SHIM_SOURCE)
            .arg("-ladvapi32")
            .output()
            .expect("x86_64-w64-mingw32-gcc");
        assert!(
            gcc.status.success(),
            "building the bcryptprimitives shim: {}",
            String::from_utf8_lossy(&gcc.stderr)
        );
        let mut w = Wine {
            _tmp: tmp,
            prefix,
            bin,
            scratch,
            server: None,
        };
        let t0 = Instant::now();
        // the server needs the prefix dir; wineboot then fills it
        std::fs::create_dir_all(&w.prefix).unwrap();
        w.start_server();
        let mut boot = Command::new("wineboot");
        w.env(&mut boot);
        // Not piped: the system processes wineboot starts (services.exe,
        // …) inherit its stdout/stderr and live as long as the wineserver,
        // so reading a pipe to its end would never finish.
        let boot_log = w.scratch.join("wineboot.log");
        let st = boot
            .arg("-i")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&boot_log).unwrap())
            .stderr(std::fs::File::create(w.scratch.join("wineboot.err")).unwrap())
            .status()
            .expect("wineboot");
        assert!(
            st.success(),
            "wineboot -i: {}",
            std::fs::read_to_string(w.scratch.join("wineboot.err")).unwrap_or_default()
        );
        assert!(w.prefix.join("drive_c/windows/system32").is_dir());
        // `wineboot -i` leaves TWO services.exe behind (one from before the
        // prefix was initialised, one after): two Service Control Managers
        // answer on the same pipe, each with its own service list, so a
        // service created through one is unknown to the other (`sc query`
        // 1060 one call, `sc start` 1055/1056 the next). Restart the
        // wineserver on the initialised prefix: a plain `wineboot` then
        // starts exactly one.
        let mut kill = Command::new("wineserver");
        w.env(&mut kill);
        assert!(kill.arg("-k").status().expect("wineserver -k").success());
        if let Some(mut old) = w.server.take() {
            let _ = old.wait();
        }
        w.start_server();
        let mut boot = Command::new("wineboot");
        w.env(&mut boot);
        let st = boot
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(w.scratch.join("wineboot2.log")).unwrap())
            .stderr(std::fs::File::create(w.scratch.join("wineboot2.err")).unwrap())
            .status()
            .expect("wineboot");
        assert!(st.success(), "wineboot after the restart");
        eprintln!("wine prefix ready in {:.1} s", t0.elapsed().as_secs_f64());
        w
    }

    /// A persistent wineserver for the prefix (`-p`: it outlives the
    /// processes; `Drop` kills it).
    fn start_server(&mut self) {
        let mut server = Command::new("wineserver");
        self.env(&mut server);
        self.server = Some(
            server
                .args(["-f", "-p"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("wineserver"),
        );
    }

    fn env(&self, c: &mut Command) {
        c.env("WINEPREFIX", &self.prefix)
            .env("WINEARCH", "win64")
            .env("WINEDEBUG", "-all")
            // no Mono/Gecko download prompts, no menu entries on the host
            .env("WINEDLLOVERRIDES", "mscoree,mshtml,winemenubuilder.exe=")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("BOTMOX_AGENT_LOG")
            .env_remove("BOTMOX_AGENT_CONFIG_DIR")
            .env_remove("BOTMOX_AGENT_SECRET_STORE");
    }

    /// `wine <program> <args>` (a Windows program by name, e.g. `sc`, or a
    /// path to an exe).
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("wine");
        c.arg(program);
        self.env(&mut c);
        c
    }

    /// Runs to completion: (exit code, stdout, stderr).
    pub(crate) fn run(
        &self,
        program: impl AsRef<OsStr>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (i32, String, String) {
        let mut child = self
            .command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wine");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
            String::from_utf8_lossy(&out.stderr).replace('\r', ""),
        )
    }

    pub(crate) async fn run_async(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (i32, String, String) {
        let mut c = self.command(program);
        c.args(args);
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().expect("wine");
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
            drop(input);
            let out = child.wait_with_output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).replace('\r', ""),
                String::from_utf8_lossy(&out.stderr).replace('\r', ""),
            )
        })
        .await
        .unwrap()
    }

    pub(crate) fn exe(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// `C:\` of the prefix, on the Linux side.
    pub(crate) fn drive_c(&self) -> PathBuf {
        self.prefix.join("drive_c")
    }

    /// The Windows profile of the user Wine runs as
    /// (`C:\users\<name>`), on the Linux side.
    pub(crate) fn profile(&self) -> PathBuf {
        let users = self.drive_c().join("users");
        std::fs::read_dir(&users)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n != "Public") && p.is_dir())
            .expect("a user profile in the prefix")
    }

    /// A Linux path as Wine sees it (`Z:` maps `/`).
    pub(crate) fn win_path(p: &Path) -> String {
        format!("Z:{}", p.display()).replace('/', "\\")
    }

    /// `reg query KEY [/v VALUE]` through Wine's reg.exe: stdout on success.
    pub(crate) fn reg_query(&self, key: &str, value: Option<&str>) -> Option<String> {
        let mut args = vec!["query", key];
        if let Some(v) = value {
            args.extend(["/v", v]);
        }
        let (code, out, _) = self.run("reg", &args, None);
        (code == 0).then_some(out)
    }

    /// `sc query NAME` → the state word (`RUNNING`, `STOPPED`, …), None
    /// when the service does not exist.
    /// (Wine's `sc query` fails now and then right after the service was
    /// created or changed state: retried while the SCM's registry key
    /// exists.)
    pub(crate) fn service_state(&self, name: &str) -> Option<String> {
        let key = format!(r"HKLM\System\CurrentControlSet\Services\{name}");
        for _ in 0..20 {
            let (code, out, _) = self.run("sc", &["query", name], None);
            if code == 0 {
                return out
                    .lines()
                    .find(|l| l.contains("STATE"))
                    .and_then(|l| l.split_whitespace().last())
                    .map(str::to_string);
            }
            self.reg_query(&key, None)?;
            std::thread::sleep(Duration::from_millis(300));
        }
        Some("UNKNOWN".into())
    }

    pub(crate) async fn wait_service_state(&self, name: &str, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let st = self.service_state(name);
            if st.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "service {name} not {want} in time: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let mut k = Command::new("wineserver");
        self.env(&mut k);
        let _ = k.arg("-k").status();
        if let Some(mut s) = self.server.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

// ------------------------------------------------------------------ agent

/// `botmox-agent.exe` in a Wine prefix, with its Windows default paths.
struct WinAgent<'a> {
    wine: &'a Wine,
    /// extra global arguments (e.g. `--config-dir`), before the command
    global: Vec<String>,
    child: Option<Child>,
    runs: u32,
}

impl<'a> WinAgent<'a> {
    fn new(wine: &'a Wine, global: &[&str]) -> WinAgent<'a> {
        WinAgent {
            wine,
            global: global.iter().map(|s| s.to_string()).collect(),
            child: None,
            runs: 0,
        }
    }

    fn exe(&self) -> String {
        self.wine.exe("botmox-agent.exe").display().to_string()
    }

    async fn cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend(args);
        self.wine.run_async(&self.exe(), &all, stdin).await
    }

    async fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out, err) = self.cli(args, stdin).await;
        assert_eq!(code, 0, "botmox-agent.exe {args:?}: {out}\n{err}");
        out
    }

    async fn status(&self) -> Value {
        let out = self.cli_ok(&["status", "--json"], None).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status json {e}: {out}"))
    }

    fn spawn_run(&mut self) {
        self.runs += 1;
        let out =
            std::fs::File::create(self.wine.scratch.join(format!("run{}.out", self.runs))).unwrap();
        let err =
            std::fs::File::create(self.wine.scratch.join(format!("run{}.err", self.runs))).unwrap();
        let child = self
            .wine
            .command(self.exe())
            .args(&self.global)
            .args(["run", "--shutdown-grace-secs", "2"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("wine botmox-agent.exe run");
        self.child = Some(child);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.wine.scratch.join(format!("run{}.err", self.runs)))
            .unwrap_or_default()
    }

    async fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("agent running");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit in time; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL to the Wine process that is the Windows process (the
    /// loader execs into it): no shutdown code of the agent runs.
    fn kill(&mut self) {
        let mut c = self.child.take().expect("agent running");
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

impl Drop for WinAgent<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------ sshd

/// `/usr/sbin/sshd` on 127.0.0.1 (key auth for root through an
/// AuthorizedKeysFile in the temp dir) and a directory of VM configs that
/// `ssh-read-config` reads.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all(d.join("qemu-server")).unwrap();
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (tests run as root)");
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         LogLevel ERROR\nSubsystem sftp internal-sftp\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/sbin/sshd is required (apt-get install openssh-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port, dir }
}

// ------------------------------------------------------------------ helpers

async fn add_sim_target(agent: &WinAgent<'_>, sim: &PveSim, extra: &[&str]) {
    let url = sim.url();
    let fp = sim.fingerprint();
    let mut args = vec![
        "targets",
        "add",
        "--id",
        "sim",
        "--url",
        &url,
        "--node",
        sim.node(),
        "--token-id",
        sim.token_id(),
        "--token-secret-stdin",
        "--fingerprint",
        &fp,
    ];
    args.extend(extra);
    agent.cli_ok(&args, Some(sim.token_secret())).await;
}

/// The agent record as the server shows it.
async fn agent_record(server: &Server, id: &str) -> Value {
    let (st, body) = server
        .call("GET", &format!("/api/v1/agents/{id}"), None)
        .await;
    assert_eq!(st, 200, "{body}");
    body["data"].clone()
}

/// Exactly one final event, the given one, for a command claimed once.
async fn assert_delivered_once(server: &Server, id: &str, final_event: &str) {
    let events = server.command_events(id).await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count("command.dispatched"), 1, "claimed once: {kinds:?}");
    assert_eq!(count("command.requeued"), 0, "{kinds:?}");
    let finals = server.final_events(id).await;
    assert_eq!(finals.len(), 1, "exactly one final report: {kinds:?}");
    assert_eq!(finals[0].0, final_event, "{kinds:?}");
}

/// Holds a clone's task in pve-sim and dispatches `wait-task` on it;
/// returns the command id once the agent runs it.
async fn running_wait_task(server: &Server, sim: &PveSim, agent_id: &str, newid: u32) -> String {
    sim.hold_tasks(true);
    let cl = server
        .run_ok(agent_id, "clone", json!({"vmid": 9000, "newid": newid}))
        .await;
    let id = server
        .dispatch(
            agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    server
        .wait_status(&id, &["running"], Duration::from_secs(30))
        .await;
    id
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect()
}

/// Any agent token (`bmxa_` + 43 base64url characters) in `text`.
fn has_agent_token(text: &str) -> bool {
    text.match_indices("bmxa_").any(|(i, _)| {
        text[i + 5..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .count()
            >= 32
    })
}

// ------------------------------------------------------------------ tests

/// The Windows agent under Wine, from `--version` to revocation, with its
/// Windows defaults: pair (Credential Manager) → targets add (pve-sim +
/// sshd) → targets test → run → online as `x86_64-windows` → list-vms,
/// create-provision-iso (read back with isoinfo from pve-sim's storage),
/// SSH status and read-config against the sshd → cancel → the durable
/// outbox across a kill delivers once → logs and diagnostics under the
/// Windows paths, no secret in them → revoke → exit code 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_agent_end_to_end_under_wine() {
    let Some(src) = require(
        "wine::windows_agent_end_to_end_under_wine",
        &["botmox-agent.exe"],
    ) else {
        return;
    };
    let started = Instant::now();
    let wine = Wine::new(&src, &["botmox-agent.exe"]);
    let sim = sim().await;
    let sshd = start_sshd();
    let mut server = Server::start("self-signed", 60).await;
    server.login().await;
    let mut agent = WinAgent::new(&wine, &[]);

    // --version
    let out = agent.cli_ok(&["--version"], None).await;
    assert_eq!(
        out.trim(),
        format!("botmox-agent {}", env!("CARGO_PKG_VERSION")),
        "{out}"
    );

    // pair with the default secret store (Credential Manager) into the
    // default config dir (%APPDATA%\botmox-agent)
    let (agent_id, bundle, pairing_code) = server.pairing().await;
    let out = agent.cli_ok(&["pair", &bundle], None).await;
    assert!(out.contains(&agent_id), "{out}");
    let appdata = wine.profile().join("AppData/Roaming/botmox-agent");
    let cfg = std::fs::read_to_string(appdata.join("config.toml"))
        .unwrap_or_else(|e| panic!("config in %APPDATA%\\botmox-agent: {e}"));
    assert!(cfg.contains(&format!("agent_id = \"{agent_id}\"")), "{cfg}");
    assert!(cfg.contains("cert_sha256 = \""), "pinned: {cfg}");
    assert!(
        !appdata.join("secrets").exists(),
        "the file store was not asked for"
    );
    // Wine keeps the Credential Manager in the user's registry hive (read
    // live through reg.exe: the hive files are written when wineserver exits)
    let creds = wine
        .reg_query(r"HKCU\Software\Wine\Credential Manager", None)
        .map(|_| {
            wine.run(
                "reg",
                &["query", r"HKCU\Software\Wine\Credential Manager", "/s"],
                None,
            )
            .1
        })
        .expect("Wine's Credential Manager key");
    assert!(
        creds.contains("botmox-agent") && creds.contains("agent-token"),
        "the agent token is in Wine's Credential Manager:\n{creds}"
    );
    assert!(!has_agent_token(&creds), "token stored in clear text");

    // targets: pve-sim with SSH to the local sshd (key read from a file
    // given as a Windows path)
    let key = sshd.dir.path().join("client_key");
    let key_win = Wine::win_path(&key);
    let conf_dir = sshd.dir.path().join("qemu-server");
    std::fs::write(
        conf_dir.join("9000.conf"),
        "name: wine-template\nmemory: 2048\n",
    )
    .unwrap();
    let port = sshd.port.to_string();
    add_sim_target(
        &agent,
        &sim,
        &[
            "--ssh-host",
            "127.0.0.1",
            "--ssh-port",
            &port,
            "--ssh-user",
            "root",
            "--ssh-key",
            &key_win,
            "--ssh-qemu-config-dir",
            conf_dir.to_str().unwrap(),
            "--activate",
        ],
    )
    .await;
    let out = agent.cli_ok(&["targets", "test", "sim"], None).await;
    assert!(out.contains("9.1.2"), "targets test: {out}");
    let listed = agent.cli_ok(&["targets", "list", "--json"], None).await;
    assert!(listed.contains("\"sim\""), "{listed}");

    // run → online, registered as a Windows agent
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(60)).await;
    let rec = agent_record(&server, &agent_id).await;
    assert_eq!(rec["platform"], "x86_64-windows", "{rec}");
    assert_eq!(rec["version"], env!("CARGO_PKG_VERSION"), "{rec}");

    // a Proxmox action
    let vms = server.run_ok(&agent_id, "list-vms", json!({})).await;
    assert!(
        vms.as_array()
            .is_some_and(|a| a.iter().any(|v| v["vmid"] == 9000)),
        "{vms}"
    );

    // the provisioning ISO, read back from pve-sim's storage
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let iso = server
        .run_ok(
            &agent_id,
            "create-provision-iso",
            json!({"vmid": 9000, "isoName": "wine-9000.iso", "files": {
                "Autounattend.xml": b64("<?xml version=\"1.0\"?><unattend xmlns=\"urn:schemas-microsoft-com:unattend\"/>"),
                "provision.json": b64("{\"vm\":9000,\"from\":\"wine\"}"),
            }}),
        )
        .await;
    assert_eq!(iso["isoPath"], "local:iso/wine-9000.iso", "{iso}");
    let path = sim.data_dir().join("local/iso/wine-9000.iso");
    let out = run_tool("isoinfo", &["-l", "-J", "-i", path.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "isoinfo failed");
    assert!(listing.contains("Autounattend.xml"), "{listing}");
    assert!(listing.contains("provision.json"), "{listing}");
    let out = run_tool(
        "isoinfo",
        &["-J", "-i", path.to_str().unwrap(), "-x", "/provision.json"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"vm\":9000,\"from\":\"wine\"}"
    );

    // SSH against the local sshd
    let st = server.run_ok(&agent_id, "ssh-status", json!({})).await;
    assert_eq!(st["code"], "OK", "{st}");
    assert_eq!(st["connected"], true, "{st}");
    let rc = server
        .run_ok(&agent_id, "ssh-read-config", json!({"vmid": 9000}))
        .await;
    assert!(
        rc["config"]
            .as_str()
            .is_some_and(|c| c.contains("wine-template")),
        "{rc}"
    );
    let known = std::fs::read_to_string(appdata.join("known_hosts.json")).unwrap();
    assert!(
        known.contains(&format!("sim|127.0.0.1:{}", sshd.port)),
        "{known}"
    );

    // cancel aborts the running executor
    let id = running_wait_task(&server, &sim, &agent_id, 301).await;
    let (s, b) = server
        .call(
            "POST",
            &format!("/api/v1/vm-ops/commands/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert!(s == 200 || s == 202, "{b}");
    let c = server
        .wait_status(
            &id,
            &["cancelled", "succeeded", "failed"],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c["status"], "cancelled", "{c}");
    sim.hold_tasks(false);

    // the durable outbox across a kill: the command finishes while the
    // server is down, its report waits in %APPDATA%\…\runtime\outbox, the
    // process is killed, both restart, the report is delivered once
    let id = running_wait_task(&server, &sim, &agent_id, 302).await;
    server.stop().await;
    sim.hold_tasks(false);
    let outbox = appdata.join("runtime/outbox");
    wait_until(
        "the final report in the outbox",
        Duration::from_secs(30),
        || {
            files_with(&outbox, "json").iter().any(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| t.contains(&id) && t.contains("succeeded"))
            })
        },
    )
    .await;
    wait_until("no in-progress record", Duration::from_secs(15), || {
        !crate::runtime::inflight_records(&appdata.join("runtime"))
            .iter()
            .any(|t| t.contains(&id))
    })
    .await;
    agent.kill();
    // the lock (by which a Windows status tells a dead runtime) goes when
    // wineserver has reaped the process
    let deadline = Instant::now() + Duration::from_secs(15);
    let st = loop {
        let st = agent.status().await;
        if st["runtime"]["connection"] == "stopped" || Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(st["runtime"]["connection"], "stopped", "{st}");
    assert_eq!(st["runtime"]["process_running"], false, "{st}");
    assert_eq!(st["runtime"]["outbox_size"], 1, "{st}");
    server.boot().await;
    assert_eq!(server.command(&id).await["status"], "running");
    agent.spawn_run();
    let c = server
        .wait_status(&id, &["succeeded", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["attempt"], 1, "{c}");
    assert_eq!(c["result"]["exitstatus"], "OK", "{c}");
    assert_delivered_once(&server, &id, "command.succeeded").await;
    wait_until("an empty outbox", Duration::from_secs(15), || {
        files_with(&outbox, "json").is_empty()
    })
    .await;
    server.wait_online(&agent_id, Duration::from_secs(30)).await;

    // logs under %LOCALAPPDATA%\botmox-agent\logs, diagnostics to a Windows
    // path; no secret in either (nor in the config dir)
    let logs = wine.profile().join("AppData/Local/botmox-agent/logs");
    let log_files = files_with(&logs, "log");
    assert!(!log_files.is_empty(), "no log files in {}", logs.display());
    let log_text: String = log_files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    assert!(log_text.contains(&id), "the command is in the log");
    let diag = wine.drive_c().join("diag.json");
    agent
        .cli_ok(&["diagnostics", "-o", r"C:\diag.json"], None)
        .await;
    let diag_text = std::fs::read_to_string(&diag).unwrap();
    let d: Value = serde_json::from_str(&diag_text).unwrap();
    assert!(
        d.to_string().contains("windows"),
        "the diagnostics say where they come from: {d}"
    );
    let ssh_key = std::fs::read_to_string(&key).unwrap();
    let key_body = ssh_key.lines().nth(1).unwrap().to_string();
    let secrets = [sim.token_secret(), pairing_code.as_str(), key_body.as_str()];
    let mut files = walk(&appdata);
    files.extend(log_files.iter().cloned());
    files.push(diag.clone());
    files.extend(walk(&wine.scratch));
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).to_string();
        for s in secrets {
            assert!(!text.contains(s), "a secret leaked into {}", f.display());
        }
        assert!(
            !has_agent_token(&text),
            "an agent token leaked into {}",
            f.display()
        );
    }

    // revoke: the agent stops with exit code 3 and says so
    let (s, b) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(json!({"reason": "wine e2e"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let code = agent.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(code, 3, "revoked exit code; stderr:\n{}", agent.stderr());
    assert!(
        agent.stderr().contains("AGENT_REVOKED"),
        "{}",
        agent.stderr()
    );
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "revoked", "{st}");

    sim.assert_no_violations();
    server.stop().await;
    eprintln!(
        "windows_agent_end_to_end_under_wine: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Service mode under Wine's Service Control Manager: pair into the
/// service's config dir (file store), `service install` registers
/// `BotMoxAgent` (auto start, the launch arguments pinned), `sc start`
/// starts it and it comes online and runs a command, `sc stop` stops it
/// (runtime `stopped`), `net start` starts it again, revoke stops it with
/// the service-specific exit code 3, `service uninstall` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_service_under_wine_scm() {
    let Some(src) = require(
        "wine::windows_service_under_wine_scm",
        &["botmox-agent.exe"],
    ) else {
        return;
    };
    let started = Instant::now();
    let wine = Wine::new(&src, &["botmox-agent.exe"]);
    let sim = sim().await;
    let mut server = Server::start("self-signed", 60).await;
    server.login().await;
    let svc_dir = r"C:\ProgramData\BotMox\Agent";
    let agent = WinAgent::new(&wine, &["--config-dir", svc_dir, "--secret-store", "file"]);
    let bare = WinAgent::new(&wine, &[]);

    // not paired yet: install refuses
    let (code, _, err) = bare.cli(&["service", "install"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("not paired"), "{err}");

    let (agent_id, bundle, _) = server.pairing().await;
    agent.cli_ok(&["pair", &bundle], None).await;
    add_sim_target(&agent, &sim, &[]).await;
    let data = wine.drive_c().join("ProgramData/BotMox/Agent");
    assert!(data.join("config.toml").is_file());
    assert!(data.join("secrets/secrets.json").is_file());

    // install with the defaults (the service's dir, the file store)
    let out = bare.cli_ok(&["service", "install"], None).await;
    assert!(out.contains("BotMoxAgent"), "{out}");
    // Wine's sc.exe has no `qc`: read the SCM's registration directly
    let qc = wine.reg_query(SERVICE_KEY, None).expect("service key");
    assert!(qc.contains("0x2"), "Start = 2 (automatic): {qc}");
    assert!(qc.contains("service run"), "{qc}");
    assert!(qc.contains(svc_dir), "{qc}");
    assert!(qc.contains("--secret-store file"), "{qc}");
    assert!(qc.contains("Bot-Mox Agent"), "{qc}");
    assert_eq!(
        wine.service_state("BotMoxAgent").as_deref(),
        Some("STOPPED")
    );

    // started by the SCM → online, runs a command
    let (code, out, err) = wine.run("sc", &["start", "BotMoxAgent"], None);
    assert_eq!(code, 0, "sc start: {out} {err}");
    wine.wait_service_state("BotMoxAgent", "RUNNING", Duration::from_secs(30))
        .await;
    server.wait_online(&agent_id, Duration::from_secs(60)).await;
    assert_eq!(
        agent_record(&server, &agent_id).await["platform"],
        "x86_64-windows"
    );
    let vms = server.run_ok(&agent_id, "list-vms", json!({})).await;
    assert!(vms.as_array().is_some_and(|a| !a.is_empty()), "{vms}");
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "online", "{st}");
    assert_eq!(st["runtime"]["process_running"], true, "{st}");
    // the runtime lock is held by the service: a second runtime refuses
    let (code, _, err) = agent.cli(&["run"], None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("AGENT_ALREADY_RUNNING"), "{err}");
    // the service logs into its config dir
    assert!(!files_with(&data.join("logs"), "log").is_empty());

    // stop through the SCM: the runtime stops gracefully
    let (code, out, err) = wine.run("sc", &["stop", "BotMoxAgent"], None);
    assert_eq!(code, 0, "sc stop: {out} {err}");
    wine.wait_service_state("BotMoxAgent", "STOPPED", Duration::from_secs(40))
        .await;
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "stopped", "{st}");

    // net start (Wine's net.exe) starts it again
    let (code, out, err) = wine.run("net", &["start", "BotMoxAgent"], None);
    assert_eq!(code, 0, "net start: {out} {err}");
    wine.wait_service_state("BotMoxAgent", "RUNNING", Duration::from_secs(30))
        .await;
    server.wait_online(&agent_id, Duration::from_secs(60)).await;

    // revoke: the service stops by itself with its service-specific exit
    // code 3 (not a crash: no restart)
    let (s, b) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(json!({"reason": "wine service"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    wine.wait_service_state("BotMoxAgent", "STOPPED", Duration::from_secs(40))
        .await;
    // Wine's SCM reports the agent's service-specific exit code
    let (_, q, _) = wine.run("sc", &["query", "BotMoxAgent"], None);
    assert!(
        q.lines()
            .any(|l| l.contains("SERVICE_EXIT_CODE") && l.contains(": 3 ")),
        "service-specific exit code 3 (revoked):\n{q}"
    );
    assert!(q.contains("1066"), "ERROR_SERVICE_SPECIFIC_ERROR:\n{q}");
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "revoked", "{st}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        wine.service_state("BotMoxAgent").as_deref(),
        Some("STOPPED"),
        "a revoked agent is not restarted"
    );

    // uninstall removes it
    let out = bare.cli_ok(&["service", "uninstall"], None).await;
    eprintln!("service uninstall: {out}");
    assert_eq!(wine.service_state("BotMoxAgent"), None, "service deleted");
    // the config (and its secrets) stay
    assert!(data.join("config.toml").is_file());
    sim.assert_no_violations();
    server.stop().await;
    eprintln!(
        "windows_service_under_wine_scm: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The Windows installer (`scripts/build-windows-installer.sh`, NSIS) under
/// Wine: silent per-machine install → files in Program Files (no test
/// shim among them), Start-menu shortcut, Add/Remove Programs entry with
/// publisher and the workspace version, `botmox://` scheme and tray
/// autostart keys, the installed `botmox-agent.exe --version`; `/SERVICE`
/// without a pairing on an unpaired machine is refused (exit 2, nothing
/// registered); `/SERVICE /PAIR=<bundle>` pairs the service's dir,
/// registers and starts `BotMoxAgent`, which comes online; the silent
/// uninstall stops and deletes the service and removes files, shortcut and
/// keys but keeps the config; `/PURGE` removes the config too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_installer_under_wine() {
    let version = env!("CARGO_PKG_VERSION");
    let installer = format!("installer/botmox-agent-{version}-x64-setup.exe");
    let Some(src) = require("wine::windows_installer_under_wine", &[&installer]) else {
        return;
    };
    let started = Instant::now();
    let wine = Wine::new(&src, &[]);
    std::fs::copy(src.join(&installer), wine.bin.join("setup.exe")).unwrap();
    // The installed programs (and the service the installer starts) load
    // bcryptprimitives.dll from the system directory, as on Windows 10+:
    // the stand-in goes there, in this private prefix only.
    std::fs::copy(
        wine.bin.join("bcryptprimitives.dll"),
        wine.drive_c().join("windows/system32/bcryptprimitives.dll"),
    )
    .unwrap();
    let setup = wine.bin.join("setup.exe").display().to_string();
    let install_dir = wine.drive_c().join("Program Files/Bot-Mox Agent");
    let shortcut = wine
        .drive_c()
        .join("ProgramData/Microsoft/Windows/Start Menu/Programs/Bot-Mox Agent.lnk");
    let uninst_key = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\BotMoxAgent";
    let run_key = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run";
    let scheme_key = r"HKLM\Software\Classes\botmox";

    // ---- silent install
    let (code, out, err) = wine.run(&setup, &["/S"], None);
    assert_eq!(code, 0, "setup /S: {out} {err}");
    for f in ["botmox-agent.exe", "botmox-agent-tray.exe", "uninstall.exe"] {
        assert!(install_dir.join(f).is_file(), "{f} not installed");
    }
    assert!(
        !install_dir.join("bcryptprimitives.dll").exists(),
        "the test shim is never packaged"
    );
    assert!(shortcut.is_file(), "Start-menu shortcut");
    let arp = wine.reg_query(uninst_key, None).expect("uninstall key");
    for want in [
        "Bot-Mox Agent",
        version,
        "Bot-Mox",
        r"C:\Program Files\Bot-Mox Agent\uninstall.exe",
        "QuietUninstallString",
    ] {
        assert!(
            arp.contains(want),
            "{want} not in the uninstall key:\n{arp}"
        );
    }
    assert!(
        arp.lines()
            .any(|l| l.contains("DisplayVersion") && l.trim_end().ends_with(version)),
        "{arp}"
    );
    assert!(
        arp.lines()
            .any(|l| l.contains("Publisher") && l.trim_end().ends_with("Bot-Mox")),
        "{arp}"
    );
    let scheme = wine.reg_query(scheme_key, Some("URL Protocol"));
    assert!(scheme.is_some(), "botmox:// is a URL protocol");
    let open = wine
        .reg_query(&format!(r"{scheme_key}\shell\open\command"), None)
        .expect("botmox:// open command");
    assert!(
        open.contains(r#""C:\Program Files\Bot-Mox Agent\botmox-agent-tray.exe" "%1""#),
        "{open}"
    );
    let run = wine
        .reg_query(run_key, Some("BotMoxAgentTray"))
        .expect("tray autostart");
    assert!(run.contains("botmox-agent-tray.exe\" --autostart"), "{run}");
    let agent_exe = r"C:\Program Files\Bot-Mox Agent\botmox-agent.exe";
    let (code, out, err) = wine.run(agent_exe, &["--version"], None);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out.trim(), format!("botmox-agent {version}"));
    let (code, out, err) = wine.run(
        r"C:\Program Files\Bot-Mox Agent\botmox-agent-tray.exe",
        &["--version"],
        None,
    );
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out.trim(), format!("botmox-agent-tray {version}"));
    if src.join("WebView2Loader.dll").is_file() {
        assert!(install_dir.join("WebView2Loader.dll").is_file());
    }
    assert_eq!(
        wine.service_state("BotMoxAgent"),
        None,
        "no service by default"
    );

    // ---- /SERVICE on an unpaired machine without /PAIR: refused
    let (code, out, err) = wine.run(&setup, &["/S", "/SERVICE"], None);
    assert_eq!(code, 2, "setup /S /SERVICE unpaired: {out} {err}");
    assert_eq!(wine.service_state("BotMoxAgent"), None);

    // ---- /SERVICE /PAIR=<bundle>: paired, registered, started, online
    let sim = sim().await;
    let mut server = Server::start("self-signed", 60).await;
    server.login().await;
    let (agent_id, bundle, _) = server.pairing().await;
    let pair = format!("/PAIR={bundle}");
    let (code, out, err) = wine
        .run_async(&setup, &["/S", "/SERVICE", &pair], None)
        .await;
    assert_eq!(code, 0, "setup /S /SERVICE /PAIR: {out} {err}");
    let qc = wine.reg_query(SERVICE_KEY, None).expect("service key");
    // quoted: an unquoted path with spaces is the classic "unquoted
    // service path" hole (C:\Program.exe would be tried first)
    assert!(
        qc.contains(&format!("\"{agent_exe}\" --config-dir")),
        "the installed exe, quoted: {qc}"
    );
    wine.wait_service_state("BotMoxAgent", "RUNNING", Duration::from_secs(30))
        .await;
    server.wait_online(&agent_id, Duration::from_secs(60)).await;
    assert_eq!(
        agent_record(&server, &agent_id).await["platform"],
        "x86_64-windows"
    );
    let targets = server.run_ok(&agent_id, "list-targets", json!({})).await;
    assert_eq!(targets, json!([]), "{targets}");
    let svc_dir = wine.drive_c().join("ProgramData/BotMox/Agent");
    assert!(svc_dir.join("config.toml").is_file());

    // ---- silent uninstall (the uninstaller re-runs itself from %TEMP%:
    // wait for its effects)
    let (code, out, err) = wine.run(
        r"C:\Program Files\Bot-Mox Agent\uninstall.exe",
        &["/S"],
        None,
    );
    assert_eq!(code, 0, "uninstall /S: {out} {err}");
    wait_until("the uninstall to finish", Duration::from_secs(90), || {
        !install_dir.exists()
    })
    .await;
    assert_eq!(wine.service_state("BotMoxAgent"), None, "service removed");
    assert!(!shortcut.exists(), "shortcut removed");
    assert!(
        wine.reg_query(uninst_key, None).is_none(),
        "uninstall key removed"
    );
    assert!(wine.reg_query(scheme_key, None).is_none(), "scheme removed");
    assert!(
        wine.reg_query(run_key, Some("BotMoxAgentTray")).is_none(),
        "autostart removed"
    );
    assert!(
        svc_dir.join("config.toml").is_file(),
        "the config stays without /PURGE"
    );
    assert!(svc_dir.join("secrets/secrets.json").is_file());

    // ---- install again, uninstall with /PURGE: the config goes too
    let (code, out, err) = wine.run(&setup, &["/S"], None);
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, err) = wine.run(
        r"C:\Program Files\Bot-Mox Agent\uninstall.exe",
        &["/S", "/PURGE"],
        None,
    );
    assert_eq!(code, 0, "{out} {err}");
    wait_until("the purge", Duration::from_secs(90), || {
        !install_dir.exists() && !svc_dir.exists()
    })
    .await;

    sim.assert_no_violations();
    server.stop().await;
    eprintln!(
        "windows_installer_under_wine: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
