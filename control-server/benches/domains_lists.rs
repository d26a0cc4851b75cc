//! Farm-domain list benchmark (not a test): seeds 100,000 rows per kind in
//! one tenant (licenses, proxies, subscriptions, notes, calendar, kanban,
//! bots, finance operations) and 10 more tenants of 10,000 each, then
//! prints p50/p99 of typical list queries — first page, a deep page via
//! cursor, a sort on an indexed column, a `q` search, a filter — and of
//! the finance daily statistics over a year, on SQLite and PostgreSQL.
//!
//!   cargo bench -p control-server --bench domains_lists
//!
//! Measured as a client sees it: the real server runs in-process on
//! 127.0.0.1 (plain HTTP) and each sample is one `GET` through reqwest,
//! from sending the request to the last byte of the body (bearer-token
//! check, list kit SQL, rendering, JSON). Rows are seeded with plain
//! multi-row `INSERT`s matching the migrations, in transactions, through
//! the server's own database handle; on PostgreSQL the bench then runs
//! `VACUUM ANALYZE` (what autovacuum does after such a load) and restarts
//! the server (on SQLite its writer analyses the tables when it connects,
//! as it does whenever a pooled connection is recycled).
//!
//! Environment: BOTMOX_BENCH_BACKENDS (default "sqlite,postgres"),
//! BOTMOX_BENCH_ROWS (rows per kind in the big tenant, default 100000),
//! BOTMOX_BENCH_TENANTS (default 10), BOTMOX_BENCH_TENANT_ROWS (rows per
//! kind in each of them, default 10000), BOTMOX_BENCH_SAMPLES (requests
//! per query, default 100), BOTMOX_BENCH_POSTGRES (server URL, default
//! postgres://postgres@127.0.0.1:5432; a throwaway database is created and
//! dropped; BOTMOX_BENCH_KEEP=1 keeps it and the SQLite data dir, for
//! EXPLAIN).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use control_server::config::{Config, Settings};
use control_server::db::{Db, Read};
use control_server::server;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sqlx::Connection;

const DAY_MS: i64 = 86_400_000;
const YEAR_MS: i64 = 365 * DAY_MS;
/// 2026-01-01T00:00:00Z: every seeded date lies in 2025.
const END_MS: i64 = 1_767_225_600_000;
const ROWS_PER_STATEMENT: usize = 500;
const ROWS_PER_TX: usize = 10_000;

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn pick<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

/// `v`, or NULL when `null`.
fn opt<T: std::fmt::Display>(null: bool, v: T) -> String {
    if null {
        "NULL".into()
    } else {
        v.to_string()
    }
}

fn text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "cobalt", "delta", "ember", "falcon", "granite", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "meadow", "nebula", "onyx", "prairie", "quartz", "raven",
    "sierra", "tundra", "umber", "violet", "willow", "xenon", "yonder", "zephyr",
];
const PROJECTS: &[&str] = &["wow_tbc", "wow_midnight"];

/// One seeded kind: its table, its columns and a row generator (SQL
/// literals, in column order; `i` is the row's position, oldest first).
struct Seed {
    table: &'static str,
    columns: &'static str,
    row: fn(&mut ChaCha8Rng, usize, i64) -> String,
}

/// `created_at`: `i` of `n` rows spread over the year before [`END_MS`].
fn at(i: usize, n: usize) -> i64 {
    END_MS - YEAR_MS + (i as i64) * (YEAR_MS / n as i64)
}

fn in_year(rng: &mut ChaCha8Rng) -> i64 {
    END_MS - rng.random_range(1..YEAR_MS)
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("'%Y-%m-%d'")
        .to_string()
}

fn bot(rng: &mut ChaCha8Rng) -> String {
    format!("'bot-{:05}'", rng.random_range(0..5000))
}

fn sentence(rng: &mut ChaCha8Rng, words: usize) -> String {
    let w: Vec<&str> = (0..words).map(|_| pick(rng, WORDS)).collect();
    w.join(" ")
}

static SEEDS: &[Seed] = &[
    Seed {
        table: "resources_licenses",
        columns: "license_key, license_type, status, bot_ids, bot_names, expires_at, extras",
        row: |rng, _, _| {
            let expires = in_year(rng) + YEAR_MS / 2;
            format!(
                "'LIC-{:08X}', {}, {}, '[\"bot-1\"]', '[\"Bot one\"]', {}, '{{\"seat\":{}}}'",
                rng.random::<u32>(),
                text(pick(rng, &["standard", "pro", "enterprise"])),
                text(pick(
                    rng,
                    &["active", "active", "active", "expired", "revoked"]
                )),
                opt(rng.random_bool(0.1), expires),
                rng.random_range(1..50)
            )
        },
    },
    Seed {
        table: "resources_proxies",
        columns: "ip, port, login, secret_sealed, provider, country, country_code, proxy_type, \
                  status, bot_id, fraud_score, vpn, proxy, tor, isp, city, expires_at, \
                  last_checked, extras",
        row: |rng, _, _| {
            let (cc, country) = *[
                ("DE", "Germany"),
                ("US", "United States"),
                ("FR", "France"),
                ("NL", "Netherlands"),
                ("PL", "Poland"),
            ]
            .get(rng.random_range(0..5))
            .unwrap();
            format!(
                "'10.{}.{}.{}', {}, 'user{}', NULL, {}, '{country}', '{cc}', {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, '{{}}'",
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(1024..65535),
                rng.random_range(0..1000),
                text(&format!("{} networks", pick(rng, WORDS))),
                text(pick(rng, &["http", "socks5"])),
                text(pick(rng, &["active", "active", "expired", "banned"])),
                bot(rng),
                opt(rng.random_bool(0.2), rng.random_range(0..100)),
                rng.random_range(0..2),
                rng.random_range(0..2),
                rng.random_range(0..2),
                text(&format!("{} telecom", pick(rng, WORDS))),
                text(&format!("{} city", pick(rng, WORDS))),
                opt(rng.random_bool(0.1), in_year(rng) + YEAR_MS / 2),
                in_year(rng),
            )
        },
    },
    Seed {
        table: "resources_subscriptions",
        columns: "subscription_type, status, expires_at, bot_id, account_email, auto_renew, \
                  project_id, notes, extras",
        row: |rng, i, _| {
            format!(
                "{}, {}, {}, {}, 'user{i}@example.com', {}, {}, {}, '{{}}'",
                text(pick(rng, &["wow", "bot", "proxy", "vpn", "other"])),
                text(pick(rng, &["active", "active", "cancelled"])),
                opt(rng.random_bool(0.1), in_year(rng) + YEAR_MS / 2),
                bot(rng),
                rng.random_range(0..2),
                text(pick(rng, PROJECTS)),
                text(&sentence(rng, 6)),
            )
        },
    },
    Seed {
        table: "workspace_notes",
        columns: "title, content, blocks, tags, bot_id, project_id, is_pinned, created_by, extras",
        row: |rng, i, _| {
            format!(
                "{}, {}, NULL, '[\"{}\"]', {}, {}, {}, 'admin@localhost', '{{}}'",
                text(&format!("Note {i} {}", sentence(rng, 3))),
                text(&sentence(rng, 40)),
                pick(rng, WORDS),
                bot(rng),
                text(pick(rng, PROJECTS)),
                i64::from(rng.random_bool(0.05)),
            )
        },
    },
    Seed {
        table: "workspace_calendar_events",
        columns: "title, description, event_date, linked_note_id, extras",
        row: |rng, i, _| {
            format!(
                "{}, {}, {}, NULL, '{{}}'",
                text(&format!("Event {i} {}", sentence(rng, 2))),
                text(&sentence(rng, 12)),
                date(in_year(rng)),
            )
        },
    },
    Seed {
        table: "workspace_kanban_tasks",
        columns: "title, description, status, due_date, sort_order, extras",
        row: |rng, i, _| {
            format!(
                "{}, {}, {}, {}, {}, '{{}}'",
                text(&format!("Task {i} {}", sentence(rng, 3))),
                text(&sentence(rng, 12)),
                text(pick(rng, &["todo", "in_progress", "done"])),
                opt(rng.random_bool(0.3), date(in_year(rng))),
                rng.random_range(0..1000),
            )
        },
    },
    Seed {
        table: "bots",
        columns: "name, project_id, status, character_name, character_level, character_class, \
                  character_race, character_server, character_faction, lifecycle_stage, \
                  stage_transitions, extras",
        row: |rng, i, _| {
            let status = pick(
                rng,
                &[
                    "offline",
                    "prepare",
                    "leveling",
                    "profession",
                    "farming",
                    "banned",
                ],
            );
            let stage = if status == "offline" {
                "prepare"
            } else {
                status
            };
            format!(
                "'{}-{i:06}', {}, '{status}', {}, {}, {}, {}, {}, {}, '{stage}', '[]', '{{}}'",
                pick(rng, WORDS),
                text(pick(rng, PROJECTS)),
                text(&format!("{}{}", pick(rng, WORDS), rng.random_range(0..100))),
                rng.random_range(1..81),
                text(pick(rng, &["warrior", "mage", "priest", "hunter"])),
                text(pick(rng, &["human", "orc", "elf", "dwarf"])),
                text(pick(rng, &["firemaw", "gehennas", "golemagg"])),
                text(pick(rng, &["alliance", "horde"])),
            )
        },
    },
    Seed {
        table: "finance_operations",
        columns: "type, category, description, amount, currency, date_ms, day, bot_id, \
                  project_id, gold_amount, gold_price_at_time",
        row: |rng, _, created| {
            let income = rng.random_bool(0.6);
            let gold = income && rng.random_bool(0.5);
            let date_ms = created - rng.random_range(0..DAY_MS);
            format!(
                "{}, {}, {}, {:.2}, {}, {date_ms}, {}, {}, {}, {}, {}",
                text(if income { "income" } else { "expense" }),
                text(if income {
                    "sale"
                } else {
                    pick(rng, &["proxy", "subscription", "license", "other"])
                }),
                text(&sentence(rng, 4)),
                rng.random_range(1.0..500.0),
                text(if gold { "gold" } else { "USD" }),
                date_ms.div_euclid(DAY_MS),
                bot(rng),
                text(pick(rng, PROJECTS)),
                if gold {
                    format!("{:.1}", rng.random_range(100.0..50_000.0))
                } else {
                    "NULL".into()
                },
                if gold {
                    format!("{:.4}", rng.random_range(0.001..0.05))
                } else {
                    "NULL".into()
                },
            )
        },
    },
];

/// Insert `n` rows of every kind into `tenant`.
async fn seed_tenant(db: &Db, tenant: &str, n: usize, rng: &mut ChaCha8Rng) {
    for s in SEEDS {
        let mut done = 0;
        while done < n {
            let mut tx = db.begin().await.expect("begin");
            let end = (done + ROWS_PER_TX).min(n);
            while done < end {
                let chunk = (end - done).min(ROWS_PER_STATEMENT);
                let mut sql = format!(
                    "INSERT INTO {} (tenant_id, id, {}, created_at, updated_at) VALUES ",
                    s.table, s.columns
                );
                for i in done..done + chunk {
                    let created = at(i, n);
                    let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                        uuid::NoContext,
                        (created / 1000) as u64,
                        ((created % 1000) * 1_000_000) as u32 + rng.random_range(0..1_000_000),
                    ));
                    if i > done {
                        sql.push_str(", ");
                    }
                    let _ = write!(
                        sql,
                        "('{tenant}', '{id}', {}, {created}, {})",
                        (s.row)(rng, i, created),
                        created + rng.random_range(0..DAY_MS)
                    );
                }
                sqlx::query(&sql)
                    .execute((&mut tx).exec())
                    .await
                    .unwrap_or_else(|e| panic!("seed {}: {e}", s.table));
                done += chunk;
            }
            tx.commit().await.expect("commit");
        }
    }
}

/// One measured query.
struct Query {
    what: String,
    path: String,
}

fn list_queries(deep: &[(String, String)]) -> Vec<Query> {
    // (kind, path, indexed sort, q, filter)
    let kinds: &[(&str, &str, &str, &str, &str)] = &[
        (
            "licenses",
            "/api/v1/resources/licenses",
            "sort=expires_at&order=asc",
            "q=lic-00a",
            "status=revoked",
        ),
        (
            "proxies",
            "/api/v1/resources/proxies",
            "sort=fraud_score&order=desc",
            "q=germany",
            "status=banned",
        ),
        (
            "subscriptions",
            "/api/v1/resources/subscriptions",
            "sort=expires_at&order=asc",
            "q=user4242",
            "type=vpn",
        ),
        (
            "notes",
            "/api/v1/workspace/notes",
            "sort=updated_at&order=desc",
            "q=onyx%20raven",
            "bot_id=bot-00042",
        ),
        (
            "calendar",
            "/api/v1/workspace/calendar",
            "sort=date&order=asc",
            "q=event%2042",
            "date=2025-06-15",
        ),
        (
            "kanban",
            "/api/v1/workspace/kanban",
            "sort=order&order=asc",
            "q=task%20777",
            "status=done",
        ),
        (
            "bots",
            "/api/v1/bots",
            "sort=name&order=asc",
            "q=quartz42",
            "status=farming",
        ),
        (
            "finance",
            "/api/v1/finance/operations",
            "sort=created_at&order=desc",
            "q=license",
            "type=expense",
        ),
    ];
    let mut out = Vec::new();
    for (kind, path, sort, q, filter) in kinds {
        out.push(Query {
            what: format!("{kind}: first page"),
            path: format!("{path}?limit=50"),
        });
        if let Some((_, cursor)) = deep.iter().find(|(k, _)| k == kind) {
            out.push(Query {
                what: format!("{kind}: deep page (cursor)"),
                path: format!("{path}?limit=50&cursor={cursor}"),
            });
        }
        out.push(Query {
            what: format!("{kind}: {sort}"),
            path: format!("{path}?limit=50&{sort}"),
        });
        out.push(Query {
            what: format!("{kind}: {q}"),
            path: format!("{path}?limit=50&{q}"),
        });
        out.push(Query {
            what: format!("{kind}: {filter}"),
            path: format!("{path}?limit=50&{filter}"),
        });
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let v: Value = r.json().await.expect("json body");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        r["data"]["token"].as_str().unwrap().to_string()
    }

    /// p50 and p99 (ms) of `samples` sequential GETs, after a warm-up.
    async fn measure(&self, path: &str, token: &str, samples: usize) -> (f64, f64, usize) {
        let mut items = 0;
        for _ in 0..3 {
            let v = self.call("GET", path, Some(token), None).await;
            items = match &v["data"] {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                _ => 0,
            };
        }
        let mut lat = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            self.call("GET", path, Some(token), None).await;
            lat.push(t.elapsed());
        }
        lat.sort();
        (percentile(&lat, 0.5), percentile(&lat, 0.99), items)
    }
}

async fn run(backend: &str) {
    let rows: usize = env_or("BOTMOX_BENCH_ROWS", 100_000);
    let tenants: usize = env_or("BOTMOX_BENCH_TENANTS", 10);
    let tenant_rows: usize = env_or("BOTMOX_BENCH_TENANT_ROWS", 10_000);
    let samples: usize = env_or("BOTMOX_BENCH_SAMPLES", 100);
    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        listen: Some("127.0.0.1:0".into()),
        tls: Some("off".into()),
        data_dir: Some(data.path().to_path_buf()),
        api_rate_limit_per_minute: Some(100_000_000),
        public_rate_limit_per_minute: Some(100_000_000),
        ..Default::default()
    };
    let pg_base = std::env::var("BOTMOX_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let mut pg_name = None;
    if backend == "postgres" {
        let name = format!("botmox_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::postgres::PgConnection::connect(&format!("{pg_base}/postgres"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {pg_base}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        settings.database_url = Some(format!("{pg_base}/{name}"));
        pg_name = Some(name);
    }
    let start = || async {
        let cfg = Config::from_settings(settings.clone()).expect("config");
        server::start_with(cfg, axum::Router::new())
            .await
            .expect("server starts")
    };
    let running = start().await;
    let mut c = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        base: running.base_url(),
    };
    let password = std::fs::read_to_string(data.path().join("initial-admin-password")).unwrap();
    let admin = c.login("admin@localhost", password.trim()).await;
    let mut small = Vec::new();
    for t in 0..tenants {
        let id = format!("bench-{t:02}");
        let email = format!("admin@{id}.test");
        c.call(
            "POST",
            "/api/v1/tenants",
            Some(&admin),
            Some(json!({"id": id, "name": id, "admin": {"email": email, "password": "a-long-bench-password"}})),
        )
        .await;
        small.push((id, c.login(&email, "a-long-bench-password").await));
    }

    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    seed_tenant(&running.db, "default", rows, &mut rng).await;
    for (id, _) in &small {
        seed_tenant(&running.db, id, tenant_rows, &mut rng).await;
    }
    let seeded = rows * SEEDS.len() + tenants * tenant_rows * SEEDS.len();
    let seed_s = t0.elapsed().as_secs_f64();
    if backend == "postgres" {
        sqlx::query("VACUUM ANALYZE")
            .execute(running.db.raw_pool())
            .await
            .expect("vacuum");
    }
    // As a server that has run with this data: its SQLite writer analyses
    // the tables when it connects, and the readers load those statistics.
    running.shutdown(Duration::from_secs(5)).await.unwrap();
    let running = start().await;
    c.base = running.base_url();
    println!(
        "\n### {backend}: {seeded} rows seeded in {seed_s:.1} s ({:.0} rows/s); {samples} samples per query, ms\n",
        seeded as f64 / seed_s
    );

    for (label, token, n) in [
        (format!("tenant of {rows}"), admin.clone(), rows),
        (
            format!("tenant of {tenant_rows} (1 of {tenants})"),
            small
                .get(tenants / 2)
                .map_or(admin.clone(), |(_, t)| t.clone()),
            tenant_rows,
        ),
    ] {
        if n == 0 {
            continue;
        }
        // A cursor halfway down each list (default order).
        let mut deep = Vec::new();
        for (kind, path) in [
            ("licenses", "/api/v1/resources/licenses"),
            ("proxies", "/api/v1/resources/proxies"),
            ("subscriptions", "/api/v1/resources/subscriptions"),
            ("notes", "/api/v1/workspace/notes"),
            ("calendar", "/api/v1/workspace/calendar"),
            ("kanban", "/api/v1/workspace/kanban"),
            ("bots", "/api/v1/bots"),
            ("finance", "/api/v1/finance/operations"),
        ] {
            let page = (n / 2 / 50).max(1);
            let v = c
                .call(
                    "GET",
                    &format!("{path}?limit=50&page={page}"),
                    Some(&token),
                    None,
                )
                .await;
            if let Some(cur) = v["meta"]["next_cursor"].as_str() {
                deep.push((kind.to_string(), cur.to_string()));
            }
        }
        println!("{label}:\n");
        println!("| query | rows | p50 | p99 |");
        println!("|---|---:|---:|---:|");
        for q in list_queries(&deep) {
            let (p50, p99, items) = c.measure(&q.path, &token, samples).await;
            println!("| {} | {items} | {p50:.1} | {p99:.1} |", q.what);
        }
        let (p50, p99, items) = c
            .measure(
                "/api/v1/finance/daily-stats?from=2025-01-01&to=2025-12-31",
                &token,
                samples,
            )
            .await;
        println!("| finance: daily-stats 2025 | {items} days | {p50:.1} | {p99:.1} |");
        println!();
    }

    running.shutdown(Duration::from_secs(5)).await.unwrap();
    if std::env::var_os("BOTMOX_BENCH_KEEP").is_some() {
        // Kept for EXPLAIN: the data dir (SQLite) or the database.
        let dir = data.keep();
        println!("kept: {} {}", dir.display(), pg_name.unwrap_or_default());
        return;
    }
    if let Some(name) = pg_name {
        if let Ok(mut conn) =
            sqlx::postgres::PgConnection::connect(&format!("{pg_base}/postgres")).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
}

fn main() {
    let backends = std::env::var("BOTMOX_BENCH_BACKENDS").unwrap_or("sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "farm-domain list benchmark: HTTP on loopback, in-process server; {}",
        std::env::var("BOTMOX_BENCH_ROWS").unwrap_or("100000".into())
    );
    for b in backends.split(',').map(str::trim) {
        rt.block_on(run(b));
    }
}
