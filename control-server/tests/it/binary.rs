//! The real `control-server` binary: the README's first command, TLS,
//! the initial admin, the admin CLI against a running server, SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_control-server");

struct Served {
    child: Child,
    url: String,
    fingerprint: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn serve(data: &Path) -> Served {
    serve_with(data, &[])
}

fn serve_with(data: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("BOTMOX_DATABASE_URL")
        .env("BOTMOX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn control-server");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut url, mut fingerprint) = (None, None);
    while url.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
        if let Some(i) = line.find("sha256=") {
            fingerprint = Some(line[i + 7..].split_whitespace().next().unwrap().to_string());
        }
        if let Some(i) = line.find("listening on ") {
            url = Some(line[i + 13..].trim().to_string());
        }
    }
    Served {
        child,
        url: url.unwrap(),
        fingerprint: fingerprint.unwrap_or_default(),
        log,
    }
}

fn stop(mut s: Served) -> std::process::ExitStatus {
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn admin(data: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BOTMOX_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn client() -> reqwest::Client {
    // Trust is established by comparing the presented certificate's SHA-256
    // with the fingerprint the server printed (what agents do).
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap()
}

async fn call(
    c: &reqwest::Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = c.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn colon_upper(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_self_signed_tls_admin_cli_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = serve(&data);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    assert_eq!(
        s.fingerprint.len(),
        95,
        "fingerprint logged before listening"
    );
    let c = client();

    // Ready over HTTPS, and the presented certificate is the announced one.
    let resp = c
        .get(format!("{}/api/v1/health/ready", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // HTTP/2 by ALPN under TLS: many console tabs, each with its event
    // stream, share one connection instead of exhausting HTTP/1.1's six
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    // the start's last line tells the admin where the console is
    {
        let log = s.log.lock().unwrap();
        let at = |needle: &str| log.iter().position(|l| l.contains(needle));
        let console = at("web console: ").unwrap_or_else(|| panic!("no console line: {log:?}"));
        assert!(
            log[console].contains(&format!("web console: {}/console", s.url)),
            "{}",
            log[console]
        );
        assert!(console > at("listening on ").unwrap(), "{log:?}");
    }
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    let presented = hex::encode(Sha256::digest(&der));
    assert_eq!(colon_upper(&presented), s.fingerprint);
    let (_, health) = call(&c, "GET", format!("{}/api/v1/health", s.url), None, None).await;
    assert_eq!(health["data"]["tls_sha256"], presented);
    assert_eq!(health["data"]["database"], "sqlite");

    // The initial admin: password file with mode 0600, never in the log.
    let pw_file = data.join("initial-admin-password");
    let password = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The data dir (database, key, password) is created owner-only.
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let (st, login) = call(
        &c,
        "POST",
        format!("{}/api/v1/auth/login", s.url),
        None,
        Some(json!({"email": "admin@localhost", "password": password})),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    let token = login["data"]["token"].as_str().unwrap().to_string();
    let (st, who) = call(
        &c,
        "GET",
        format!("{}/api/v1/auth/whoami", s.url),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(who["data"]["email"], "admin@localhost");
    let (st, _) = call(
        &c,
        "POST",
        format!("{}/api/v1/auth/logout", s.url),
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, who) = call(
        &c,
        "GET",
        format!("{}/api/v1/auth/whoami", s.url),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(who["error"]["code"], "UNAUTHORIZED");

    // The admin CLI works against the same data dir while the server runs.
    let (ok, out, err) = admin(
        &data,
        &[
            "admin", "tenant", "create", "--id", "acme", "--name", "Acme",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("acme"));
    let (ok, _, err) = admin(
        &data,
        &[
            "admin",
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "ops@acme.test",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("operator-password-1\n"),
    );
    assert!(ok, "{err}");
    let (ok, _, err) = admin(
        &data,
        &[
            "admin",
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "weak@acme.test",
            "--role",
            "operator",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok);
    assert!(err.contains("password"), "{err}");
    let (st, _) = call(
        &c,
        "POST",
        format!("{}/api/v1/auth/login", s.url),
        None,
        Some(json!({"email": "ops@acme.test", "password": "operator-password-1"})),
    )
    .await;
    assert_eq!(st, 200);
    let (ok, api_token, err) = admin(
        &data,
        &[
            "admin",
            "token",
            "create",
            "--email",
            "ops@acme.test",
            "--name",
            "ci",
            "--ttl",
            "30",
        ],
        None,
    );
    assert!(ok, "{err}");
    let api_token = api_token.trim().to_string();
    assert!(api_token.starts_with("bmxk_"), "{api_token}");
    let (st, who) = call(
        &c,
        "GET",
        format!("{}/api/v1/auth/whoami", s.url),
        Some(&api_token),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(who["data"]["tenant_id"], "acme");
    let (ok, list, _) = admin(
        &data,
        &["admin", "token", "list", "--email", "ops@acme.test"],
        None,
    );
    assert!(ok);
    let id = list
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        !list.contains(&api_token),
        "token plaintext must not be listed"
    );
    let (ok, _, err) = admin(&data, &["admin", "token", "revoke", "--id", &id], None);
    assert!(ok, "{err}");
    let (st, _) = call(
        &c,
        "GET",
        format!("{}/api/v1/auth/whoami", s.url),
        Some(&api_token),
        None,
    )
    .await;
    assert_eq!(st, 401);
    let (ok, users, _) = admin(&data, &["admin", "user", "list"], None);
    assert!(ok && users.contains("ops@acme.test") && users.contains("admin@localhost"));
    let (ok, _, err) = admin(
        &data,
        &[
            "admin",
            "user",
            "set-role",
            "--email",
            "nobody@x.test",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(!ok && err.contains("no user"), "{err}");

    // SIGTERM: graceful stop with exit code 0.
    let log = s.log.clone();
    let status = stop(s);
    assert!(status.success(), "exit status {status:?}");
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(&password), "password leaked into the log");
    assert!(!log.contains(&api_token), "token leaked into the log");

    // Restart: the same certificate is reused; no second initial admin.
    std::fs::remove_file(&pw_file).unwrap();
    let s2 = serve(&data);
    assert_eq!(s2.fingerprint, colon_upper(&presented));
    assert!(!pw_file.exists());
    assert!(stop(s2).success());
}

#[test]
fn migrate_check_config_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (ok, _, err) = admin(&data, &["migrate"], None);
    assert!(ok, "{err}");
    assert!(err.contains("migrations applied (sqlite)"), "{err}");
    let (ok, out, _) = admin(&data, &["check-config"], None);
    assert!(ok);
    let cfg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cfg["listen"], "127.0.0.1:8443");
    assert_eq!(cfg["tls"], "self-signed");
    let (ok, _, err) = admin(&data, &["check-config", "--listen", "bogus"], None);
    assert!(!ok);
    assert!(err.contains("listen"), "{err}");
    let cfg_file = dir.path().join("c.toml");
    std::fs::write(
        &cfg_file,
        "jwt_hs256_secret = \"0123456789abcdef0123456789abcdef\"\nlisten = \"0.0.0.0:9443\"\n",
    )
    .unwrap();
    let (ok, out, err) = admin(
        &data,
        &["check-config", "--config", cfg_file.to_str().unwrap()],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("0.0.0.0:9443"));
    assert!(!out.contains("0123456789abcdef"), "secret printed: {out}");
    let v = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// Two `control-server` processes share one PostgreSQL database: a dispatch
/// through process A wakes an agent long-polling process B (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_wake_each_others_pollers() {
    use sqlx::Connection;
    let base = std::env::var("BOTMOX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("botmox_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{base}/{name}");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [
        "--tls",
        "off",
        "--database-url",
        url.as_str(),
        "--heartbeat-interval-seconds",
        "30",
    ];
    let a = serve_with(da.path(), &args);
    let b = serve_with(db.path(), &args);
    let c = reqwest::Client::new();
    let pw = std::fs::read_to_string(da.path().join("initial-admin-password")).unwrap();
    let (_, login) = call(
        &c,
        "POST",
        format!("{}/api/v1/auth/login", a.url),
        None,
        Some(json!({"email": "admin@localhost", "password": pw.trim()})),
    )
    .await;
    let admin = login["data"]["token"].as_str().unwrap().to_string();
    let (_, p) = call(
        &c,
        "POST",
        format!("{}/api/v1/agents/pairings", a.url),
        Some(&admin),
        Some(json!({})),
    )
    .await;
    let code = p["data"]["pairing_code"].as_str().unwrap();
    // Register and heartbeat through B: both processes see one database.
    let (st, r) = call(
        &c,
        "POST",
        format!("{}/api/v1/agents/register", b.url),
        None,
        Some(json!({"pairing_code": code})),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let agent = r["data"]["agent_token"].as_str().unwrap().to_string();
    let agent_id = r["data"]["agent"]["id"].as_str().unwrap().to_string();
    let mut latencies = vec![];
    for i in 0..5 {
        let (c2, url_b, tok) = (c.clone(), b.url.clone(), agent.clone());
        let poll = tokio::spawn(async move {
            let r = c2
                .get(format!(
                    "{url_b}/api/v1/vm-ops/commands/next?timeout_ms=20000"
                ))
                .bearer_auth(tok)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let sent = Instant::now();
        let (st, d) = call(
            &c,
            "POST",
            format!("{}/api/v1/vm-ops/proxmox/start", a.url),
            Some(&admin),
            Some(json!({"agent_id": agent_id, "params": {"vmid": i}})),
        )
        .await;
        assert_eq!(st, 202, "{d}");
        let (status, got) = poll.await.unwrap();
        assert_eq!(status, 200);
        latencies.push(got.duration_since(sent));
    }
    assert!(stop(a).success());
    assert!(stop(b).success());
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    eprintln!("cross-process dispatch→claim latencies: {latencies:?}");
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(1000)),
        "{latencies:?}"
    );
}

/// Text logs cannot be forged through a user-supplied string: the e-mail of
/// a failed sign-in is logged escaped, on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_8_logged_user_strings_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with(dir.path(), &["--tls", "off", "--log-format", "text"]);
    let c = client();
    let forged = "x@example.test\n2026-01-01T00:00:00Z  INFO forged: admin signed in";
    for email in [forged, "y@example.test\u{202e}"] {
        let (status, _) = call(
            &c,
            "POST",
            format!("{}/api/v1/auth/login", s.url),
            None,
            Some(json!({"email": email, "password": "wrong-password-1"})),
        )
        .await;
        assert_eq!(status, 401);
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = s.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .all(|l| !l.contains("forged: admin signed in") || l.contains("sign-in failed")),
        "a forged line: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("sign-in failed") && l.contains("\\n2026")),
        "the failure is logged, escaped: {log:#?}"
    );
    stop(s);
}

// ------------------------------------------------- admin agent (issue #14)

backend_tests!(admin_agent_pair_list_and_revoke);

/// `control-server admin agent …` on a test server's database and data dir,
/// with a configuration file that names the server's real URL.
fn agent_cli(s: &crate::common::TestServer, args: &[&str]) -> (bool, String, String) {
    let cfg = s.data.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!("tls = \"off\"\npublic_url = \"{}\"\n", s.url("")),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["admin", "agent"])
        .args(args)
        .arg("--data-dir")
        .arg(s.data.path())
        .arg("--database-url")
        .arg(s.database_url())
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .expect("run control-server admin agent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of the `key:` line of the CLI's output.
#[track_caller]
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: line in {out}"))
        .trim()
}

async fn admin_agent_pair_list_and_revoke(b: crate::common::Backend) {
    use botmox_protocol::PairingBundle;
    let s = crate::common::TestServer::start(b).await;
    let infra = s.admin_token().await;
    let admin = s.tenant_with_admin(&infra, "cliag").await;
    let (op_id, op) = s.user(&admin, "op@cliag.test", "operator").await;

    // Refused: unknown tenant, unknown owner, an owner of another tenant,
    // an expiry out of range; nothing is created.
    let pair = |extra: &[&str]| {
        let mut args = vec!["pair", "--tenant", "cliag", "--name", "rack-1"];
        args.extend_from_slice(extra);
        agent_cli(&s, &args)
    };
    let (ok, _, err) = agent_cli(&s, &["pair", "--tenant", "nope", "--name", "x"]);
    assert!(!ok && err.contains("no tenant nope"), "{err}");
    let (ok, _, err) = pair(&["--owner", "ghost@cliag.test"]);
    assert!(
        !ok && err.contains("no user with e-mail ghost@cliag.test"),
        "{err}"
    );
    let (ok, _, err) = pair(&["--owner", "admin@localhost"]);
    assert!(!ok && err.contains("not a user of tenant cliag"), "{err}");
    let (ok, _, err) = pair(&["--expires-minutes", "2"]);
    assert!(!ok && err.contains("expires_in_minutes"), "{err}");
    let listed = s.get("/api/v1/agents", Some(&admin)).await;
    assert_eq!(listed.body["meta"]["total"], 0, "{}", listed.body);

    // Pair for the operator: bundle, link and console page of one agent.
    let (ok, out, err) = pair(&["--owner", "op@cliag.test", "--expires-minutes", "30"]);
    assert!(ok, "{err}");
    let id = line(&out, "agent").to_string();
    let bundle = line(&out, "bundle");
    assert_eq!(line(&out, "link"), format!("botmox://pair?bundle={bundle}"));
    assert_eq!(
        line(&out, "console"),
        s.url(&format!("/console/agents/{id}"))
    );
    let decoded = PairingBundle::decode(bundle).unwrap();
    assert_eq!(decoded.server_url, s.url(""));
    assert_eq!(decoded.server_cert_sha256, None);
    let got = s.get(&format!("/api/v1/agents/{id}"), Some(&op)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["data"]["owner_user_id"], op_id.as_str());
    assert_eq!(got.body["data"]["status"], "pending");
    assert_eq!(got.body["data"]["name"], "rack-1");
    assert_eq!(
        got.body["data"]["pairing_expires_at"],
        line(&out, "expires")
    );
    // The bundle's code registers the agent.
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"pairing_code": decoded.pairing_code, "machine_name": "pve-1", "version": "0.1.0", "platform": "linux", "capabilities": ["proxmox"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["agent"]["id"], id.as_str());

    // Without --owner the acting admin owns it.
    let (ok, out2, err) = agent_cli(&s, &["pair", "--tenant", "cliag", "--name", "rack-2"]);
    assert!(ok, "{err}");
    let id2 = line(&out2, "agent").to_string();
    assert!(err.contains("by admin@cliag.test"), "{err}");

    // List: one tenant, and all tenants.
    let (ok, list, err) = agent_cli(&s, &["list", "--tenant", "cliag"]);
    assert!(ok, "{err}");
    let row = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in {list}"))
            .to_string()
    };
    let r1 = row(&id);
    assert!(
        r1.contains("rack-1") && r1.contains(" active ") && r1.ends_with("op@cliag.test"),
        "{r1}"
    );
    assert!(row(&id2).contains(" pending ") && row(&id2).ends_with("admin@cliag.test"));
    assert_eq!(list.lines().count(), 3, "{list}");
    let (ok, all, _) = agent_cli(&s, &["list"]);
    assert!(ok && all.contains(&id) && all.contains(&id2), "{all}");
    let (ok, _, err) = agent_cli(&s, &["list", "--tenant", "nope"]);
    assert!(!ok && err.contains("no tenant nope"), "{err}");

    // Revoke: refused in another tenant and for an unknown id; then done, once.
    let (ok, _, err) = agent_cli(&s, &["revoke", &id, "--tenant", "default"]);
    assert!(!ok && err.contains("AGENT_NOT_FOUND"), "{err}");
    let (ok, _, err) = agent_cli(&s, &["revoke", "no-such-agent"]);
    assert!(
        !ok && err.contains("no agent with id no-such-agent"),
        "{err}"
    );
    let (ok, out, err) = agent_cli(&s, &["revoke", &id, "--reason", "decommissioned"]);
    assert!(ok && out.contains(&format!("revoked agent {id}")), "{err}");
    let got = s.get(&format!("/api/v1/agents/{id}"), Some(&admin)).await;
    assert_eq!(got.body["data"]["status"], "revoked");
    assert_eq!(got.body["data"]["revoke_reason"], "decommissioned");
    let (ok, _, err) = agent_cli(&s, &["revoke", &id, "--tenant", "cliag"]);
    assert!(!ok && err.contains("ALREADY_REVOKED"), "{err}");
    s.stop().await;
}
