//! Workspace (notes, calendar, kanban) through real HTTP on both backends:
//! CRUD per kind, one case per validation rule, shallow-merge semantics,
//! extras round-trip, unknown kinds, no PUT, role gates and tenancy, and
//! the list kit against a reference.

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::{json, Value};

use crate::common::{Backend, Resp, TestServer};
use crate::records_checks::{created, extras_round_trip, q_finds, q_searches_exactly};

backend_tests!(
    crud_per_kind,
    every_validation_rule,
    merge_semantics_and_extras,
    unknown_kind_no_put_and_missing_items,
    role_gates_and_tenancy,
    q_searches_the_listed_columns,
    extras_round_trip_every_kind,
    list_columns_are_indexed,
);

const BASE: &str = "/api/v1/workspace";

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .timestamp_millis()
}

async fn setup(b: Backend) -> (TestServer, String, String, String) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@ws.test", "operator").await;
    let (_, viewer) = s.user(&admin, "viewer@ws.test", "viewer").await;
    (s, admin, operator, viewer)
}

async fn crud_per_kind(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let cases = [
        (
            "notes",
            json!({"title": "Farm plan", "content": "line 1\n\tline 2", "blocks": [{"type": "p", "text": "x"}],
                   "tags": ["gold", "tbc"], "bot_id": null, "project_id": "wow_tbc", "is_pinned": true, "created_by": "me"}),
            json!({"is_pinned": false, "tags": []}),
            "created_at",
        ),
        (
            "calendar",
            json!({"title": "Maintenance", "description": "Tuesday", "date": "2026-03-31", "linked_note_id": "n-1"}),
            json!({"date": "2026-04-01"}),
            "date",
        ),
        (
            "kanban",
            json!({"title": "Level 70", "description": "grind", "status": "in_progress", "due_date": "2026-12-24", "order": 3}),
            json!({"status": "done", "order": -1}),
            "order",
        ),
    ];
    for (kind, body, patch, _) in cases {
        let c = created(
            &s.post(&format!("{BASE}/{kind}"), Some(&op), body.clone())
                .await,
        );
        let id = c["id"].as_str().unwrap().to_string();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        for (k, v) in body.as_object().unwrap() {
            assert_eq!(&c[k], v, "{kind}.{k}: {c}");
        }
        assert!(ms(&c["created_at"]) > 0);
        let path = format!("{BASE}/{kind}/{id}");
        assert_eq!(s.get(&path, Some(&op)).await.body["data"], c);
        let p = s.call("PATCH", &path, Some(&op), Some(patch.clone())).await;
        assert_eq!(p.status, 200, "{}", p.body);
        for (k, v) in patch.as_object().unwrap() {
            assert_eq!(&p.body["data"][k], v, "{kind}: patched {k}");
        }
        let list = s.get(&format!("{BASE}/{kind}"), Some(&op)).await;
        assert_eq!(list.body["meta"]["total"], json!(1), "{}", list.body);
        let mine = created(
            &s.post(
                &format!("{BASE}/{kind}"),
                Some(&op),
                json!({"id": format!("{kind}-1"), "title": "t"}),
            )
            .await,
        );
        assert_eq!(mine["id"], json!(format!("{kind}-1")));
        s.post(
            &format!("{BASE}/{kind}"),
            Some(&op),
            json!({"id": format!("{kind}-1")}),
        )
        .await
        .assert_error(409, "CONFLICT");
        let d = s.call("DELETE", &path, Some(&op), None).await;
        assert_eq!(d.body["data"], json!({"id": id, "deleted": true}));
        s.get(&path, Some(&op))
            .await
            .assert_error(404, "WORKSPACE_ENTITY_NOT_FOUND");
    }
    // Kanban defaults to `todo`.
    let t = created(
        &s.post(&format!("{BASE}/kanban"), Some(&op), json!({"title": "x"}))
            .await,
    );
    assert_eq!(t["status"], json!("todo"));
    assert_eq!(t["due_date"], Value::Null);
    s.stop().await;
}

async fn every_validation_rule(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("notes", json!("text"), "body"),
        ("notes", json!({}), "body"),
        ("notes", json!({"id": "a b"}), "id"),
        ("notes", json!({"title": long(501)}), "title"),
        ("notes", json!({"title": "a\nb"}), "title"),
        ("notes", json!({"content": "nul\u{0}"}), "content"),
        ("notes", json!({"content": long(200_001)}), "content"),
        ("notes", json!({"blocks": "text"}), "blocks"),
        ("notes", json!({"tags": "gold"}), "tags"),
        ("notes", json!({"tags": vec!["t"; 101]}), "tags"),
        ("notes", json!({"tags": [long(101)]}), "tags[0]"),
        ("notes", json!({"project_id": "wow_classic"}), "project_id"),
        ("notes", json!({"is_pinned": "yes"}), "is_pinned"),
        ("notes", json!({"bot_id": 7}), "bot_id"),
        ("calendar", json!({"date": "2026-02-30"}), "date"),
        ("calendar", json!({"date": "2026-2-3"}), "date"),
        ("calendar", json!({"date": "2026-03-31T00:00:00Z"}), "date"),
        (
            "calendar",
            json!({"description": long(10_001)}),
            "description",
        ),
        (
            "calendar",
            json!({"linked_note_id": ["n"]}),
            "linked_note_id",
        ),
        ("kanban", json!({"status": "blocked"}), "status"),
        ("kanban", json!({"status": null}), "status"),
        ("kanban", json!({"due_date": "24.12.2026"}), "due_date"),
        ("kanban", json!({"order": 1.5}), "order"),
        ("kanban", json!({"order": 2_000_000_000i64}), "order"),
        ("notes", json!({"created_by": long(201)}), "created_by"),
        ("notes", json!({"created_by": ["me"]}), "created_by"),
        ("calendar", json!({"title": long(501)}), "title"),
        ("calendar", json!({"title": "a\u{7}b"}), "title"),
        ("kanban", json!({"title": long(501)}), "title"),
        ("kanban", json!({"title": 3}), "title"),
        (
            "kanban",
            json!({"description": long(10_001)}),
            "description",
        ),
        ("kanban", json!({"description": "esc\u{1b}"}), "description"),
    ];
    for (kind, body, field) in cases {
        let r = s
            .post(&format!("{BASE}/{kind}"), Some(&op), body.clone())
            .await;
        r.assert_error(400, "WORKSPACE_INVALID_BODY");
        assert!(
            r.body["error"]["details"]["fields"].get(field).is_some(),
            "{kind} {}: expected field {field}, got {}",
            body.to_string().chars().take(80).collect::<String>(),
            r.body
        );
    }
    let c = created(
        &s.post(&format!("{BASE}/kanban"), Some(&op), json!({"title": "t"}))
            .await,
    );
    let path = format!("{BASE}/kanban/{}", c["id"].as_str().unwrap());
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&op),
            Some(json!({"status": "nope", "title": "changed"})),
        )
        .await;
    r.assert_error(400, "WORKSPACE_INVALID_BODY");
    assert_eq!(s.get(&path, Some(&op)).await.body["data"], c);
    for (q, field) in [
        ("sort=port", "sort"),
        ("status=blocked", "status"),
        ("x=1", "x"),
    ] {
        let r = s.get(&format!("{BASE}/kanban?{q}"), Some(&op)).await;
        r.assert_error(400, "WORKSPACE_INVALID_LIST_QUERY");
        assert!(
            r.body["error"]["details"]["fields"].get(field).is_some(),
            "{}",
            r.body
        );
    }
    s.stop().await;
}

async fn merge_semantics_and_extras(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let extras =
        json!({"color": "#ff0", "layout": {"w": 2, "h": [1, 2]}, "archived": false, "n": null});
    let mut body = extras.clone();
    body["title"] = json!("T");
    body["content"] = json!("C");
    body["updated_at"] = json!(5);
    let c = created(&s.post(&format!("{BASE}/notes"), Some(&op), body).await);
    for (k, v) in extras.as_object().unwrap() {
        assert_eq!(&c[k], v, "extra {k}");
    }
    let path = format!("{BASE}/notes/{}", c["id"].as_str().unwrap());
    let p = s
        .call(
            "PATCH",
            &path,
            Some(&op),
            Some(json!({"layout": {"w": 3}, "content": null, "new": [true]})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let d = &p.body["data"];
    assert_eq!(d["title"], json!("T"));
    assert_eq!(d["content"], Value::Null);
    assert_eq!(d["layout"], json!({"w": 3}));
    assert_eq!(d["color"], json!("#ff0"));
    assert_eq!(d["new"], json!([true]));
    assert_eq!(d["created_at"], c["created_at"]);
    assert_eq!(s.get(&path, Some(&op)).await.body["data"], *d);
    s.stop().await;
}

async fn unknown_kind_no_put_and_missing_items(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    for (method, path, body) in [
        ("GET", format!("{BASE}/todos"), None),
        ("POST", format!("{BASE}/todos"), Some(json!({"a": 1}))),
        ("GET", format!("{BASE}/todos/x"), None),
        ("PATCH", format!("{BASE}/todos/x"), Some(json!({"a": 1}))),
        ("DELETE", format!("{BASE}/todos/x"), None),
    ] {
        s.call(method, &path, Some(&op), body)
            .await
            .assert_error(400, "WORKSPACE_INVALID_KIND");
    }
    let c = created(
        &s.post(&format!("{BASE}/notes"), Some(&op), json!({"title": "t"}))
            .await,
    );
    s.call(
        "PUT",
        &format!("{BASE}/notes/{}", c["id"].as_str().unwrap()),
        Some(&op),
        Some(json!({"title": "u"})),
    )
    .await
    .assert_error(405, "METHOD_NOT_ALLOWED");
    for id in ["missing", "a%2Fb", "a%20b"] {
        s.get(&format!("{BASE}/calendar/{id}"), Some(&op))
            .await
            .assert_error(404, "WORKSPACE_ENTITY_NOT_FOUND");
    }
    s.stop().await;
}

async fn role_gates_and_tenancy(b: Backend) {
    let (s, admin, op, viewer) = setup(b).await;
    let c = created(
        &s.post(
            &format!("{BASE}/calendar"),
            Some(&op),
            json!({"title": "A"}),
        )
        .await,
    );
    let path = format!("{BASE}/calendar/{}", c["id"].as_str().unwrap());
    assert_eq!(s.get(&path, Some(&viewer)).await.status, 200);
    assert_eq!(
        s.get(&format!("{BASE}/calendar"), Some(&viewer))
            .await
            .status,
        200
    );
    s.post(
        &format!("{BASE}/calendar"),
        Some(&viewer),
        json!({"title": "B"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    s.call("PATCH", &path, Some(&viewer), Some(json!({"title": "B"})))
        .await
        .assert_error(403, "FORBIDDEN");
    s.call("DELETE", &path, Some(&viewer), None)
        .await
        .assert_error(403, "FORBIDDEN");
    s.get(&path, None).await.assert_error(401, "UNAUTHORIZED");
    let other = s.tenant_with_admin(&admin, "ws-other").await;
    assert_eq!(
        s.get(&format!("{BASE}/calendar"), Some(&other)).await.body["meta"]["total"],
        json!(0)
    );
    s.get(&path, Some(&other))
        .await
        .assert_error(404, "WORKSPACE_ENTITY_NOT_FOUND");
    s.call("PATCH", &path, Some(&other), Some(json!({"title": "B"})))
        .await
        .assert_error(404, "WORKSPACE_ENTITY_NOT_FOUND");
    s.call("DELETE", &path, Some(&other), None)
        .await
        .assert_error(404, "WORKSPACE_ENTITY_NOT_FOUND");
    assert_eq!(
        s.get(&path, Some(&op)).await.body["data"]["title"],
        json!("A")
    );
    s.stop().await;
}

/// `q` searches exactly the columns the issue lists per kind — notes:
/// title, content; calendar and kanban: title, description —
/// case-insensitively, and no other column or extra.
async fn q_searches_the_listed_columns(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            "notes",
            &["title", "content"],
            &["created_by", "bot_id", "label"],
        ),
        (
            "calendar",
            &["title", "description"],
            &["linked_note_id", "label"],
        ),
        ("kanban", &["title", "description"], &["label"]),
    ];
    for (kind, searched, unsearched) in cases {
        let url = format!("{BASE}/{kind}");
        q_searches_exactly(&s, &op, &url, json!({"zz": 0}), searched, unsearched).await;
    }
    // Nor a note's tags, nor a task's due date.
    let url = format!("{BASE}/notes");
    created(&s.post(&url, Some(&op), json!({"tags": ["TaGxy"]})).await);
    q_finds(&s, &op, &url, "tagxy", &[]).await;
    let url = format!("{BASE}/kanban");
    created(
        &s.post(&url, Some(&op), json!({"due_date": "2031-07-09"}))
            .await,
    );
    q_finds(&s, &op, &url, "2031-07", &[]).await;
    s.stop().await;
}

/// Passthrough extras round-trip for every kind: create, read, list, a
/// shallow-merging PATCH, read again; more than 64 KiB of them is refused
/// on create and when a patch would grow them past it.
async fn extras_round_trip_every_kind(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let typed = [
        ("notes", json!({"title": "N"})),
        ("calendar", json!({"date": "2026-05-01"})),
        ("kanban", json!({"status": "done"})),
    ];
    for (kind, typed) in typed {
        extras_round_trip(
            &s,
            &op,
            &format!("{BASE}/{kind}"),
            typed,
            "WORKSPACE_INVALID_BODY",
        )
        .await;
    }
    s.stop().await;
}

const SORTS: &[&str] = &["created_at", "title", "status", "due_date", "order"];
const STATUSES: &[&str] = &["todo", "in_progress", "done"];
const NEEDLES: &[&str] = &["grind", "RAID", "_x", "%", "none-such"];
const TITLES: &[&str] = &["Grind mobs", "Raid prep", "raid_x", "100% quest", "Sell"];

/// Lists filter and sort on indexed columns: every sortable or filterable
/// column of each kind (as the store declares it) has its index.
async fn list_columns_are_indexed(b: Backend) {
    use control_server::domains::workspace::store;
    let (s, _admin, _op, _) = setup(b).await;
    for (table, spec) in [
        ("workspace_notes", &store::NOTE_LIST),
        ("workspace_calendar_events", &store::CALENDAR_LIST),
        ("workspace_kanban_tasks", &store::KANBAN_LIST),
    ] {
        crate::resources::assert_list_columns_indexed(&s, b, table, spec, &[]).await;
    }
    s.stop().await;
}

// ---------------------------------------------------------------- list kit

#[derive(Debug, Clone)]
struct Task {
    id: String,
    created_at: i64,
    title: String,
    description: Option<String>,
    status: String,
    due_date: Option<String>,
    order: Option<i64>,
}

#[derive(Debug, Clone)]
struct Query {
    sort: Option<usize>,
    desc: Option<bool>,
    status_in: Option<Vec<usize>>,
    order_gte: Option<i64>,
    due: Option<usize>,
    search: Option<usize>,
    limit: u32,
    page: u32,
}

fn query_strategy() -> impl Strategy<Value = Query> {
    (
        proptest::option::of(0..SORTS.len()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(0..STATUSES.len(), 1..3)),
        proptest::option::of(-5..15i64),
        proptest::option::of(0..4usize),
        proptest::option::of(0..NEEDLES.len()),
        1..15u32,
        1..5u32,
    )
        .prop_map(
            |(sort, desc, status_in, order_gte, due, search, limit, page)| Query {
                sort,
                desc,
                status_in,
                order_gte,
                due,
                search,
                limit,
                page,
            },
        )
}

fn due_date(i: usize) -> String {
    format!("2026-0{}-1{}", 1 + i % 3, i % 2)
}

impl Query {
    fn to_query_string(&self, with_page: bool) -> String {
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
        if let Some(st) = &self.status_in {
            let v: Vec<&str> = st.iter().map(|i| STATUSES[*i]).collect();
            q.push(format!("status_in={}", v.join(",")));
        }
        if let Some(o) = self.order_gte {
            q.push(format!("order_gte={o}"));
        }
        if let Some(d) = self.due {
            q.push(format!("due_date={}", due_date(d)));
        }
        if let Some(s) = self.search {
            let e: String = form_urlencoded::byte_serialize(NEEDLES[s].as_bytes()).collect();
            q.push(format!("q={e}"));
        }
        q.join("&")
    }

    fn reference(&self, rows: &[Task]) -> Vec<String> {
        let mut hits: Vec<&Task> = rows
            .iter()
            .filter(|r| {
                self.status_in
                    .as_ref()
                    .is_none_or(|st| st.iter().any(|i| STATUSES[*i] == r.status))
            })
            .filter(|r| {
                self.order_gte
                    .is_none_or(|o| r.order.is_some_and(|x| x >= o))
            })
            .filter(|r| {
                self.due
                    .is_none_or(|d| r.due_date.as_deref() == Some(due_date(d).as_str()))
            })
            .filter(|r| {
                self.search.is_none_or(|s| {
                    let n = NEEDLES[s].to_ascii_lowercase();
                    r.title.to_ascii_lowercase().contains(&n)
                        || r.description
                            .as_deref()
                            .is_some_and(|d| d.to_ascii_lowercase().contains(&n))
                })
            })
            .collect();
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Key {
            I(i64),
            S(String),
        }
        let sort = self.sort.map(|s| SORTS[s]).unwrap_or("created_at");
        let key = |r: &Task| -> Option<Key> {
            match sort {
                "created_at" => Some(Key::I(r.created_at)),
                "title" => Some(Key::S(r.title.clone())),
                "status" => Some(Key::S(r.status.clone())),
                "due_date" => r.due_date.clone().map(Key::S),
                "order" => r.order.map(Key::I),
                _ => unreachable!(),
            }
        };
        let desc = self.desc.unwrap_or(true);
        hits.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            let nulls = ka.is_none().cmp(&kb.is_none());
            let by_key = ka.cmp(&kb).then_with(|| a.id.cmp(&b.id));
            nulls.then(if desc { by_key.reverse() } else { by_key })
        });
        hits.into_iter().map(|r| r.id.clone()).collect()
    }
}

fn list_matches_reference(b: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, op, rows) = rt.block_on(async {
        let (s, admin, op, _) = setup(b).await;
        let other = s.tenant_with_admin(&admin, "ws-noise").await;
        for _ in 0..8 {
            created(
                &s.post(
                    &format!("{BASE}/kanban"),
                    Some(&other),
                    json!({"title": "Grind noise", "order": 1}),
                )
                .await,
            );
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut rows = vec![];
        for _ in 0..80 {
            let mut body = json!({
                "title": TITLES[next(TITLES.len() as u64) as usize],
                "status": STATUSES[next(3) as usize],
            });
            if next(3) > 0 {
                body["due_date"] = json!(due_date(next(4) as usize));
            }
            if next(4) > 0 {
                body["order"] = json!(next(20) as i64 - 5);
            }
            if next(2) > 0 {
                body["description"] = json!(["long GRIND", "misc", "x_y"][next(3) as usize]);
            }
            let c = created(&s.post(&format!("{BASE}/kanban"), Some(&op), body).await);
            rows.push(Task {
                id: c["id"].as_str().unwrap().into(),
                created_at: ms(&c["created_at"]),
                title: c["title"].as_str().unwrap().into(),
                description: c["description"].as_str().map(str::to_string),
                status: c["status"].as_str().unwrap().into(),
                due_date: c["due_date"].as_str().map(str::to_string),
                order: c["order"].as_i64(),
            });
        }
        (s, op, rows)
    });
    let ids = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut runner = TestRunner::new(PropConfig {
        cases: 60,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&query_strategy(), |q| {
            let expected = q.reference(&rows);
            let qs = q.to_query_string(true);
            let r = rt.block_on(s.get(&format!("{BASE}/kanban?{qs}"), Some(&op)));
            prop_assert_eq!(r.status, 200, "{}: {}", qs, r.body);
            let start = ((q.page - 1) * q.limit) as usize;
            let want: Vec<String> = expected
                .iter()
                .skip(start)
                .take(q.limit as usize)
                .cloned()
                .collect();
            prop_assert_eq!(ids(&r), want, "page of {}", qs);
            prop_assert_eq!(
                r.body["meta"]["total"].as_i64(),
                Some(expected.len() as i64),
                "total of {}",
                qs
            );
            let sort = q.sort.map(|i| SORTS[i]).unwrap_or("created_at");
            if ["created_at", "status"].contains(&sort) {
                let base = q.to_query_string(false);
                let mut walked = vec![];
                let mut cursor: Option<String> = None;
                for _ in 0..100 {
                    let url = match &cursor {
                        Some(c) => format!("{BASE}/kanban?{base}&cursor={c}"),
                        None => format!("{BASE}/kanban?{base}"),
                    };
                    let r = rt.block_on(s.get(&url, Some(&op)));
                    prop_assert_eq!(r.status, 200, "{}: {}", url, r.body);
                    walked.extend(ids(&r));
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
    fn sqlite_kanban_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Sqlite);
    }
    #[test]
    fn postgres_kanban_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Postgres);
    }
}
