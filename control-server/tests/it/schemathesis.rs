//! schemathesis (PyPI) walks the whole API from the server's own
//! `/api/v1/openapi.json`: a real server on each backend, one run as a
//! viewer, one as an admin (infra), with the contract checks below. The
//! OpenAPI document must state what the server enforces: any 5xx, any
//! undocumented status or content type, any response that does not match
//! its schema fails the test.
//!
//! Depth is bounded to keep the suite quick on 2 cores: the fuzzing and
//! stateful phases (at most [`MAX_EXAMPLES`] cases per operation) run
//! everywhere; the coverage phase (boundary and negative cases derived from
//! every schema, about 60 per operation) runs as admin on PostgreSQL, the
//! stricter backend. `BOTMOX_SCHEMATHESIS_DEEP=1` runs every phase in every
//! run with 50 cases per operation.
//!
//! The `st` CLI comes from `scripts/setup-test-env.sh` (a venv under
//! `/var/tmp/botmox-tools/schemathesis`); `BOTMOX_SCHEMATHESIS=/path/to/st`
//! overrides it, `BOTMOX_SCHEMATHESIS_EXAMPLES=N` sets the cases per
//! operation and `BOTMOX_SCHEMATHESIS_ARGS` adds `st run` arguments (e.g.
//! `--continue-on-failure`).

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::common::{base_settings, Backend, TestServer};

/// The version `scripts/setup-test-env.sh` installs.
const ST_VERSION: &str = "4.32.5";
/// Where `scripts/setup-test-env.sh` puts it.
const ST_DEFAULT: &str = "/var/tmp/botmox-tools/schemathesis/bin/st";
/// Test cases per operation in the fuzzing phase (the viewer, refused most
/// writes, gets half as many).
const MAX_EXAMPLES: u32 = 10;
/// The phases of every run, and of the deep one (admin on PostgreSQL).
const PHASES: &str = "fuzzing,stateful";
const PHASES_DEEP: &str = "coverage,fuzzing,stateful";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance,\
                      positive_data_acceptance,negative_data_rejection";

/// schemathesis' configuration. Every per-operation exception carries its
/// reason; nothing else is excluded.
const CONFIG: &str = r#"
# A warning that means a check was weakened fails the run.
[warnings]
fail-on = ["unsupported_regex", "missing_deserializer", "unresolvable_reference", "dictionary_mismatch"]

# Other methods on each path (405) are covered by the API tests; skipping
# them keeps the coverage phase about a tenth shorter.
[phases.coverage]
unexpected-methods = []

# The SSE stream never ends: read it for half a second (the backlog of
# events arrives at once), then validate the events read.
[[operations]]
include-path = "/api/v1/vm-ops/events"
request-timeout = 0.5

# `cursor` is an opaque token only the server mints: a random string is a
# schema-valid request the server rightly refuses (400), as it refuses
# `cursor` together with `page`.
[[operations]]
include-path-regex = "^/api/v1/(users|agents|vm-ops/commands|playbooks)$"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# Agent-token operations: a user token is refused (403) by design, which
# schemathesis would report as failed authentication.
[[operations]]
include-operation-id = ["heartbeat", "rotate_token", "next_command", "report", "append_output"]
warnings = false

# `owner_user_id` must name a user of the caller's tenant, which a schema
# cannot say: a random id is refused (400, field error).
[[operations]]
include-path = "/api/v1/agents/pairings"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# generate-iso-payload has rules across fields a schema cannot state (a
# Windows guest needs a profile_id of the caller's; the IP plan must be a
# consistent IPv4 network; agent_id needs vmid and an agent the caller may
# use; playbook_id must name a visible playbook): a schema-valid body may be
# refused (400/403/404/409).
[[operations]]
include-path = "/api/v1/provisioning/generate-iso-payload"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# The guest endpoints authenticate with a provisioning token in the body,
# which only generate-iso-payload mints: a schema-valid random token is
# refused by design (TOKEN_INVALID 401/404; TOKEN_EXPIRED/TOKEN_REVOKED 410
# once the stateful phase has revoked a minted one; TOKEN_USED 409).
[[operations]]
include-path-regex = "^/api/v1/provisioning/(validate-token|report-progress|playbook)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "410", "429"]

# A playbook's content must be YAML with `name` and `roles`, which a schema
# cannot state: a schema-valid string is refused (400, field error).
[[operations]]
include-path = "/api/v1/playbooks"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-path = "/api/v1/playbooks/{id}"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-path = "/api/v1/playbooks/{id}"
include-method = "PATCH"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# Secrets: a schema-valid body may name an agent envelope without a valid
# envelope, or for an agent that is not the caller's or has no key, or a
# secret id that is taken or not the caller's (400/403/404/409) — rules
# across fields and stored state that a schema cannot state.
[[operations]]
include-path-regex = "^/api/v1/secrets(/bindings|/[^/]+/rotate)?$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# Agent-token operations of the vault (see the command bus' above).
[[operations]]
include-operation-id = ["put_public_key", "agent_secret"]
warnings = false
"#;

fn deep_everywhere() -> bool {
    std::env::var("BOTMOX_SCHEMATHESIS_DEEP").is_ok_and(|v| v == "1")
}

/// The `st` binary, or `None` (after saying why) when it is missing
/// outside CI. Under `CI=true` a missing tool fails the test.
fn st_binary() -> Option<PathBuf> {
    let path = std::env::var_os("BOTMOX_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ST_DEFAULT));
    let version = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match version {
        Some(v) if v.contains(ST_VERSION) => return Some(path),
        Some(v) => eprintln!(
            "schemathesis at {} is `{v}`, not {ST_VERSION}; running it anyway",
            path.display()
        ),
        None => {
            let msg = format!(
                "schemathesis (`st`) not found at {} — run `bash scripts/setup-test-env.sh`",
                path.display()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg} (CI=true: this test must not be skipped)");
            }
            eprintln!("SKIPPED {msg} (set CI=true to make this a failure)");
            return None;
        }
    }
    Some(path)
}

/// One `st run` against the server with this bearer token, its report
/// printed; true when it found nothing. `agent_id` (an online
/// agent) is offered for `agent_id` in bodies, so dispatches can succeed.
async fn st_run(
    st: &PathBuf,
    s: &TestServer,
    agent_id: &str,
    who: &str,
    token: &str,
    phases: &str,
    extra: &[&str],
) -> bool {
    let examples = std::env::var("BOTMOX_SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(match (deep_everywhere(), who) {
            (true, _) => 50,
            (false, "viewer") => MAX_EXAMPLES / 2,
            (false, _) => MAX_EXAMPLES,
        });
    let report = s.data.path().join(format!("st-{who}"));
    let config = s.data.path().join("schemathesis.toml");
    let dictionary = format!(
        "\n[dictionaries.agents]\nvalues = [\"{agent_id}\"]\n\n\
         [parameters]\n\"body.agent_id\" = {{ dictionary = \"agents\", probability = 0.5 }}\n"
    );
    std::fs::write(&config, format!("{dictionary}{CONFIG}")).unwrap();
    let mut cmd = tokio::process::Command::new(st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(s.url("/api/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples.to_string()])
        .args(["--phases", phases])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--workers", "2", "--seed", "1", "--no-color"])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .arg("--report-dir")
        .arg(&report)
        .args(extra)
        .args(
            std::env::var("BOTMOX_SCHEMATHESIS_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        // its cache (`.schemathesis/`) goes to the server's temporary dir
        .current_dir(s.data.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    for attempt in 1..=2 {
        let started = Instant::now();
        let out = cmd.output().await.expect("run st");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "== schemathesis {:?} as {who} ({phases}, {examples} cases per operation): exit {:?} in {:.1}s\n{stdout}{stderr}",
            s.backend,
            out.status.code(),
            started.elapsed().as_secs_f64()
        );
        // The tool itself crashing is not a finding: CPython 3.11's `ast`
        // raised this inside hypothesis (describing a lambda while
        // schemathesis generated cases on its worker threads), once, on an
        // endpoint no change had touched. Run once more for that crash
        // only; a failed check never gets a second run.
        if !out.status.success()
            && attempt == 1
            && stdout.contains("SystemError: AST constructor recursion depth mismatch")
        {
            println!("== the tool crashed inside CPython's ast, not a check: running it once more");
            continue;
        }
        return out.status.success();
    }
    false
}

async fn schemathesis_finds_no_contract_violation(backend: Backend) {
    let Some(st) = st_binary() else { return };
    // A 5xx's cause (panic message, database error) is logged by the
    // server's middleware at ERROR: print it beside schemathesis' report.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("control_server::http::middleware=error")
        .with_writer(std::io::stderr)
        .try_init();
    let mut settings = base_settings();
    // schemathesis sends thousands of requests from one address: raise the
    // budgets so runs are not cut short (429 stays documented everywhere).
    settings.api_rate_limit_per_minute = Some(1_000_000);
    settings.public_rate_limit_per_minute = Some(1_000_000);
    let s = TestServer::start_with(backend, settings, axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (_, viewer) = s.user(&admin, "viewer@default.test", "viewer").await;
    let (agent_id, heartbeats) = online_agent(&s, &admin).await;
    // Logout revokes the token the run authenticates with, after which every
    // call is a 401: it gets its own run with a throwaway session.
    let throwaway = s.admin_token().await;
    let no_logout = ["--exclude-path", "/api/v1/auth/logout"];
    let (viewer_phases, admin_phases) = match (deep_everywhere(), backend) {
        (true, _) => (PHASES_DEEP, PHASES_DEEP),
        (false, Backend::Postgres) => (PHASES, PHASES_DEEP),
        (false, Backend::Sqlite) => (PHASES, PHASES),
    };
    let mut failed = vec![];
    if !st_run(
        &st,
        &s,
        &agent_id,
        "viewer",
        &viewer,
        viewer_phases,
        &no_logout,
    )
    .await
    {
        failed.push("viewer");
    }
    if !st_run(
        &st,
        &s,
        &agent_id,
        "admin",
        &admin,
        admin_phases,
        &no_logout,
    )
    .await
    {
        failed.push("admin");
    }
    // One operation, no links: no stateful phase.
    let only_logout = ["--include-path", "/api/v1/auth/logout"];
    if !st_run(
        &st,
        &s,
        &agent_id,
        "logout",
        &throwaway,
        "coverage,fuzzing",
        &only_logout,
    )
    .await
    {
        failed.push("logout");
    }
    heartbeats.abort();
    s.stop().await;
    assert!(
        failed.is_empty(),
        "schemathesis found problems on {backend:?} as {failed:?}; see its reports above"
    );
}

/// Pair and register an agent of the admin and keep it online (a heartbeat
/// every 5 s) so that dispatching to it succeeds.
async fn online_agent(s: &TestServer, admin: &str) -> (String, tokio::task::JoinHandle<()>) {
    let p = s
        .post("/api/v1/agents/pairings", Some(admin), json!({}))
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let code = p.body["data"]["pairing_code"].as_str().unwrap();
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"pairing_code": code, "machine_name": "st-agent"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let agent_id = r.body["data"]["agent"]["id"].as_str().unwrap().to_string();
    let token = r.body["data"]["agent_token"].as_str().unwrap().to_string();
    let (http, url) = (s.http.clone(), s.url("/api/v1/agents/heartbeat"));
    let heartbeats = tokio::spawn(async move {
        loop {
            let _ = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    (agent_id, heartbeats)
}

// Part of the default run (issue #11): both backends. What the runs found
// and fixed is listed in docs/security.md ("Machine-walked API").
mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schemathesis_finds_no_contract_violation() {
        super::schemathesis_finds_no_contract_violation(crate::common::Backend::Sqlite).await
    }
}
mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schemathesis_finds_no_contract_violation() {
        super::schemathesis_finds_no_contract_violation(crate::common::Backend::Postgres).await
    }
}
