//! Bots (issue #16): CRUD, every validation rule, every lifecycle path of
//! inventory §2.6 with its log and archive, roles and tenants, and the list
//! kit against a reference — on SQLite and PostgreSQL, through real HTTP.

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::common::{Backend, Resp, TestServer};

backend_tests!(
    crud_round_trip,
    every_validation_rule,
    transition_from_every_status,
    ban_then_unban_restores_every_status,
    unban_when_not_banned,
    log_and_archive_are_readable,
    roles_and_tenants,
);

const STATUSES: [&str; 6] = [
    "offline",
    "prepare",
    "leveling",
    "profession",
    "farming",
    "banned",
];

fn stage(status: &str) -> Option<&str> {
    match status {
        "offline" | "banned" => None,
        s => Some(s),
    }
}

async fn create(s: &TestServer, token: &str, body: Value) -> Value {
    let r = s.post("/api/v1/bots", Some(token), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"].clone()
}

fn bot_body(name: &str, status: &str) -> Value {
    json!({"name": name, "project_id": "wow_tbc", "status": status})
}

async fn call(s: &TestServer, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
    s.call(method, path, Some(token), body).await
}

async fn crud_round_trip(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let bot = create(
        &s,
        &t,
        json!({
            "name": "Bot One", "project_id": "wow_midnight", "status": "leveling",
            "character": {"name": "Thrall", "level": 42, "class": "shaman", "race": "orc",
                          "server": "Firemaw", "faction": "horde"},
            "farm": {"all_farmed_gold": 1200.5, "all_earned_gold": 99},
            "monitor": {"total_runtime_hours": 17},
            "created_at": 5, "ban_details": {"x": 1}
        }),
    )
    .await;
    let id = bot["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(bot["character"]["level"], 42);
    assert_eq!(bot["character"]["faction"], "horde");
    assert_eq!(bot["lifecycle"]["current_stage"], "prepare");
    assert_eq!(bot["lifecycle"]["stage_transitions"], json!([]));
    assert_eq!(bot["farm"]["all_farmed_gold"], 1200.5, "extras kept: {bot}");
    assert!(
        bot.get("ban_details").is_none(),
        "server-managed keys ignored"
    );
    assert!(bot["created_at"].as_str().unwrap().ends_with('Z'));
    let got = s.get(&format!("/api/v1/bots/{id}"), Some(&t)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["data"], bot);

    // Shallow merge: given fields replace, the rest stays; extras merge.
    let p = call(
        &s,
        "PATCH",
        &format!("/api/v1/bots/{id}"),
        &t,
        Some(json!({"name": "Renamed", "character": {"name": "Jaina"}, "notes": "hi", "id": "ignored"})),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let d = &p.body["data"];
    assert_eq!(d["name"], "Renamed");
    assert_eq!(d["status"], "leveling");
    assert_eq!(d["character"]["name"], "Jaina");
    assert_eq!(
        d["character"]["level"],
        Value::Null,
        "character replaced whole"
    );
    assert_eq!(d["farm"]["all_earned_gold"], 99);
    assert_eq!(d["notes"], "hi");
    assert_eq!(d["id"], id.as_str());
    let p = call(
        &s,
        "PATCH",
        &format!("/api/v1/bots/{id}"),
        &t,
        Some(json!({"character": null, "lifecycle": {"current_stage": "farming"}})),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["data"]["character"]["name"], Value::Null);
    assert_eq!(p.body["data"]["lifecycle"]["current_stage"], "farming");

    // A client-chosen id.
    let own = create(
        &s,
        &t,
        json!({"id": "bot-own_1", "name": "Own", "project_id": "wow_tbc", "status": "offline"}),
    )
    .await;
    assert_eq!(own["id"], "bot-own_1");
    let dup = s
        .post(
            "/api/v1/bots",
            Some(&t),
            json!({"id": "bot-own_1", "name": "Own", "project_id": "wow_tbc", "status": "offline"}),
        )
        .await;
    dup.assert_error(409, "CONFLICT");

    let list = s.get("/api/v1/bots?sort=name&order=asc", Some(&t)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["meta"]["total"], 2);
    assert_eq!(list.body["data"][0]["name"], "Own");

    let del = call(&s, "DELETE", &format!("/api/v1/bots/{id}"), &t, None).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["data"], json!({"id": id, "deleted": true}));
    s.get(&format!("/api/v1/bots/{id}"), Some(&t))
        .await
        .assert_error(404, "BOT_NOT_FOUND");
    call(&s, "DELETE", &format!("/api/v1/bots/{id}"), &t, None)
        .await
        .assert_error(404, "BOT_NOT_FOUND");
    // A NUL in the path is refused before the domain (PostgreSQL cannot bind it).
    assert_eq!(s.get("/api/v1/bots/a%00b", Some(&t)).await.status, 404);
    s.stop().await;
}

async fn every_validation_rule(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let base = bot_body("Valid", "offline");
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
        (without("name"), "name"),
        (with("name", json!("")), "name"),
        (with("name", json!("x".repeat(201))), "name"),
        (with("name", json!("a\u{0}b")), "name"),
        (with("name", json!("\u{202E}evil")), "name"),
        (with("name", json!(5)), "name"),
        (without("project_id"), "project_id"),
        (with("project_id", json!("wow_classic")), "project_id"),
        (without("status"), "status"),
        (with("status", json!("sleeping")), "status"),
        (with("id", json!("has space")), "id"),
        (with("id", json!("x".repeat(101))), "id"),
        (with("id", json!("archive")), "id"),
        (with("character", json!({"level": 0})), "character.level"),
        (with("character", json!({"level": 101})), "character.level"),
        (
            with("character", json!({"name": "x".repeat(101)})),
            "character.name",
        ),
        (
            with("character", json!({"class": "a\nb"})),
            "character.class",
        ),
        (
            with("character", json!({"race": "x".repeat(101)})),
            "character.race",
        ),
        (
            with("character", json!({"server": "\u{7}"})),
            "character.server",
        ),
        (
            with("character", json!({"faction": "undead"})),
            "character.faction",
        ),
        (with("character", json!({"guild": "x"})), "character"),
        (
            with("lifecycle", json!({"current_stage": "offline"})),
            "lifecycle.current_stage",
        ),
        (
            with("lifecycle", json!({"stage_transitions": []})),
            "lifecycle",
        ),
        (with("lifecycle", Value::Null), "lifecycle"),
        (with("blob", json!("x".repeat(70_000))), "body"),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let r = s.post("/api/v1/bots", Some(&t), body.clone()).await;
        r.assert_error(400, "BOTS_INVALID_MUTATION_BODY");
        let fields = r.body["error"]["details"]["fields"].as_object().unwrap();
        assert!(
            fields.keys().any(|k| k.starts_with(field)),
            "{field} not named for {}: {}",
            body.to_string().chars().take(80).collect::<String>(),
            r.body
        );
    }
    let bot = create(&s, &t, base.clone()).await;
    let id = bot["id"].as_str().unwrap();
    let path = format!("/api/v1/bots/{id}");
    for (body, field) in [
        (json!({}), "body"),
        (json!({"name": null}), "name"),
        (json!({"project_id": null}), "project_id"),
        (json!({"status": null}), "status"),
        (json!({"character": {"level": 500}}), "character.level"),
    ] {
        let r = call(&s, "PATCH", &path, &t, Some(body.clone())).await;
        r.assert_error(400, "BOTS_INVALID_MUTATION_BODY");
        assert!(
            r.body["error"]["details"]["fields"].get(field).is_some(),
            "{field}: {}",
            r.body
        );
    }
    // Bodies of the lifecycle endpoints.
    let tr = format!("{path}/lifecycle/transition");
    for body in [
        json!({}),
        json!({"status": "nope"}),
        json!({"status": "farming", "x": 1}),
    ] {
        call(&s, "POST", &tr, &t, Some(body))
            .await
            .assert_error(400, "BOTS_TRANSITION_VALIDATION_FAILED");
    }
    let r = call(&s, "POST", &tr, &t, Some(json!({"status": "banned"}))).await;
    r.assert_error(400, "BOTS_TRANSITION_VALIDATION_FAILED");
    assert_eq!(
        r.body["error"]["message"],
        "Use /lifecycle/ban endpoint for ban transitions"
    );
    let ban = format!("{path}/lifecycle/ban");
    let good = json!({"ban_date": "01.02.2026", "ban_reason": "r", "ban_mechanism": "ip_ban"});
    let ban_with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (ban_with("ban_date", json!("2026-02-01")), "ban_date"),
        (ban_with("ban_date", json!("1.2.2026")), "ban_date"),
        (ban_with("ban_date", json!("32.01.2026")), "ban_date"),
        (ban_with("ban_date", json!("01.13.2026")), "ban_date"),
        (ban_with("ban_reason", json!("")), "ban_reason"),
        (ban_with("ban_reason", json!("a\u{0}b")), "ban_reason"),
        (
            ban_with("ban_reason", json!("x".repeat(1001))),
            "ban_reason",
        ),
        (ban_with("ban_mechanism", json!("dns_ban")), "ban_mechanism"),
        (ban_with("extra", json!(1)), "extra"),
        (
            json!({"ban_reason": "r", "ban_mechanism": "ip_ban"}),
            "body",
        ),
    ] {
        let r = call(&s, "POST", &ban, &t, Some(body.clone())).await;
        r.assert_error(400, "BOTS_INVALID_BAN_BODY");
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
    // Nothing of that changed the bot.
    let after = s.get(&path, Some(&t)).await.body["data"].clone();
    assert_eq!(after, bot);
    // List query errors carry the bots code.
    for q in [
        "sort=nope",
        "limit=0",
        "status=sleeping",
        "bogus=1",
        "character_level_gte=x",
    ] {
        s.get(&format!("/api/v1/bots?{q}"), Some(&t))
            .await
            .assert_error(400, "BOTS_INVALID_LIST_QUERY");
    }
    // A NUL in the query is refused (never reaches PostgreSQL).
    for q in ["q=a%00b", "name=%00"] {
        assert_eq!(
            s.get(&format!("/api/v1/bots?{q}"), Some(&t)).await.status,
            400
        );
    }
    s.stop().await;
}

/// A bot in `status`, created as offline and moved there (banned via ban).
async fn bot_in(s: &TestServer, t: &str, status: &str) -> String {
    let bot = create(s, t, bot_body(&format!("bot-{status}"), status)).await;
    bot["id"].as_str().unwrap().to_string()
}

async fn transition_from_every_status(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    for from in STATUSES {
        for to in &STATUSES[..5] {
            let id = bot_in(&s, &t, from).await;
            let before = s.get(&format!("/api/v1/bots/{id}"), Some(&t)).await.body["data"].clone();
            let r = call(
                &s,
                "POST",
                &format!("/api/v1/bots/{id}/lifecycle/transition"),
                &t,
                Some(json!({"status": to})),
            )
            .await;
            assert_eq!(r.status, 200, "{from}->{to}: {}", r.body);
            let d = &r.body["data"];
            let log = s
                .get(&format!("/api/v1/bots/{id}/lifecycle/log"), Some(&t))
                .await;
            if from == *to {
                assert_eq!(*d, before, "same status returns the bot unchanged");
                assert_eq!(log.body["data"], json!([]));
                continue;
            }
            let next_stage = stage(to).unwrap_or("prepare");
            assert_eq!(d["status"], *to);
            assert_eq!(d["lifecycle"]["current_stage"], next_stage);
            assert_eq!(d["lifecycle"]["previous_status"], from);
            let tr = d["lifecycle"]["stage_transitions"].as_array().unwrap();
            assert_eq!(tr.len(), 1, "{from}->{to}");
            assert_eq!(tr[0]["from"], stage(from).unwrap_or("create"));
            assert_eq!(tr[0]["to"], next_stage);
            let ts = s
                .get(
                    &format!("/api/v1/bots/{id}/lifecycle/transitions"),
                    Some(&t),
                )
                .await;
            assert_eq!(ts.body["data"], json!(tr));
            let lc = s
                .get(&format!("/api/v1/bots/{id}/lifecycle"), Some(&t))
                .await;
            assert_eq!(lc.body["data"], d["lifecycle"]);
            let entries = log.body["data"].as_array().unwrap();
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0]["type"], "status_change");
            assert_eq!(
                entries[0]["message"],
                format!("Status changed from {from} to {to}")
            );
            assert_eq!(entries[0]["details"], json!({"from": from, "to": to}));
            let banned = s
                .get(&format!("/api/v1/bots/{id}/lifecycle/is-banned"), Some(&t))
                .await;
            assert_eq!(banned.body["data"], json!({"banned": false}));
        }
    }
    call(
        &s,
        "POST",
        "/api/v1/bots/missing/lifecycle/transition",
        &t,
        Some(json!({"status": "farming"})),
    )
    .await
    .assert_error(404, "BOT_NOT_FOUND");
    s.stop().await;
}

async fn ban_then_unban_restores_every_status(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    for from in STATUSES {
        let id = bot_in(&s, &t, from).await;
        let r = call(
            &s,
            "POST",
            &format!("/api/v1/bots/{id}/lifecycle/ban"),
            &t,
            Some(json!({"ban_date": "15.03.2026", "ban_reason": "caught", "ban_mechanism": "hardware_ban", "ban_timestamp": 1})),
        )
        .await;
        assert_eq!(r.status, 200, "{from}: {}", r.body);
        let d = &r.body["data"];
        assert_eq!(d["status"], "banned");
        assert_eq!(d["lifecycle"]["current_stage"], "banned");
        assert_eq!(d["lifecycle"]["previous_status"], from);
        let bd = &d["lifecycle"]["ban_details"];
        assert_eq!(
            bd["ban_timestamp"], "2026-03-15T00:00:00.000Z",
            "midnight UTC"
        );
        assert_eq!(bd["ban_reason"], "caught");
        assert_eq!(bd["unbanned_at"], Value::Null);
        let tr = d["lifecycle"]["stage_transitions"].as_array().unwrap();
        match stage(from) {
            Some(st) => assert_eq!(
                (tr.len(), &tr[0]["from"], &tr[0]["to"]),
                (1, &json!(st), &json!(st))
            ),
            None => assert!(tr.is_empty(), "{from}: {tr:?}"),
        }
        let banned = s
            .get(&format!("/api/v1/bots/{id}/lifecycle/is-banned"), Some(&t))
            .await;
        assert_eq!(banned.body["data"], json!({"banned": true}));

        let u = call(
            &s,
            "POST",
            &format!("/api/v1/bots/{id}/lifecycle/unban"),
            &t,
            None,
        )
        .await;
        assert_eq!(u.status, 200, "{}", u.body);
        let d = &u.body["data"];
        // Banning a banned bot records previous_status banned: it restores offline.
        let restored = if from == "banned" { "offline" } else { from };
        assert_eq!(d["status"], restored, "from {from}");
        assert_eq!(
            d["lifecycle"]["current_stage"],
            stage(restored).unwrap_or("prepare")
        );
        assert!(d["lifecycle"]["ban_details"]["unbanned_at"].is_string());
        assert_eq!(d["lifecycle"]["ban_details"]["ban_reason"], "caught");
        let log = s
            .get(
                &format!("/api/v1/bots/{id}/lifecycle/log?sort=timestamp&order=asc"),
                Some(&t),
            )
            .await;
        let types: Vec<&str> = log.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["ban", "unban"]);
        assert_eq!(
            log.body["data"][1]["message"],
            format!("Bot unbanned and restored to {restored}")
        );
        assert_eq!(
            log.body["data"][1]["details"],
            json!({"restored_status": restored})
        );
        // Already unbanned: nothing to unban.
        call(
            &s,
            "POST",
            &format!("/api/v1/bots/{id}/lifecycle/unban"),
            &t,
            None,
        )
        .await
        .assert_error(409, "BOTS_UNBAN_VALIDATION_FAILED");
    }
    // A 31st of February is no date: the original falls back to now.
    let id = bot_in(&s, &t, "farming").await;
    let r = call(
        &s,
        "POST",
        &format!("/api/v1/bots/{id}/lifecycle/ban"),
        &t,
        Some(json!({"ban_date": "31.02.2026", "ban_reason": "r", "ban_mechanism": "other"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ts = r.body["data"]["lifecycle"]["ban_details"]["ban_timestamp"]
        .as_str()
        .unwrap();
    let ms = chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis();
    assert!(
        (chrono::Utc::now().timestamp_millis() - ms).abs() < 60_000,
        "{ts}"
    );
    s.stop().await;
}

async fn unban_when_not_banned(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    for status in STATUSES {
        // Created as `banned` without a ban: no ban details, nothing to lift.
        let id = bot_in(&s, &t, status).await;
        let r = call(
            &s,
            "POST",
            &format!("/api/v1/bots/{id}/lifecycle/unban"),
            &t,
            None,
        )
        .await;
        r.assert_error(409, "BOTS_UNBAN_VALIDATION_FAILED");
        assert_eq!(r.body["error"]["message"], "Bot is not banned");
    }
    call(&s, "POST", "/api/v1/bots/missing/lifecycle/unban", &t, None)
        .await
        .assert_error(404, "BOT_NOT_FOUND");
    s.stop().await;
}

async fn log_and_archive_are_readable(b: Backend) {
    let s = TestServer::start(b).await;
    let t = s.admin_token().await;
    let bot = create(
        &s,
        &t,
        json!({"name": "Farmer", "project_id": "wow_midnight", "status": "offline",
               "character": {"name": "Sylvanas", "level": 60, "faction": "horde"},
               "farm": {"all_farmed_gold": 5000, "all_earned_gold": 321.5},
               "monitor": {"total_runtime_hours": 48}}),
    )
    .await;
    let id = bot["id"].as_str().unwrap().to_string();
    for st in ["leveling", "farming"] {
        let r = call(
            &s,
            "POST",
            &format!("/api/v1/bots/{id}/lifecycle/transition"),
            &t,
            Some(json!({"status": st})),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let r = call(&s, "POST", &format!("/api/v1/bots/{id}/lifecycle/ban"), &t,
        Some(json!({"ban_date": "02.01.2026", "ban_reason": "Botting detected", "ban_mechanism": "battlenet_account_closure"}))).await;
    assert_eq!(r.status, 200);
    let tr = r.body["data"]["lifecycle"]["stage_transitions"].clone();
    assert_eq!(
        tr.as_array()
            .unwrap()
            .iter()
            .map(|x| (x["from"].as_str().unwrap(), x["to"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("create", "leveling"),
            ("leveling", "farming"),
            ("farming", "farming")
        ]
    );
    // The log, newest first, paged.
    let log = s
        .get(&format!("/api/v1/bots/{id}/lifecycle/log"), Some(&t))
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert_eq!(log.body["meta"]["total"], 3);
    let e = log.body["data"].as_array().unwrap();
    assert_eq!(e[0]["type"], "ban");
    assert_eq!(e[0]["message"], "Bot banned: Botting detected");
    assert_eq!(
        e[0]["details"],
        json!({"from": "farming", "mechanism": "battlenet_account_closure", "ban_date": "02.01.2026"})
    );
    assert_eq!(
        e[1]["details"],
        json!({"from": "leveling", "to": "farming"})
    );
    assert_eq!(
        e[2]["details"],
        json!({"from": "offline", "to": "leveling"})
    );
    let page2 = s
        .get(
            &format!("/api/v1/bots/{id}/lifecycle/log?limit=2&page=2"),
            Some(&t),
        )
        .await;
    assert_eq!(page2.body["data"][0]["id"], e[2]["id"]);
    let only = s
        .get(
            &format!("/api/v1/bots/{id}/lifecycle/log?type=status_change"),
            Some(&t),
        )
        .await;
    assert_eq!(only.body["meta"]["total"], 2);
    // The archive with the snapshot taken before the ban.
    let a = s.get("/api/v1/bots/archive", Some(&t)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["meta"]["total"], 1);
    let entry = &a.body["data"][0];
    assert_eq!(entry["bot_id"], id.as_str());
    assert_eq!(entry["reason"], "banned");
    assert_eq!(entry["name"], "Farmer");
    assert_eq!(
        entry["ban_details"]["ban_timestamp"],
        "2026-01-02T00:00:00.000Z"
    );
    assert_eq!(
        entry["ban_details"]["ban_mechanism"],
        "battlenet_account_closure"
    );
    assert_eq!(
        entry["snapshot"],
        json!({"project_id": "wow_midnight",
               "character": {"name": "Sylvanas", "level": 60, "class": null, "race": null, "server": null, "faction": "horde"},
               "final_level": 60, "total_farmed": 5000.0, "total_earned_gold": 321.5, "total_runtime_hours": 48.0})
    );
    for q in [
        format!("bot_id={id}"),
        "q=sylvan".into(),
        "q=FARM".into(),
        "project_id=wow_midnight".into(),
    ] {
        let r = s.get(&format!("/api/v1/bots/archive?{q}"), Some(&t)).await;
        assert_eq!(r.body["meta"]["total"], 1, "{q}: {}", r.body);
    }
    let none = s
        .get("/api/v1/bots/archive?project_id=wow_tbc", Some(&t))
        .await;
    assert_eq!(none.body["meta"]["total"], 0);
    // Deleting the bot keeps the archive; its log is no longer reachable.
    call(&s, "DELETE", &format!("/api/v1/bots/{id}"), &t, None).await;
    assert_eq!(
        s.get("/api/v1/bots/archive", Some(&t)).await.body["meta"]["total"],
        1
    );
    s.get(&format!("/api/v1/bots/{id}/lifecycle/log"), Some(&t))
        .await
        .assert_error(404, "BOT_NOT_FOUND");
    s.stop().await;
}

async fn roles_and_tenants(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let admin = s.tenant_with_admin(&infra, "bots-a").await;
    let other = s.tenant_with_admin(&infra, "bots-b").await;
    let (_, viewer) = s.user(&admin, "viewer@bots-a.test", "viewer").await;
    let (_, operator) = s.user(&admin, "operator@bots-a.test", "operator").await;
    let id = create(&s, &admin, bot_body("A's bot", "farming")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reads = [
        "/api/v1/bots".to_string(),
        "/api/v1/bots/archive".into(),
        format!("/api/v1/bots/{id}"),
        format!("/api/v1/bots/{id}/lifecycle"),
        format!("/api/v1/bots/{id}/lifecycle/transitions"),
        format!("/api/v1/bots/{id}/lifecycle/is-banned"),
        format!("/api/v1/bots/{id}/lifecycle/log"),
    ];
    for p in &reads {
        assert_eq!(
            s.get(p, Some(&viewer)).await.status,
            200,
            "viewer reads {p}"
        );
    }
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/v1/bots".into(),
            Some(bot_body("x", "offline")),
        ),
        (
            "PATCH",
            format!("/api/v1/bots/{id}"),
            Some(json!({"name": "y"})),
        ),
        (
            "POST",
            format!("/api/v1/bots/{id}/lifecycle/transition"),
            Some(json!({"status": "leveling"})),
        ),
        (
            "POST",
            format!("/api/v1/bots/{id}/lifecycle/ban"),
            Some(json!({"ban_date": "01.01.2026", "ban_reason": "r", "ban_mechanism": "other"})),
        ),
        ("POST", format!("/api/v1/bots/{id}/lifecycle/unban"), None),
        ("DELETE", format!("/api/v1/bots/{id}"), None),
    ];
    for (m, p, body) in &writes {
        call(&s, m, p, &viewer, body.clone())
            .await
            .assert_error(403, "FORBIDDEN");
        let r = s.call(m, p, None, body.clone()).await;
        r.assert_error(401, "UNAUTHORIZED");
    }
    // Another tenant sees nothing of A (404), and its list is empty.
    for p in reads.iter().skip(2) {
        s.get(p, Some(&other))
            .await
            .assert_error(404, "BOT_NOT_FOUND");
    }
    assert_eq!(
        s.get("/api/v1/bots", Some(&other)).await.body["meta"]["total"],
        0
    );
    for (m, p, body) in writes.iter().skip(1) {
        call(&s, m, p, &other, body.clone())
            .await
            .assert_error(404, "BOT_NOT_FOUND");
    }
    // The same id may exist in two tenants.
    let mine = create(
        &s,
        &other,
        json!({"id": id, "name": "B's", "project_id": "wow_tbc", "status": "offline"}),
    )
    .await;
    assert_eq!(mine["name"], "B's");
    assert_eq!(
        s.get(&format!("/api/v1/bots/{id}"), Some(&admin))
            .await
            .body["data"]["name"],
        "A's bot"
    );
    // The operator may do everything the viewer may not.
    for (m, p, body) in &writes {
        let r = call(&s, m, p, &operator, body.clone()).await;
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
    name: String,
    status: String,
    project: String,
    char_name: Option<String>,
    level: Option<i64>,
    stage: Option<String>,
    created_at: i64,
}

const NAMES: [&str; 8] = [
    "Alpha", "alpine", "Beta_7", "GAMMA 12", "delta%", "Zed", "omega", "Ph_x",
];
const CHARS: [&str; 5] = ["Thrall", "jaina", "Arthas", "sylvanas", "Uther"];
const SEARCHES: [&str; 7] = ["al", "A", "ta_", "%", "ph", "THR", "zz"];
const SORTS: [&str; 7] = [
    "created_at",
    "name",
    "status",
    "project_id",
    "character_name",
    "character_level",
    "current_stage",
];
const STAGES: [&str; 5] = ["prepare", "leveling", "profession", "farming", "banned"];

#[derive(Debug, Clone)]
struct Query {
    sort: Option<usize>,
    desc: Option<bool>,
    status: Option<Vec<usize>>,
    project: Option<usize>,
    level_gte: Option<i64>,
    search: Option<usize>,
    limit: u32,
    page: u32,
}

fn query_strategy() -> impl Strategy<Value = Query> {
    (
        proptest::option::of(0..SORTS.len()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(0..STATUSES.len(), 1..4)),
        proptest::option::of(0..2usize),
        proptest::option::of(1..100i64),
        proptest::option::of(0..SEARCHES.len()),
        1..20u32,
        1..5u32,
    )
        .prop_map(
            |(sort, desc, status, project, level_gte, search, limit, page)| Query {
                sort,
                desc,
                status,
                project,
                level_gte,
                search,
                limit,
                page,
            },
        )
}

const PROJECTS: [&str; 2] = ["wow_tbc", "wow_midnight"];

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
        if let Some(st) = &self.status {
            let v: Vec<&str> = st.iter().map(|i| STATUSES[*i]).collect();
            q.push(format!("status_in={}", v.join(",")));
        }
        if let Some(p) = self.project {
            q.push(format!("project_id={}", PROJECTS[p]));
        }
        if let Some(l) = self.level_gte {
            q.push(format!("character_level_gte={l}"));
        }
        if let Some(s) = self.search {
            q.push(format!("q={}", enc(SEARCHES[s])));
        }
        q.join("&")
    }

    fn reference(&self, rows: &[Row]) -> Vec<String> {
        let mut hits: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                self.status
                    .as_ref()
                    .is_none_or(|st| st.iter().any(|i| STATUSES[*i] == r.status))
            })
            .filter(|r| self.project.is_none_or(|p| PROJECTS[p] == r.project))
            .filter(|r| {
                self.level_gte
                    .is_none_or(|l| r.level.is_some_and(|x| x >= l))
            })
            .filter(|r| {
                self.search.is_none_or(|s| {
                    let n = SEARCHES[s].to_ascii_lowercase();
                    r.name.to_ascii_lowercase().contains(&n)
                        || r.char_name
                            .as_ref()
                            .is_some_and(|c| c.to_ascii_lowercase().contains(&n))
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
                "name" => Some(Key::S(r.name.clone())),
                "status" => Some(Key::S(r.status.clone())),
                "project_id" => Some(Key::S(r.project.clone())),
                "character_name" => r.char_name.clone().map(Key::S),
                "character_level" => r.level.map(Key::I),
                "current_stage" => r.stage.clone().map(Key::S),
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
        let other = s.tenant_with_admin(&t, "bots-other").await;
        let mut rng_state = 7u64;
        let mut next = move |n: u64| {
            rng_state = rng_state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng_state >> 33) % n
        };
        let mut rows = vec![];
        for i in 0..90 {
            let status = STATUSES[next(6) as usize];
            let mut body = json!({
                "name": format!("{} {i}", NAMES[next(8) as usize]),
                "project_id": PROJECTS[next(2) as usize],
                "status": status,
            });
            if next(3) > 0 {
                let mut c = json!({"name": CHARS[next(5) as usize]});
                if next(4) > 0 {
                    c["level"] = json!(1 + next(100) as i64);
                }
                body["character"] = c;
            }
            match next(4) {
                0 => body["lifecycle"] = json!({"current_stage": null}),
                1 => body["lifecycle"] = json!({"current_stage": STAGES[next(5) as usize]}),
                _ => {}
            }
            if next(10) == 0 {
                body["id"] = json!(format!("client-{i}"));
            }
            let d = create(&s, &t, body).await;
            rows.push(Row {
                id: d["id"].as_str().unwrap().to_string(),
                name: d["name"].as_str().unwrap().to_string(),
                status: status.to_string(),
                project: d["project_id"].as_str().unwrap().to_string(),
                char_name: d["character"]["name"].as_str().map(str::to_string),
                level: d["character"]["level"].as_i64(),
                stage: d["lifecycle"]["current_stage"].as_str().map(str::to_string),
                created_at: ms(&d["created_at"]),
            });
            if i % 9 == 0 {
                create(&s, &other, bot_body(&format!("Alpha other {i}"), "offline")).await;
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
            let r = rt.block_on(s.get(&format!("/api/v1/bots?{qs}"), Some(&t)));
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
            let sort = q.sort.map(|x| SORTS[x]).unwrap_or("created_at");
            if !["character_name", "character_level", "current_stage"].contains(&sort) {
                let base = q.to_query_string(false);
                let mut walked = vec![];
                let mut cursor: Option<String> = None;
                for _ in 0..100 {
                    let qs = match &cursor {
                        Some(c) => format!("{base}&cursor={c}"),
                        None => base.clone(),
                    };
                    let r = rt.block_on(s.get(&format!("/api/v1/bots?{qs}"), Some(&t)));
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
    fn sqlite_bots_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Sqlite);
    }
    #[test]
    fn postgres_bots_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Postgres);
    }
}
