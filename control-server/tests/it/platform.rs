//! The data platform under the domains: multi-step writes roll back whole,
//! stored enums round-trip, the list-query kit returns what a reference
//! computed in the test returns, and both backends have the same schema.

use std::collections::{BTreeMap, BTreeSet};

use botmox_protocol::CommandStatus;
use control_server::auth::{Identity, IdentitySource, Role};
use control_server::config::{Config, Settings};
use control_server::db::ids::{TenantId, UserId};
use control_server::db::Db;
use control_server::domains::accounts::service::TokenKind;
use control_server::domains::agents::{AgentStatus, Caller, ConnectionState};
use control_server::domains::commands::store::COMMAND_LIST;
use control_server::state::Services;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::json;
use sqlx::{Connection, Row as _};

use crate::bus::{dispatch, pair_agent};
use crate::common::{base_settings, create_pg_database, drop_pg_database, Backend, TestServer};

backend_tests!(
    tenant_and_first_admin_roll_back_together,
    revoke_and_cancel_roll_back_together,
    stored_enums_round_trip,
);

/// POST /tenants with an admin whose e-mail is taken: the second write
/// (the user) fails, so the first (the tenant) must not stay behind.
async fn tenant_and_first_admin_roll_back_together(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let taken = s
        .post(
            "/api/v1/tenants",
            Some(&admin),
            json!({"id": "acme", "name": "Acme", "admin": {"email": "admin@localhost", "password": "a-long-password-1"}}),
        )
        .await;
    taken.assert_error(409, "CONFLICT");
    let tenants = s.get("/api/v1/tenants", Some(&admin)).await;
    let ids: Vec<&str> = tenants.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["default"],
        "the tenant survived the failed admin insert"
    );
    // The same id is free again.
    let ok = s
        .post(
            "/api/v1/tenants",
            Some(&admin),
            json!({"id": "acme", "name": "Acme", "admin": {"email": "boss@acme.test", "password": "a-long-password-1"}}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    s.stop().await;
}

/// Revoking an agent cancels its queued commands in the same transaction.
/// A trigger makes the cancellation fail: the agent must stay active and
/// the command queued.
async fn revoke_and_cancel_roll_back_together(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, _agent_token) = pair_agent(&s, &admin).await;
    let d = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 100})).await;
    assert_eq!(d.status, 202, "{}", d.body);
    let command_id = d.body["data"]["id"].as_str().unwrap().to_string();
    let pool = s.db.raw_pool();
    match b {
        Backend::Sqlite => {
            sqlx::query(
                "CREATE TRIGGER fail_cancel BEFORE UPDATE ON agent_commands
                 WHEN NEW.status = 'cancelled'
                 BEGIN SELECT RAISE(ABORT, 'forced failure'); END",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Backend::Postgres => {
            sqlx::query(
                "CREATE FUNCTION fail_cancel() RETURNS trigger AS $$
                 BEGIN IF NEW.status = 'cancelled' THEN RAISE EXCEPTION 'forced failure'; END IF;
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER fail_cancel BEFORE UPDATE ON agent_commands
                 FOR EACH ROW EXECUTE FUNCTION fail_cancel()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
    let r = s
        .post(
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert!(r.status >= 500, "revoke must fail: {} {}", r.status, r.body);
    assert!(
        !r.body.to_string().contains("forced failure"),
        "internals leaked: {}",
        r.body
    );
    let agent = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(agent.body["data"]["status"], "active", "{}", agent.body);
    let cmd = s
        .get(
            &format!("/api/v1/vm-ops/commands/{command_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(cmd.body["data"]["status"], "queued", "{}", cmd.body);
    let events = sqlx::query("SELECT COUNT(*) AS n FROM events WHERE event_type = 'agent.revoked'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        events.get::<i64, _>("n"),
        0,
        "an event of the rolled-back revoke"
    );
    // Without the trigger the same revoke goes through, cancelling the command.
    let drop = match b {
        Backend::Sqlite => "DROP TRIGGER fail_cancel",
        Backend::Postgres => "DROP TRIGGER fail_cancel ON agent_commands",
    };
    sqlx::query(drop).execute(pool).await.unwrap();
    let r = s
        .post(
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cmd = s
        .get(
            &format!("/api/v1/vm-ops/commands/{command_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(cmd.body["data"]["status"], "cancelled", "{}", cmd.body);
    s.stop().await;
}

#[derive(sqlx::FromRow)]
struct Stored<T: TryFrom<String>> {
    #[sqlx(try_from = "String")]
    v: T,
}

async fn round_trip<T>(conn: &mut sqlx::AnyConnection, all: &[T])
where
    T: TryFrom<String>
        + std::fmt::Display
        + std::str::FromStr
        + PartialEq
        + std::fmt::Debug
        + Copy
        + Send
        + Unpin
        + 'static,
    <T as TryFrom<String>>::Error: std::error::Error + Send + Sync + 'static,
    <T as std::str::FromStr>::Err: std::fmt::Debug,
{
    sqlx::query("DELETE FROM enum_round_trip")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (i, v) in all.iter().enumerate() {
        // Display → FromStr in memory.
        assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
        sqlx::query("INSERT INTO enum_round_trip (i, v) VALUES ($1, $2)")
            .bind(i as i64)
            .bind(v.to_string())
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let back: Vec<Stored<T>> = sqlx::query_as("SELECT v FROM enum_round_trip ORDER BY i")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let back: Vec<T> = back.into_iter().map(|s| s.v).collect();
    assert_eq!(back, all);
    // A value the code does not know is a decode error, not a panic.
    sqlx::query("INSERT INTO enum_round_trip (i, v) VALUES (999, 'no-such-variant')")
        .execute(&mut *conn)
        .await
        .unwrap();
    let bad = sqlx::query_as::<_, Stored<T>>("SELECT v FROM enum_round_trip WHERE i = 999")
        .fetch_one(&mut *conn)
        .await;
    assert!(bad.is_err(), "an unknown stored value must not decode");
}

/// Every stored enum: text in the database, the same variant back.
async fn stored_enums_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let mut conn = s.db.raw_pool().acquire().await.unwrap();
    let conn = &mut *conn;
    sqlx::query("CREATE TEMPORARY TABLE enum_round_trip (i BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&mut *conn)
        .await
        .unwrap();
    round_trip(conn, CommandStatus::ALL).await;
    round_trip(conn, AgentStatus::ALL).await;
    round_trip(conn, ConnectionState::ALL).await;
    round_trip(conn, TokenKind::ALL).await;
    round_trip(
        conn,
        &[Role::Viewer, Role::Operator, Role::Admin, Role::Infra],
    )
    .await;
    drop(s.db.raw_pool().acquire().await.unwrap());
    s.stop().await;
}

// ---- the list-query kit against a reference ----

#[derive(Debug, Clone)]
struct Row {
    id: String,
    tenant: String,
    agent: String,
    status: &'static str,
    command_type: &'static str,
    error_code: Option<&'static str>,
    created_by: Option<String>,
    attempt: i64,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

const TYPES: &[&str] = &[
    "proxmox.start",
    "ssh.exec",
    "proxmox.clone",
    "Proxmox.Clone%_x",
    "ssh.test",
];
const CODES: &[Option<&str>] = &[
    None,
    Some("EXPIRED"),
    Some("LEASE_LOST"),
    Some("a%b_c"),
    None,
];
const STATUSES: &[&str] = &[
    "queued",
    "dispatched",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
];
const SORTS: &[&str] = &[
    "created_at",
    "updated_at",
    "finished_at",
    "status",
    "command_type",
    "attempt_count",
];
const SEARCHES: &[&str] = &["prox", "EXEC", "%", "_", "lease", "a%b", "clone%_"];

fn gen_rows(seed: u64, tenant: &str, agents: &[String], users: &[String], n: usize) -> Vec<Row> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let created_at = 1_000_000 + rng.random_range(0..20i64) * 1000; // ties on purpose
            Row {
                id: format!("{tenant}-{i:04}-{:08x}", rng.random::<u32>()),
                tenant: tenant.to_string(),
                agent: agents[rng.random_range(0..agents.len())].clone(),
                status: STATUSES[rng.random_range(0..STATUSES.len())],
                command_type: TYPES[rng.random_range(0..TYPES.len())],
                error_code: CODES[rng.random_range(0..CODES.len())],
                created_by: if rng.random_bool(0.8) {
                    Some(users[rng.random_range(0..users.len())].clone())
                } else {
                    None
                },
                attempt: rng.random_range(0..4),
                created_at,
                updated_at: created_at + rng.random_range(0..5i64) * 1000,
                finished_at: rng
                    .random_bool(0.5)
                    .then(|| created_at + rng.random_range(0..9i64) * 1000),
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Query {
    sort: Option<usize>,
    desc: Option<bool>,
    status: Option<Vec<usize>>,
    agent: Option<usize>,
    attempt_gte: Option<i64>,
    created_lt: Option<i64>,
    code_eq: Option<usize>,
    search: Option<usize>,
    limit: u32,
    page: u32,
}

fn query_strategy() -> impl Strategy<Value = Query> {
    (
        (
            proptest::option::of(0..SORTS.len()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(proptest::collection::vec(0..STATUSES.len(), 1..4)),
            proptest::option::of(0..2usize),
            proptest::option::of(0..4i64),
        ),
        (
            proptest::option::of(0..25i64),
            proptest::option::of(1..4usize),
            proptest::option::of(0..SEARCHES.len()),
            1..25u32,
            1..6u32,
        ),
    )
        .prop_map(
            |(
                (sort, desc, status, agent, attempt_gte),
                (created_lt, code_eq, search, limit, page),
            )| Query {
                sort,
                desc,
                status,
                agent,
                attempt_gte,
                created_lt: created_lt.map(|s| 1_000_000 + s * 1000),
                code_eq,
                search,
                limit,
                page,
            },
        )
}

impl Query {
    fn to_query_string(&self, agents: &[String], with_page: bool) -> String {
        let mut q = vec![format!("limit={}", self.limit)];
        if with_page {
            q.push(format!("page={}", self.page));
        }
        if let Some(s) = self.sort {
            q.push(format!("sort={}", SORTS[s]));
        }
        if let Some(d) = self.desc {
            q.push(format!("order={}", if d { "desc" } else { "asc" }));
        }
        if let Some(st) = &self.status {
            let v: Vec<&str> = st.iter().map(|i| STATUSES[*i]).collect();
            q.push(format!("status_in={}", v.join(",")));
        }
        if let Some(a) = self.agent {
            q.push(format!("agent_id={}", agents[a]));
        }
        if let Some(n) = self.attempt_gte {
            q.push(format!("attempt_count_gte={n}"));
        }
        if let Some(t) = self.created_lt {
            q.push(format!("created_at_lt={t}"));
        }
        if let Some(c) = self.code_eq {
            q.push(format!("error_code={}", enc(CODES[c].unwrap_or("EXPIRED"))));
        }
        if let Some(s) = self.search {
            q.push(format!("q={}", enc(SEARCHES[s])));
        }
        q.join("&")
    }

    /// The expected full order of matching rows.
    fn reference(
        &self,
        rows: &[Row],
        tenant: &str,
        agents: &[String],
        visible_to: Option<&str>,
    ) -> Vec<String> {
        let mut hits: Vec<&Row> = rows
            .iter()
            .filter(|r| r.tenant == tenant)
            .filter(|r| visible_to.is_none_or(|u| r.created_by.as_deref() == Some(u)))
            .filter(|r| {
                self.status
                    .as_ref()
                    .is_none_or(|st| st.iter().any(|i| STATUSES[*i] == r.status))
            })
            .filter(|r| self.agent.is_none_or(|a| r.agent == agents[a]))
            .filter(|r| self.attempt_gte.is_none_or(|n| r.attempt >= n))
            .filter(|r| self.created_lt.is_none_or(|t| r.created_at < t))
            .filter(|r| {
                self.code_eq
                    .is_none_or(|c| r.error_code == Some(CODES[c].unwrap_or("EXPIRED")))
            })
            .filter(|r| {
                self.search.is_none_or(|s| {
                    let needle = SEARCHES[s].to_ascii_lowercase();
                    r.command_type.to_ascii_lowercase().contains(&needle)
                        || r.error_code
                            .is_some_and(|c| c.to_ascii_lowercase().contains(&needle))
                })
            })
            .collect();
        let sort = self.sort.map(|s| SORTS[s]).unwrap_or("created_at");
        let desc = self.desc.unwrap_or(true);
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Key {
            I(i64),
            S(String),
        }
        let key = |r: &Row| -> Option<Key> {
            match sort {
                "created_at" => Some(Key::I(r.created_at)),
                "updated_at" => Some(Key::I(r.updated_at)),
                "finished_at" => r.finished_at.map(Key::I),
                "status" => Some(Key::S(r.status.to_string())),
                "command_type" => Some(Key::S(r.command_type.to_string())),
                "attempt_count" => Some(Key::I(r.attempt)),
                _ => unreachable!(),
            }
        };
        hits.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            // NULLs last in both orders; then the key, then the id.
            let nulls = ka.is_none().cmp(&kb.is_none());
            let by_key = ka.cmp(&kb).then_with(|| a.id.cmp(&b.id));
            nulls.then(if desc { by_key.reverse() } else { by_key })
        });
        hits.into_iter().map(|r| r.id.clone()).collect()
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn params(qs: &str) -> control_server::db::list::ListParams {
    COMMAND_LIST
        .parse(qs, &[])
        .expect("the generated query is valid")
        .0
}

async fn seed(db: &Db, rows: &[Row]) {
    let pool = db.raw_pool();
    for t in ["default", "other"] {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $1, 0) ON CONFLICT (id) DO NOTHING")
            .bind(t)
            .execute(pool)
            .await
            .unwrap();
    }
    let agents: BTreeSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r.tenant.as_str(), r.agent.as_str()))
        .collect();
    for (t, a) in agents {
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, name, status, created_at, updated_at) VALUES ($1, $2, $1, 'active', 0, 0)",
        )
        .bind(a)
        .bind(t)
        .execute(pool)
        .await
        .unwrap();
    }
    for r in rows {
        sqlx::query(
            "INSERT INTO agent_commands (id, tenant_id, agent_id, command_type, payload, payload_digest, status,
                attempt_count, max_attempts, error_code, created_by, created_at, updated_at, finished_at, expires_at)
             VALUES ($1, $2, $3, $4, '{}', 'd', $5, $6, 3, $7, $8, $9, $10, $11, $9)",
        )
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(&r.agent)
        .bind(r.command_type)
        .bind(r.status)
        .bind(r.attempt)
        .bind(r.error_code)
        .bind(r.created_by.as_deref())
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.finished_at)
        .execute(pool)
        .await
        .unwrap();
    }
}

fn caller(user: &str, role: Role) -> Caller {
    Caller::User(Identity {
        source: IdentitySource::Session,
        user_id: UserId::from(user),
        email: format!("{user}@example.test"),
        tenant_id: TenantId::from("default"),
        role,
        infra: false,
        token_id: None,
    })
}

fn list_query_matches_reference(b: Backend) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, services, pg) = rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match b {
            Backend::Sqlite => (
                format!("sqlite://{}/list.db?mode=rwc", dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = create_pg_database().await;
                (url, Some(name))
            }
        };
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let cfg = Config::from_settings(Settings {
            database_url: Some(url),
            data_dir: Some(dir.keep()),
            ..base_settings()
        })
        .unwrap();
        let services = Services::new(&db, &cfg).unwrap();
        (db, services, pg)
    });
    let agents = vec!["agent-a".to_string(), "agent-b".to_string()];
    let users = vec!["user-1".to_string(), "user-2".to_string()];
    let mut rows = gen_rows(7, "default", &agents, &users, 160);
    rows.extend(gen_rows(8, "other", &["agent-x".to_string()], &users, 40));
    rt.block_on(seed(&db, &rows));

    let mut runner = TestRunner::new(PropConfig {
        cases: 120,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&(query_strategy(), any::<bool>()), |(q, as_operator)| {
            let (who, role, visible) = if as_operator {
                ("user-1", Role::Operator, Some("user-1"))
            } else {
                ("user-2", Role::Admin, None)
            };
            let c = caller(who, role);
            let expected = q.reference(&rows, "default", &agents, visible);
            // One page by number.
            let qs = q.to_query_string(&agents, true);
            let page = rt
                .block_on(services.commands.list(&c, &params(&qs)))
                .map_err(|e| TestCaseError::fail(format!("{qs}: {e}")))?;
            let start = ((q.page - 1) * q.limit) as usize;
            let want: Vec<&String> = expected.iter().skip(start).take(q.limit as usize).collect();
            let got: Vec<String> = page.items.iter().map(|r| r.id.to_string()).collect();
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want, "page of {}", qs);
            prop_assert_eq!(page.total, expected.len() as i64, "total of {}", qs);
            // Every page by cursor (sorts without empty values).
            if q.sort.map(|s| SORTS[s]) != Some("finished_at") {
                let base = q.to_query_string(&agents, false);
                let mut walked = Vec::new();
                let mut cursor: Option<String> = None;
                for _ in 0..200 {
                    let qs = match &cursor {
                        Some(c) => format!("{base}&cursor={c}"),
                        None => base.clone(),
                    };
                    let p = rt
                        .block_on(services.commands.list(&c, &params(&qs)))
                        .map_err(|e| TestCaseError::fail(format!("{qs}: {e}")))?;
                    walked.extend(p.items.iter().map(|r| r.id.to_string()));
                    match p.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                prop_assert_eq!(&walked, &expected, "cursor walk of {}", base);
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(async {
        db.close().await;
        if let Some(name) = pg {
            drop_pg_database(&name).await;
        }
    });
}

mod list_kit {
    #[test]
    fn sqlite_list_query_matches_reference() {
        super::list_query_matches_reference(crate::common::Backend::Sqlite);
    }
    #[test]
    fn postgres_list_query_matches_reference() {
        super::list_query_matches_reference(crate::common::Backend::Postgres);
    }
}

// ---- schema parity ----

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ColumnShape {
    family: &'static str,
    not_null: bool,
    default: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    /// table → column → shape
    columns: BTreeMap<String, BTreeMap<String, ColumnShape>>,
    /// table → primary key columns
    primary_keys: BTreeMap<String, Vec<String>>,
    /// (table, columns, unique, partial) of every index and unique constraint
    indexes: BTreeSet<(String, Vec<String>, bool, bool)>,
}

fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") || t == "bigserial" {
        "integer"
    } else if t.contains("char") || t.contains("text") {
        "text"
    } else if t.contains("bool") {
        "boolean"
    } else if t.contains("real") || t.contains("double") || t.contains("numeric") {
        "real"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else {
        "other"
    }
}

fn normalize_default(d: Option<String>) -> Option<String> {
    let d = d?;
    if d.starts_with("nextval(") {
        return Some("<auto>".into());
    }
    // PostgreSQL writes '[]'::text; SQLite keeps the literal.
    let d = d.split("::").next().unwrap_or(&d).trim().to_string();
    Some(d.trim_matches(|c| c == '(' || c == ')').to_string())
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mut s = Schema::default();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (t,) in tables {
        let cols: Vec<(i64, String, String, i64, Option<String>, i64)> = sqlx::query_as(&format!(
            "SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}')"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        let mut map = BTreeMap::new();
        for (_, name, ty, notnull, dflt, pkpos) in cols {
            let auto = pkpos > 0 && ty.eq_ignore_ascii_case("integer");
            if pkpos > 0 {
                pk.push((pkpos, name.clone()));
            }
            map.insert(
                name,
                ColumnShape {
                    family: family(&ty),
                    // A PRIMARY KEY column is NOT NULL on PostgreSQL.
                    not_null: notnull == 1 || pkpos > 0,
                    default: if auto {
                        Some("<auto>".into())
                    } else {
                        normalize_default(dflt)
                    },
                },
            );
        }
        pk.sort();
        s.primary_keys
            .insert(t.clone(), pk.into_iter().map(|(_, n)| n).collect());
        s.columns.insert(t.clone(), map);
        let idx: Vec<(String, i64, String, i64)> = sqlx::query_as(&format!(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list('{t}')"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (name, unique, origin, partial) in idx {
            if origin == "pk" {
                continue;
            }
            let cols: Vec<(i64, String)> = sqlx::query_as(&format!(
                "SELECT seqno, name FROM pragma_index_info('{name}') ORDER BY seqno"
            ))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            s.indexes.insert((
                t.clone(),
                cols.into_iter().map(|(_, n)| n).collect(),
                unique == 1,
                partial == 1,
            ));
        }
    }
    s
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut s = Schema::default();
    type PgColumn = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let cols: Vec<PgColumn> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text, is_identity::text
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (t, c, ty, nullable, dflt, identity) in cols {
        let auto = identity.as_deref() == Some("YES");
        s.columns.entry(t).or_default().insert(
            c,
            ColumnShape {
                family: family(&ty),
                not_null: nullable == "NO",
                default: if auto {
                    Some("<auto>".into())
                } else {
                    normalize_default(dflt)
                },
            },
        );
    }
    let idx: Vec<(String, String, bool, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, x.indisunique, x.indisprimary, x.indpred IS NOT NULL,
                ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord)
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'public' AND t.relname NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (t, _name, unique, primary, partial, cols) in idx {
        if primary {
            s.primary_keys.insert(t, cols);
        } else {
            s.indexes.insert((t, cols, unique, partial));
        }
    }
    s
}

fn diff(a: &Schema, b: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = a.columns.keys().chain(b.columns.keys()).collect();
    for t in tables {
        match (a.columns.get(t), b.columns.get(t)) {
            (Some(ca), Some(cb)) => {
                let names: BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
                for c in names {
                    match (ca.get(c), cb.get(c)) {
                        (Some(x), Some(y)) if x != y => {
                            out.push(format!("{t}.{c}: sqlite {x:?} ≠ postgres {y:?}"))
                        }
                        (Some(_), None) => out.push(format!("{t}.{c}: only in sqlite")),
                        (None, Some(_)) => out.push(format!("{t}.{c}: only in postgres")),
                        _ => {}
                    }
                }
            }
            (Some(_), None) => out.push(format!("table {t}: only in sqlite")),
            (None, Some(_)) => out.push(format!("table {t}: only in postgres")),
            (None, None) => {}
        }
        if a.primary_keys.get(t) != b.primary_keys.get(t) {
            out.push(format!(
                "{t} primary key: sqlite {:?} ≠ postgres {:?}",
                a.primary_keys.get(t),
                b.primary_keys.get(t)
            ));
        }
    }
    for i in a.indexes.difference(&b.indexes) {
        out.push(format!("index/unique {i:?}: only in sqlite"));
    }
    for i in b.indexes.difference(&a.indexes) {
        out.push(format!("index/unique {i:?}: only in postgres"));
    }
    out
}

/// Fresh SQLite and PostgreSQL databases migrated to the latest version
/// have the same tables, columns (type family, nullability, default),
/// primary keys, unique constraints and indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_are_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/parity.db?mode=rwc", dir.path().display());
    let lite = Db::connect(&sqlite_url).await.unwrap();
    lite.migrate().await.unwrap();
    lite.close().await;
    let (pg_url, pg_name) = create_pg_database().await;
    let pg = Db::connect(&pg_url).await.unwrap();
    pg.migrate().await.unwrap();
    pg.close().await;
    let a = sqlite_schema(&sqlite_url).await;
    let b = postgres_schema(&pg_url).await;
    drop_pg_database(&pg_name).await;
    assert!(!a.columns.is_empty() && a.columns.contains_key("agent_commands"));
    let d = diff(&a, &b);
    assert!(d.is_empty(), "the schemas differ:\n  {}", d.join("\n  "));
}

/// The parity check itself notices a difference.
#[test]
fn schema_diff_reports_differences() {
    let mut a = Schema::default();
    let mut b = Schema::default();
    a.columns.entry("t".into()).or_default().insert(
        "c".into(),
        ColumnShape {
            family: "text",
            not_null: true,
            default: None,
        },
    );
    b.columns.entry("t".into()).or_default().insert(
        "c".into(),
        ColumnShape {
            family: "text",
            not_null: false,
            default: None,
        },
    );
    b.indexes
        .insert(("t".into(), vec!["c".into()], false, false));
    let d = diff(&a, &b);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d[0].contains("t.c"), "{d:?}");
}

/// A database outage is not a server bug: while PostgreSQL refuses the
/// server's connections every call answers 503 `DATABASE_ERROR` with
/// `Retry-After` (the original answered 500 `DB_ERROR`), the error names no
/// SQL, and the server serves again once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_recovers() {
    let s = TestServer::start(Backend::Postgres).await;
    let admin = s.admin_token().await;
    assert_eq!(s.get("/api/v1/vms", Some(&admin)).await.status, 200);
    let name = s.database_url().rsplit('/').next().unwrap().to_string();
    let base = crate::common::postgres_base_url();
    let mut pg = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut pg)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut pg)
    .await
    .unwrap();
    let down = s.get("/api/v1/vms", Some(&admin)).await;
    down.assert_error(503, "DATABASE_ERROR");
    assert!(down.header("retry-after").is_some(), "{:?}", down.headers);
    let text = down.body.to_string().to_lowercase();
    for leak in ["select", "sqlx", "pg_", "connection to", name.as_str()] {
        assert!(!text.contains(leak), "`{leak}` leaked: {text}");
    }
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut pg)
        .await
        .unwrap();
    let back = s.get("/api/v1/vms", Some(&admin)).await;
    assert_eq!(back.status, 200, "{}", back.body);
    s.stop().await;
}
