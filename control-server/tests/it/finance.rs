//! Finance (issue #16): operations CRUD with every validation rule, the
//! daily statistics and gold price history computed in SQL against a
//! reference computed here (random operations over many days, dates given
//! with several UTC offsets), roles and tenants, and the list kit against a
//! reference — on SQLite and PostgreSQL, through real HTTP.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::common::{Backend, TestServer};

backend_tests!(
    crud_round_trip,
    every_validation_rule,
    aggregates_match_reference,
    roles_and_tenants,
    passthrough_fields_round_trip,
    q_searches_category_and_description,
    list_columns_are_indexed,
);

const DAY: i64 = 86_400_000;

async fn create(s: &TestServer, token: &str, body: Value) -> Value {
    let r = s
        .post("/api/v1/finance/operations", Some(token), body.clone())
        .await;
    assert_eq!(r.status, 201, "{body}: {}", r.body);
    r.body["data"].clone()
}

fn op(kind: &str, amount: f64, date: Value) -> Value {
    json!({"type": kind, "category": "sale", "amount": amount, "currency": "USD", "date": date})
}

async fn crud_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let o = create(
        &s,
        &t,
        json!({"type": "income", "category": "sale", "amount": 12.34, "currency": "USD",
               "date": 1_767_225_600_000i64, "description": "line one\nline two", "bot_id": "bot-1",
               "project_id": "wow_tbc", "gold_amount": 10000, "gold_price_at_time": 0.0012,
               "created_at": 1, "updated_at": 2}),
    )
    .await;
    let id = o["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(o["amount"], 12.34);
    assert_eq!(o["date"], "2026-01-01T00:00:00.000Z");
    assert_eq!(o["description"], "line one\nline two");
    assert_eq!(o["gold_amount"], 10000.0);
    assert_ne!(
        o["created_at"], "1970-01-01T00:00:00.001Z",
        "server sets created_at"
    );
    let path = format!("/api/v1/finance/operations/{id}");
    assert_eq!(s.get(&path, Some(&t)).await.body["data"], o);
    // RFC 3339 dates are accepted too.
    let o2 = create(
        &s,
        &t,
        op("expense", -3.5, json!("2026-01-01T22:00:00-05:00")),
    )
    .await;
    assert_eq!(o2["date"], "2026-01-02T03:00:00.000Z");
    // Patch: partial, `null` clears optional fields.
    let p = s
        .call(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"amount": 20, "description": null, "project_id": null, "id": "other"})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["data"]["amount"], 20.0);
    assert_eq!(p.body["data"]["description"], Value::Null);
    assert_eq!(p.body["data"]["project_id"], Value::Null);
    assert_eq!(p.body["data"]["category"], "sale");
    assert_eq!(p.body["data"]["id"], id.as_str());
    // Client ids, conflicts.
    let mine = create(&s, &t, json!({"id": "fin-1", "type": "income", "category": "c", "amount": 1, "currency": "gold", "date": 0})).await;
    assert_eq!(mine["id"], "fin-1");
    s.post("/api/v1/finance/operations", Some(&t), json!({"id": "fin-1", "type": "income", "category": "c", "amount": 1, "currency": "gold", "date": 0}))
        .await
        .assert_error(409, "CONFLICT");
    let list = s
        .get("/api/v1/finance/operations?sort=date&order=asc", Some(&t))
        .await;
    assert_eq!(list.body["meta"]["total"], 3);
    assert_eq!(list.body["data"][0]["id"], "fin-1");
    let d = s.call("DELETE", &path, Some(&t), None).await;
    assert_eq!(d.body["data"], json!({"id": id, "deleted": true}));
    s.get(&path, Some(&t))
        .await
        .assert_error(404, "FINANCE_OPERATION_NOT_FOUND");
    assert_eq!(
        s.get("/api/v1/finance/operations/a%00b", Some(&t))
            .await
            .status,
        404
    );
    s.call("DELETE", &path, Some(&t), None)
        .await
        .assert_error(404, "FINANCE_OPERATION_NOT_FOUND");
    s.call("PATCH", &path, Some(&t), Some(json!({"amount": 1})))
        .await
        .assert_error(404, "FINANCE_OPERATION_NOT_FOUND");
    s.stop().await;
}

async fn every_validation_rule(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let base = op("income", 1.0, json!(0));
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("type"), "type"),
        (with("type", json!("refund")), "type"),
        (without("category"), "category"),
        (with("category", json!("")), "category"),
        (with("category", json!("x".repeat(101))), "category"),
        (with("category", json!("a\u{1b}b")), "category"),
        (without("amount"), "amount"),
        (with("amount", json!("12")), "amount"),
        (with("amount", json!(2e12)), "amount"),
        (without("currency"), "currency"),
        (with("currency", json!("EUR")), "currency"),
        (without("date"), "date"),
        (with("date", json!(-1)), "date"),
        (with("date", json!(253_402_300_800_000i64)), "date"),
        (with("date", json!("yesterday")), "date"),
        (with("date", json!(1.5)), "date"),
        (with("description", json!("x".repeat(1001))), "description"),
        (with("description", json!("a\u{0}b")), "description"),
        (with("bot_id", json!("")), "bot_id"),
        (with("bot_id", json!("a\tb")), "bot_id"),
        (with("project_id", json!("wow_classic")), "project_id"),
        (with("gold_amount", json!(-2e12)), "gold_amount"),
        (
            with("gold_price_at_time", json!(1e13)),
            "gold_price_at_time",
        ),
        (with("id", json!("a/b")), "id"),
        // Passthrough fields are kept, but at most 64 KiB of them.
        (with("memo", json!("x".repeat(65 * 1024))), "body"),
        (with("memo", json!({"k": "a\u{0}b"})), "memo.k"),
        (json!("text"), "body"),
    ];
    for (body, field) in cases {
        let r = s
            .post("/api/v1/finance/operations", Some(&t), body.clone())
            .await;
        r.assert_error(400, "FINANCE_INVALID_CREATE_BODY");
        let fields = r.body["error"]["details"]["fields"].as_object().unwrap();
        assert!(
            fields
                .keys()
                .any(|k| k.starts_with(field) || (field == "body" && !k.is_empty())),
            "{field} not named for {body}: {}",
            r.body
        );
    }
    let o = create(&s, &t, base.clone()).await;
    let path = format!("/api/v1/finance/operations/{}", o["id"].as_str().unwrap());
    let r = s.call("PATCH", &path, Some(&t), Some(json!({}))).await;
    r.assert_error(400, "FINANCE_INVALID_PATCH_BODY");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Finance operation patch must not be empty"));
    for (body, field) in [
        (json!({"type": null}), "type"),
        (json!({"amount": null}), "amount"),
        (json!({"category": ""}), "category"),
        (json!({"date": -5}), "date"),
        (json!({"amount": "x", "extra": 1}), "amount"),
    ] {
        let r = s.call("PATCH", &path, Some(&t), Some(body)).await;
        r.assert_error(400, "FINANCE_INVALID_PATCH_BODY");
        assert!(
            r.body["error"]["details"]["fields"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with(field)),
            "{field}: {}",
            r.body
        );
    }
    assert_eq!(
        s.get(&path, Some(&t)).await.body["data"],
        o,
        "refused patches change nothing"
    );
    for q in [
        "sort=amount",
        "type=refund",
        "limit=500",
        "date_gte=soon",
        "x=1",
    ] {
        s.get(&format!("/api/v1/finance/operations?{q}"), Some(&t))
            .await
            .assert_error(400, "FINANCE_INVALID_LIST_QUERY");
    }
    for p in ["daily-stats", "gold-price-history"] {
        for q in [
            "from=2026-1-1",
            "to=01.01.2026",
            "from=2026-02-30",
            "days=3",
            "from=2026-01-01&from=2026-01-02",
        ] {
            s.get(&format!("/api/v1/finance/{p}?{q}"), Some(&t))
                .await
                .assert_error(400, "FINANCE_INVALID_STATS_QUERY");
        }
    }
    s.stop().await;
}

/// Fields that are not typed pass through (the original's passthrough
/// objects): kept and returned on create, read and list; a PATCH merges
/// them shallowly (each given key replaces its own, `null` is kept); the
/// typed fields are still validated beside them; server-managed keys are
/// ignored; at most 64 KiB of them, also after a merge.
async fn passthrough_fields_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let extras = json!({"source": "auction", "lot": {"items": [1, 2], "realm": "Gehennas"},
                        "verified": true, "fee": 0.05, "nothing": null});
    let mut body = op("income", 9.5, json!(1_767_225_600_000i64));
    for (k, v) in extras.as_object().unwrap() {
        body[k] = v.clone();
    }
    body["tenant_id"] = json!("someone-else");
    let o = create(&s, &t, body).await;
    for (k, v) in extras.as_object().unwrap() {
        assert_eq!(&o[k], v, "{k} on create");
    }
    assert!(o.get("tenant_id").is_none(), "{o}");
    assert_eq!(o["amount"], 9.5);
    assert_eq!(o["category"], "sale");
    let id = o["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/finance/operations/{id}");
    assert_eq!(s.get(&path, Some(&t)).await.body["data"], o, "read");
    let list = s.get("/api/v1/finance/operations", Some(&t)).await;
    assert_eq!(list.body["data"][0], o, "list");
    // A patch of extras only is a patch; typed fields stay.
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"lot": {"items": []}, "buyer": "b-1", "source": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.body["data"].clone();
    assert_eq!(d["lot"], json!({"items": []}));
    assert_eq!(d["buyer"], "b-1");
    assert_eq!(d["source"], Value::Null);
    assert!(d.as_object().unwrap().contains_key("source"));
    assert_eq!(d["verified"], true);
    assert_eq!(d["fee"], 0.05);
    assert_eq!(d["amount"], 9.5);
    assert_eq!(d["date"], "2026-01-01T00:00:00.000Z");
    // Typed and passthrough together: typed replaced, extras merged.
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"amount": 10, "verified": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.body["data"].clone();
    assert_eq!(d["amount"], 10.0);
    assert_eq!(d["verified"], false);
    assert_eq!(d["buyer"], "b-1");
    assert_eq!(
        s.get(&path, Some(&t)).await.body["data"],
        d,
        "read after patch"
    );
    // Refused patches (a bad typed field beside extras; extras growing past
    // 64 KiB) change nothing.
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"currency": "EUR", "x": 1})),
        )
        .await;
    r.assert_error(400, "FINANCE_INVALID_PATCH_BODY");
    assert!(
        r.body["error"]["details"]["fields"]["currency"].is_string(),
        "{}",
        r.body
    );
    let half = "x".repeat(40 * 1024);
    let r = s
        .call("PATCH", &path, Some(&t), Some(json!({"a": half})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.body["data"].clone();
    let r = s
        .call("PATCH", &path, Some(&t), Some(json!({"b": half})))
        .await;
    r.assert_error(400, "FINANCE_INVALID_PATCH_BODY");
    assert!(
        r.body["error"]["details"]["fields"]["body"].is_string(),
        "{}",
        r.body
    );
    assert_eq!(s.get(&path, Some(&t)).await.body["data"], d);
    // The statistics ignore extras.
    let stats = s
        .get(
            "/api/v1/finance/daily-stats?from=2026-01-01&to=2026-01-01",
            Some(&t),
        )
        .await;
    assert_eq!(
        stats.body["data"]["2026-01-01"]["total_revenue"], 10.0,
        "{}",
        stats.body
    );
    s.stop().await;
}

/// `q` searches `category` and `description` case-insensitively, and no
/// other field (bot_id, extras).
async fn q_searches_category_and_description(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let mut ids = Vec::new();
    for (k, v) in [
        ("category", "Mk0Qz"),
        ("description", "Mk1Qz"),
        ("bot_id", "Mk2Qz"),
        ("memo", "Mk3Qz"),
    ] {
        let mut body = op("expense", 1.0, json!(0));
        body[k] = json!(v);
        ids.push(
            create(&s, &t, body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for (i, want) in [(0, true), (1, true), (2, false), (3, false)] {
        for q in [format!("k{i}q"), format!("K{i}Q")] {
            let r = s
                .get(&format!("/api/v1/finance/operations?q={q}"), Some(&t))
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let got: Vec<&str> = r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_str().unwrap())
                .collect();
            let expected: Vec<&str> = if want { vec![ids[i].as_str()] } else { vec![] };
            assert_eq!(got, expected, "q={q}");
        }
    }
    s.stop().await;
}

/// The operations list filters and sorts on indexed columns: every
/// sortable or filterable column of `OPERATION_LIST` has its index.
async fn list_columns_are_indexed(b: Backend) {
    let s = TestServer::start(b).await;
    crate::resources::assert_list_columns_indexed(
        &s,
        b,
        "finance_operations",
        &control_server::domains::finance::store::OPERATION_LIST,
        &[],
    )
    .await;
    s.stop().await;
}

#[derive(Debug, Clone)]
struct Op {
    kind: &'static str,
    category: &'static str,
    amount: f64,
    date_ms: i64,
    bot: Option<String>,
    project: Option<&'static str>,
    gold: Option<f64>,
    price: Option<f64>,
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn day_key(day: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(day * 86_400, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

/// The date as sent: epoch ms, or RFC 3339 in one of several offsets.
fn date_value(ms: i64, style: u64) -> Value {
    use chrono::{FixedOffset, TimeZone};
    let offsets = [0, -5 * 3600, 9 * 3600, 5 * 3600 + 1800, -(11 * 3600)];
    if style == 0 && ms >= 0 {
        return json!(ms);
    }
    let tz = FixedOffset::east_opt(offsets[(style as usize) % offsets.len()]).unwrap();
    json!(tz
        .timestamp_millis_opt(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// Per day: expenses, revenue, bots, gold per project.
type DayAcc = (f64, f64, BTreeSet<String>, BTreeMap<String, f64>);

fn reference_daily(ops: &[Op], from: i64, to: i64) -> BTreeMap<String, Value> {
    let mut days: BTreeMap<i64, DayAcc> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.date_ms >= from && o.date_ms < to) {
        let d = days.entry(o.date_ms.div_euclid(DAY)).or_default();
        if o.kind == "expense" {
            d.0 += o.amount;
        } else {
            d.1 += o.amount;
        }
        if let Some(b) = &o.bot {
            d.2.insert(b.clone());
        }
        if let Some(g) = o.gold {
            *d.3.entry(o.project.unwrap_or("unassigned").to_string())
                .or_default() += g;
        }
    }
    days.into_iter()
        .map(|(day, (exp, rev, bots, farmed))| {
            (
                day_key(day),
                json!({"date": day_key(day), "total_expenses": exp, "total_revenue": rev,
                       "net_profit": rev - exp, "active_bots": bots.len(), "total_farmed": farmed}),
            )
        })
        .collect()
}

fn reference_prices(ops: &[Op], from: i64, to: i64) -> BTreeMap<String, f64> {
    let mut days: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.date_ms >= from && o.date_ms < to) {
        if let (true, Some(p)) = (o.kind == "income" && o.category == "sale", o.price) {
            if p > 0.0 {
                let d = days.entry(o.date_ms.div_euclid(DAY)).or_default();
                d.0 += p;
                d.1 += 1;
            }
        }
    }
    days.into_iter()
        .map(|(day, (sum, n))| (day_key(day), sum / n as f64))
        .collect()
}

fn same_numbers(got: &Value, want: &Value, what: &str) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            assert!(
                close(g.as_f64().unwrap(), w.as_f64().unwrap()),
                "{what}: {g} vs {w}"
            )
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(
                g.keys().collect::<Vec<_>>(),
                w.keys().collect::<Vec<_>>(),
                "{what}: keys of {got} vs {want}"
            );
            for (k, v) in w {
                same_numbers(&g[k], v, &format!("{what}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

async fn aggregates_match_reference(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let other = s.tenant_with_admin(&t, "fin-other").await;
    let mut rng = Lcg(42);
    let start = 1_767_225_600_000i64 - 3 * DAY; // late December 2025
    let mut ops = vec![];
    for i in 0..160 {
        // 40 days, any time of day; a few before 1970 (floor division).
        let date_ms = if i % 40 == 0 {
            -(rng.next(3 * DAY as u64) as i64) - 1
        } else {
            start + rng.next(40 * DAY as u64) as i64
        };
        let o = Op {
            kind: if rng.next(3) == 0 {
                "expense"
            } else {
                "income"
            },
            category: ["sale", "sale", "proxy", "subscription"][rng.next(4) as usize],
            amount: (rng.next(200_000) as f64 - 20_000.0) / 100.0,
            date_ms,
            bot: (rng.next(4) > 0).then(|| format!("bot-{}", rng.next(6))),
            project: [None, Some("wow_tbc"), Some("wow_midnight")][rng.next(3) as usize],
            gold: (rng.next(2) == 0).then(|| rng.next(100_000) as f64 / 10.0),
            price: match rng.next(4) {
                0 => None,
                1 => Some(0.0),
                _ => Some((1 + rng.next(5000)) as f64 / 100_000.0),
            },
        };
        let mut body = json!({"type": o.kind, "category": o.category, "amount": o.amount,
            "currency": if rng.next(2) == 0 { "USD" } else { "gold" },
            "date": date_value(o.date_ms, rng.next(5)),
            "bot_id": o.bot, "project_id": o.project, "gold_amount": o.gold, "gold_price_at_time": o.price});
        if i % 3 == 0 {
            body.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        }
        create(&s, &t, body).await;
        ops.push(o);
        // Another tenant's operations on the same days never count.
        if i % 5 == 0 {
            create(&s, &other, op("income", 1000.0, json!(date_ms.max(0)))).await;
        }
    }
    let mut ranges: Vec<(Option<String>, Option<String>)> = vec![(None, None)];
    for _ in 0..6 {
        let a = start / DAY + rng.next(45) as i64 - 2;
        let b = a + rng.next(12) as i64;
        ranges.push((Some(day_key(a)), Some(day_key(b))));
        ranges.push((Some(day_key(a)), None));
        ranges.push((None, Some(day_key(b))));
    }
    ranges.push((Some("2026-02-01".into()), Some("2026-01-01".into())));
    for (from, to) in ranges {
        let mut q = vec![];
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        if let Some(f) = &from {
            q.push(format!("from={f}"));
            lo = chrono::NaiveDate::parse_from_str(f, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis();
        }
        if let Some(t) = &to {
            q.push(format!("to={t}"));
            hi = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis()
                + DAY;
        }
        let qs = q.join("&");
        let r = s
            .get(&format!("/api/v1/finance/daily-stats?{qs}"), Some(&t))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let want = json!(reference_daily(&ops, lo, hi));
        same_numbers(&r.body["data"], &want, &format!("daily-stats?{qs}"));
        let r = s
            .get(
                &format!("/api/v1/finance/gold-price-history?{qs}"),
                Some(&t),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let want: BTreeMap<String, Value> = reference_prices(&ops, lo, hi)
            .into_iter()
            .map(|(k, p)| (k, json!({"price": p})))
            .collect();
        same_numbers(
            &r.body["data"],
            &json!(want),
            &format!("gold-price-history?{qs}"),
        );
    }
    // A tenant without operations: empty objects.
    let (_, v) = s.user(&t, "viewer@default.test", "viewer").await;
    let fresh = s.tenant_with_admin(&t, "fin-empty").await;
    assert_eq!(
        s.get("/api/v1/finance/daily-stats", Some(&fresh))
            .await
            .body["data"],
        json!({})
    );
    assert_eq!(
        s.get("/api/v1/finance/gold-price-history", Some(&fresh))
            .await
            .body["data"],
        json!({})
    );
    assert_eq!(
        s.get("/api/v1/finance/daily-stats", Some(&v)).await.status,
        200
    );
    s.stop().await;
}

async fn roles_and_tenants(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let admin = s.tenant_with_admin(&infra, "fin-a").await;
    let other = s.tenant_with_admin(&infra, "fin-b").await;
    let (_, viewer) = s.user(&admin, "viewer@fin-a.test", "viewer").await;
    let (_, operator) = s.user(&admin, "operator@fin-a.test", "operator").await;
    let id = create(&s, &admin, op("income", 5.0, json!(0))).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/finance/operations/{id}");
    for p in [
        "/api/v1/finance/operations",
        &path,
        "/api/v1/finance/daily-stats",
        "/api/v1/finance/gold-price-history",
    ] {
        assert_eq!(
            s.get(p, Some(&viewer)).await.status,
            200,
            "viewer reads {p}"
        );
        s.get(p, None).await.assert_error(401, "UNAUTHORIZED");
    }
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/v1/finance/operations".into(),
            Some(op("expense", 1.0, json!(0))),
        ),
        ("PATCH", path.clone(), Some(json!({"amount": 2}))),
        ("DELETE", path.clone(), None),
    ];
    for (m, p, body) in &writes {
        s.call(m, p, Some(&viewer), body.clone())
            .await
            .assert_error(403, "FORBIDDEN");
    }
    s.get(&path, Some(&other))
        .await
        .assert_error(404, "FINANCE_OPERATION_NOT_FOUND");
    for (m, p, body) in writes.iter().skip(1) {
        s.call(m, p, Some(&other), body.clone())
            .await
            .assert_error(404, "FINANCE_OPERATION_NOT_FOUND");
    }
    assert_eq!(
        s.get("/api/v1/finance/operations", Some(&other)).await.body["meta"]["total"],
        0
    );
    assert_eq!(
        s.get("/api/v1/finance/daily-stats", Some(&other))
            .await
            .body["data"],
        json!({})
    );
    for (m, p, body) in &writes {
        let r = s.call(m, p, Some(&operator), body.clone()).await;
        assert!(
            (200..300).contains(&r.status),
            "operator {m} {p}: {}",
            r.body
        );
    }
    s.stop().await;
}

// ---------------------------------------------------------------- list kit

#[derive(Debug, Clone)]
struct Row {
    id: String,
    kind: String,
    category: String,
    description: Option<String>,
    currency: String,
    date: i64,
    created_at: i64,
    project: Option<String>,
    bot: Option<String>,
}

const CATEGORIES: [&str; 6] = ["sale", "Proxy", "subscription", "SALE_bulk", "tax%", "vpn"];
const DESCRIPTIONS: [&str; 4] = ["Bought proxies", "monthly sub", "gold SALE", "misc_50%"];
const SEARCHES: [&str; 6] = ["sale", "PROX", "%", "_", "sub", "zz"];
const SORTS: [&str; 7] = [
    "date",
    "created_at",
    "updated_at",
    "type",
    "category",
    "currency",
    "project_id",
];

#[derive(Debug, Clone)]
struct Query {
    sort: Option<usize>,
    desc: Option<bool>,
    kind: Option<usize>,
    currency: Option<usize>,
    date_gte: Option<i64>,
    bot: Option<usize>,
    search: Option<usize>,
    limit: u32,
    page: u32,
}

fn query_strategy() -> impl Strategy<Value = Query> {
    (
        (
            proptest::option::of(0..SORTS.len()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(0..2usize),
            proptest::option::of(0..2usize),
            proptest::option::of(0..30i64),
        ),
        (
            proptest::option::of(0..3usize),
            proptest::option::of(0..SEARCHES.len()),
            1..20u32,
            1..5u32,
        ),
    )
        .prop_map(
            |((sort, desc, kind, currency, date_gte), (bot, search, limit, page))| Query {
                sort,
                desc,
                kind,
                currency,
                date_gte: date_gte.map(|d| d * DAY),
                bot,
                search,
                limit,
                page,
            },
        )
}

const KINDS: [&str; 2] = ["income", "expense"];
const CURRENCIES: [&str; 2] = ["USD", "gold"];

impl Query {
    fn to_query_string(&self, with_page: bool) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
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
        if let Some(k) = self.kind {
            q.push(format!("type={}", KINDS[k]));
        }
        if let Some(c) = self.currency {
            q.push(format!("currency_in={}", CURRENCIES[c]));
        }
        if let Some(d) = self.date_gte {
            q.push(format!("date_gte={d}"));
        }
        if let Some(b) = self.bot {
            q.push(format!("bot_id=bot-{b}"));
        }
        if let Some(s) = self.search {
            q.push(format!("q={}", enc(SEARCHES[s])));
        }
        q.join("&")
    }

    fn reference(&self, rows: &[Row]) -> Vec<String> {
        let mut hits: Vec<&Row> = rows
            .iter()
            .filter(|r| self.kind.is_none_or(|k| KINDS[k] == r.kind))
            .filter(|r| self.currency.is_none_or(|c| CURRENCIES[c] == r.currency))
            .filter(|r| self.date_gte.is_none_or(|d| r.date >= d))
            .filter(|r| {
                self.bot
                    .is_none_or(|b| r.bot.as_deref() == Some(format!("bot-{b}").as_str()))
            })
            .filter(|r| {
                self.search.is_none_or(|s| {
                    let n = SEARCHES[s].to_ascii_lowercase();
                    r.category.to_ascii_lowercase().contains(&n)
                        || r.description
                            .as_ref()
                            .is_some_and(|d| d.to_ascii_lowercase().contains(&n))
                })
            })
            .collect();
        let sort = self.sort.map(|s| SORTS[s]).unwrap_or("date");
        let desc = self.desc.unwrap_or(true);
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Key {
            I(i64),
            S(String),
        }
        let key = |r: &Row| -> Option<Key> {
            match sort {
                "date" => Some(Key::I(r.date)),
                "created_at" | "updated_at" => Some(Key::I(r.created_at)),
                "type" => Some(Key::S(r.kind.clone())),
                "category" => Some(Key::S(r.category.clone())),
                "currency" => Some(Key::S(r.currency.clone())),
                "project_id" => r.project.clone().map(Key::S),
                _ => unreachable!(),
            }
        };
        hits.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            let nulls = ka.is_none().cmp(&kb.is_none());
            let by_key = ka.cmp(&kb).then_with(|| a.id.cmp(&b.id));
            nulls.then(if desc { by_key.reverse() } else { by_key })
        });
        hits.into_iter().map(|r| r.id.clone()).collect()
    }
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn list_matches_reference(b: Backend) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (s, t, rows) = rt.block_on(async {
        let s = TestServer::start(b).await;
        let t = s.admin_token().await;
        let other = s.tenant_with_admin(&t, "fin-list-other").await;
        let mut rng = Lcg(9);
        let mut rows = vec![];
        for i in 0..90 {
            let mut body = json!({
                "type": KINDS[rng.next(2) as usize],
                "category": CATEGORIES[rng.next(6) as usize],
                "amount": rng.next(1000) as f64,
                "currency": CURRENCIES[rng.next(2) as usize],
                "date": (rng.next(30) as i64) * DAY + rng.next(3) as i64,
            });
            if rng.next(2) == 0 {
                body["description"] = json!(DESCRIPTIONS[rng.next(4) as usize]);
            }
            if rng.next(3) > 0 {
                body["project_id"] = json!(["wow_tbc", "wow_midnight"][rng.next(2) as usize]);
            }
            if rng.next(2) == 0 {
                body["bot_id"] = json!(format!("bot-{}", rng.next(3)));
            }
            if rng.next(10) == 0 {
                body["id"] = json!(format!("op-{i}"));
            }
            let d = create(&s, &t, body).await;
            rows.push(Row {
                id: d["id"].as_str().unwrap().to_string(),
                kind: d["type"].as_str().unwrap().to_string(),
                category: d["category"].as_str().unwrap().to_string(),
                description: d["description"].as_str().map(str::to_string),
                currency: d["currency"].as_str().unwrap().to_string(),
                date: ms(&d["date"]),
                created_at: ms(&d["created_at"]),
                project: d["project_id"].as_str().map(str::to_string),
                bot: d["bot_id"].as_str().map(str::to_string),
            });
            if i % 9 == 0 {
                create(&s, &other, json!({"type": "income", "category": "sale", "amount": 1, "currency": "USD", "date": 5, "bot_id": "bot-1"})).await;
            }
        }
        (s, t, rows)
    });
    let mut runner = TestRunner::new(PropConfig {
        cases: 60,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&query_strategy(), |q| {
            let expected = q.reference(&rows);
            let qs = q.to_query_string(true);
            let r = rt.block_on(s.get(&format!("/api/v1/finance/operations?{qs}"), Some(&t)));
            prop_assert_eq!(r.status, 200, "{}: {}", qs, r.body);
            let got: Vec<String> = r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].as_str().unwrap().to_string())
                .collect();
            let start = ((q.page - 1) * q.limit) as usize;
            let want: Vec<String> = expected
                .iter()
                .skip(start)
                .take(q.limit as usize)
                .cloned()
                .collect();
            prop_assert_eq!(&got, &want, "page of {}", qs);
            prop_assert_eq!(
                r.body["meta"]["total"].as_i64(),
                Some(expected.len() as i64),
                "total of {}",
                qs
            );
            if q.sort.map(|x| SORTS[x]) != Some("project_id") {
                let base = q.to_query_string(false);
                let mut walked = vec![];
                let mut cursor: Option<String> = None;
                for _ in 0..100 {
                    let qs = match &cursor {
                        Some(c) => format!("{base}&cursor={c}"),
                        None => base.clone(),
                    };
                    let r =
                        rt.block_on(s.get(&format!("/api/v1/finance/operations?{qs}"), Some(&t)));
                    if r.status != 200 {
                        return Err(TestCaseError::fail(format!("{qs}: {}", r.body)));
                    }
                    walked.extend(
                        r.body["data"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|b| b["id"].as_str().unwrap().to_string()),
                    );
                    match r.body["meta"]["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_string()),
                        None => break,
                    }
                }
                prop_assert_eq!(&walked, &expected, "cursor walk of {}", base);
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(s.stop());
}

mod list_kit {
    #[test]
    fn sqlite_finance_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Sqlite);
    }
    #[test]
    fn postgres_finance_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Postgres);
    }
}
