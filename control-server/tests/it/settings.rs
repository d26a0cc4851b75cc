//! The settings tree (issue #16) through real HTTP on both backends: every
//! path's schema (a valid write and one invalid case per rule), PUT/PATCH
//! merge semantics, path rules, masking of `api_keys`, one transaction per
//! write, role gates and tenant isolation.

use serde_json::{json, Value};

use crate::common::{Backend, Resp, TestServer};

backend_tests!(
    every_path_schema,
    merge_semantics,
    path_rules,
    api_keys_are_masked_for_non_admins,
    failing_write_leaves_nothing,
    role_gates_and_tenants,
);

const S: &str = "/api/v1/settings";

/// (path, a valid body, [(an invalid body, its code, the field named)])
type Case = (
    &'static str,
    Value,
    Vec<(Value, &'static str, &'static str)>,
);

async fn put(s: &TestServer, path: &str, t: &str, body: Value) -> Resp {
    s.call("PUT", &format!("{S}/{path}"), Some(t), Some(body))
        .await
}

async fn patch(s: &TestServer, path: &str, t: &str, body: Value) -> Resp {
    s.call("PATCH", &format!("{S}/{path}"), Some(t), Some(body))
        .await
}

async fn read(s: &TestServer, path: &str, t: &str) -> Value {
    let url = if path.is_empty() {
        S.to_string()
    } else {
        format!("{S}/{path}")
    };
    let r = s.get(&url, Some(t)).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.body["data"].clone()
}

/// A write that must succeed; returns `data`.
#[track_caller]
fn ok(r: &Resp, what: &str) -> Value {
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    assert_eq!(r.body["success"], json!(true), "{what}");
    r.body["data"].clone()
}

/// A write refused with `code`, naming `field` in `details.fields`.
#[track_caller]
fn refused(r: &Resp, code: &str, field: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    assert_eq!(r.code(), code, "{what}: {}", r.body);
    assert!(
        r.body["error"]["details"]["fields"].get(field).is_some(),
        "{what}: expected field `{field}` in {}",
        r.body
    );
}

async fn every_path_schema(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.admin_token().await;
    const V: &str = "VALIDATION_ERROR";

    // (path, valid body, [(invalid body, code, field)])
    let cases: Vec<Case> = vec![
        (
            "alerts",
            json!({"warning_days": 7, "updated_at": 1700000000000u64, "extra": "kept"}),
            vec![
                (json!({"warning_days": 0}), V, "warning_days"),
                (json!({"warning_days": 366}), V, "warning_days"),
                (json!({"warning_days": "7"}), V, "warning_days"),
                (json!({"updated_at": -1}), V, "updated_at"),
                (json!({"updated_by": "a\u{202E}b"}), V, "updated_by"),
                (json!("text"), V, "body"),
                (json!([1, 2]), V, "body"),
                (Value::Null, V, "body"),
            ],
        ),
        (
            "api_keys",
            json!({"ipqs": {"api_key": "k-1", "enabled": true}, "telegram": {"bot_token": "t", "chat_id": "c", "enabled": false}}),
            vec![
                (
                    json!({"ipqs": {"api_key": 5}}),
                    "SETTINGS_INVALID_API_KEYS_BODY",
                    "ipqs.api_key",
                ),
                (
                    json!({"ipqs": {"unknown": true}}),
                    "SETTINGS_INVALID_API_KEYS_BODY",
                    "ipqs.unknown",
                ),
                (
                    json!({"telegram": {"enabled": "yes"}}),
                    "SETTINGS_INVALID_API_KEYS_BODY",
                    "telegram.enabled",
                ),
            ],
        ),
        (
            "proxy",
            json!({"auto_check_on_add": true, "fraud_score_threshold": 75, "check_interval_hours": 24}),
            vec![
                (
                    json!({"fraud_score_threshold": 101}),
                    "SETTINGS_INVALID_PROXY_BODY",
                    "fraud_score_threshold",
                ),
                (
                    json!({"fraud_score_threshold": -1}),
                    "SETTINGS_INVALID_PROXY_BODY",
                    "fraud_score_threshold",
                ),
                (
                    json!({"check_interval_hours": 169}),
                    "SETTINGS_INVALID_PROXY_BODY",
                    "check_interval_hours",
                ),
                (
                    json!({"check_interval_hours": 1.5}),
                    "SETTINGS_INVALID_PROXY_BODY",
                    "check_interval_hours",
                ),
                (
                    json!({"auto_check_on_add": 1}),
                    "SETTINGS_INVALID_PROXY_BODY",
                    "auto_check_on_add",
                ),
            ],
        ),
        (
            "notifications/events",
            json!({"bot_banned": true, "bot_offline": false, "bot_online": true, "level_up": true, "profession_maxed": false, "low_fraud_score": true, "daily_report": false}),
            vec![(
                json!({"bot_banned": "yes"}),
                "SETTINGS_INVALID_NOTIFICATION_EVENTS_BODY",
                "bot_banned",
            )],
        ),
        (
            "storage_policy",
            json!({"secrets": "local-only", "operational": "cloud", "sync": {"enabled": true}}),
            vec![
                (json!({"secrets": "cloud"}), V, "secrets"),
                (json!({"operational": "s3"}), V, "operational"),
                (json!({"sync": {"enabled": true, "x": 1}}), V, "sync.x"),
            ],
        ),
        (
            "projects",
            json!({"wow_tbc": {"name": "TBC", "game": "wow", "max_level": 70, "currency": "gold", "professions": ["mining"], "referenceData": {"a": 1}, "gold_price_usd": 0.02}}),
            vec![
                (json!({"p": {"max_level": 0}}), V, "p.max_level"),
                (json!({"p": {"max_level": 201}}), V, "p.max_level"),
                (json!({"p": {"name": ""}}), V, "p.name"),
                (json!({"p": {"name": "a\nb"}}), V, "p.name"),
                (json!({"p": {"professions": [""]}}), V, "p.professions[0]"),
                (json!({"p": {"gold_price_usd": 0}}), V, "p.gold_price_usd"),
                (json!({"p": "x"}), V, "p"),
            ],
        ),
        (
            "projects/wow_midnight",
            json!({"name": "Midnight", "max_level": 80}),
            vec![(json!({"max_level": 300}), V, "max_level")],
        ),
        (
            "projects/wow_midnight/gold_price_usd",
            json!(0.5),
            vec![
                (json!(-1), V, "body"),
                (json!("1"), V, "body"),
                (Value::Null, V, "body"),
            ],
        ),
        (
            "theme",
            json!({
                "palettes": {"light": {"primary": "#fff"}},
                "presets": {"p1": {"id": "p1", "name": "Preset", "palettes": {}}},
                "active_preset_id": "p1",
                "visual": {"enabled": true, "mode": "image", "backgroundImageUrl": "https://x.test/a.png", "backgroundPosition": "top", "backgroundSize": "cover", "overlayOpacity": 0.5, "blurPx": 4, "dimStrength": 1},
                "typography": {"fontPrimary": "Inter"},
                "shape": {"radiusNone": 0, "radiusLg": 24}
            }),
            vec![
                (json!({"visual": {"mode": "video"}}), V, "visual.mode"),
                (
                    json!({"visual": {"overlayOpacity": 1.5}}),
                    V,
                    "visual.overlayOpacity",
                ),
                (json!({"visual": {"blurPx": 25}}), V, "visual.blurPx"),
                (
                    json!({"visual": {"dimStrength": -0.1}}),
                    V,
                    "visual.dimStrength",
                ),
                (
                    json!({"visual": {"backgroundPosition": "left"}}),
                    V,
                    "visual.backgroundPosition",
                ),
                (
                    json!({"visual": {"backgroundSize": "fill"}}),
                    V,
                    "visual.backgroundSize",
                ),
                (
                    json!({"visual": {"backgroundImageUrl": "ftp://x"}}),
                    V,
                    "visual.backgroundImageUrl",
                ),
                (json!({"visual": {"nope": 1}}), V, "visual.nope"),
                (json!({"shape": {"radiusSm": 25}}), V, "shape.radiusSm"),
                (
                    json!({"typography": {"fontMono": ""}}),
                    V,
                    "typography.fontMono",
                ),
                (json!({"presets": {"p": {"name": ""}}}), V, "presets.p.name"),
                (json!({"active_preset_id": ""}), V, "active_preset_id"),
            ],
        ),
        (
            "finance/chart_config",
            json!([{"key": "income", "name": "Income", "color": "#0f0", "type": "line", "yAxisId": "left", "visible": true, "unit": "USD"}]),
            vec![
                (
                    json!([{"key": "k", "name": "n", "color": "c", "type": "pie", "yAxisId": "y", "visible": true, "unit": "u"}]),
                    V,
                    "[0].type",
                ),
                (json!([{"key": "k"}]), V, "[0]"),
                (
                    json!([{"key": "", "name": "n", "color": "c", "type": "bar", "yAxisId": "y", "visible": true, "unit": "u"}]),
                    V,
                    "[0].key",
                ),
                (
                    Value::Array(vec![
                        json!({"key": "k", "name": "n", "color": "c", "type": "bar", "yAxisId": "y", "visible": true, "unit": "u"});
                        201
                    ]),
                    V,
                    "body",
                ),
                (json!({"a": 1}), V, "body"),
            ],
        ),
        (
            "ui/resource_tree",
            json!({"expandedKeys": ["bots"], "visibleStatuses": ["farming", "banned"], "showFilters": true}),
            vec![
                (
                    json!({"visibleStatuses": ["sleeping"]}),
                    V,
                    "visibleStatuses[0]",
                ),
                (json!({"expandedKeys": [""]}), V, "expandedKeys[0]"),
                (json!({"showFilters": "no"}), V, "showFilters"),
            ],
        ),
        (
            "schedule/last_params",
            json!({"startTime": "08:00", "endTime": "23:59", "useSecondWindow": false, "targetActiveMinutes": 300, "minSessionMinutes": 60, "minBreakMinutes": 10, "randomOffsetMinutes": 15, "profile": "p"}),
            vec![
                (json!({"startTime": "24:00"}), V, "startTime"),
                (json!({"endTime2": "7:00"}), V, "endTime2"),
                (json!({"targetActiveMinutes": 29}), V, "targetActiveMinutes"),
                (json!({"minSessionMinutes": 241}), V, "minSessionMinutes"),
                (json!({"minBreakMinutes": 4}), V, "minBreakMinutes"),
                (json!({"randomOffsetMinutes": 61}), V, "randomOffsetMinutes"),
            ],
        ),
        (
            "schedule/templates",
            json!({"t1": {"name": "Day", "params": {"startTime": "09:00"}}}),
            vec![
                (
                    json!({"t1": {"params": {"startTime": "9am"}}}),
                    V,
                    "t1.params.startTime",
                ),
                (json!({"t1": {"name": ""}}), V, "t1.name"),
            ],
        ),
        (
            "schedule/templates/t2",
            json!({"name": "Night"}),
            vec![(
                json!({"params": {"minBreakMinutes": 500}}),
                V,
                "params.minBreakMinutes",
            )],
        ),
        (
            "vmgenerator",
            json!({
                "proxmox": {"url": "https://pve:8006", "username": "root@pam", "node": "pve"},
                "ssh": {"host": "pve", "port": 22, "username": "root", "privateKeyPath": "/k", "useKeyAuth": true},
                "storage": {"options": ["local-lvm"], "default": "local-lvm"},
                "format": {"options": ["raw"], "default": "raw"},
                "template": {"vmId": 9000, "name": "tpl"},
                "hardware": {"cores": 4, "sockets": 1, "memory": 4096, "balloon": 0, "cpu": "host", "onboot": true, "agent": true},
                "projectHardware": {"wow_tbc": {"cores": 2, "memory": 2048}},
                "hardwareApply": {"applyCpu": true},
                "services": {"proxmoxUrl": "https://pve", "tinyFmUsername": "u"},
                "deleteVmFilters": {"policy": {"allowBanned": true}, "view": {"showLocked": false}},
                "tinyFM": {"path": "/"},
                "task_logs": []
            }),
            vec![
                (json!({"proxmox": {"password": "x"}}), V, "proxmox.password"),
                (json!({"ssh": {"password": "x"}}), V, "ssh.password"),
                (
                    json!({"services": {"tinyFmPassword": "x"}}),
                    V,
                    "services.tinyFmPassword",
                ),
                (
                    json!({"syncThing": {"apiToken": "x"}}),
                    V,
                    "syncThing.apiToken",
                ),
                (json!({"hardware": {"cores": 65}}), V, "hardware.cores"),
                (json!({"hardware": {"sockets": 9}}), V, "hardware.sockets"),
                (json!({"hardware": {"memory": 255}}), V, "hardware.memory"),
                (
                    json!({"hardware": {"balloon": 262145}}),
                    V,
                    "hardware.balloon",
                ),
                (json!({"ssh": {"port": 70000}}), V, "ssh.port"),
                (json!({"template": [null, null]}), V, "template"),
                (json!({"template": {"vmId": 0}}), V, "template.vmId"),
                (
                    json!({"projectHardware": {"wow_tbc": {"memory": 100}}}),
                    V,
                    "projectHardware.wow_tbc.memory",
                ),
                (json!({"proxmox": {"node": ""}}), V, "proxmox.node"),
                (
                    json!({"storage": {"options": [""]}}),
                    V,
                    "storage.options[0]",
                ),
            ],
        ),
        (
            "vmgenerator/profiles",
            json!({"small": {"name": "Small", "hardware": {"cores": 2, "memory": 2048}}}),
            vec![(
                json!({"small": {"hardware": {"cores": 0}}}),
                V,
                "small.hardware.cores",
            )],
        ),
        (
            "vmgenerator/profiles/big",
            json!({"name": "Big", "hardware": {"cores": 16}}),
            vec![
                (
                    json!({"hardware": {"memory": 999999}}),
                    V,
                    "hardware.memory",
                ),
                (json!({"name": ""}), V, "name"),
            ],
        ),
        (
            "vmgenerator/hardware",
            json!({"cores": 8, "sockets": 1, "memory": 4096, "balloon": 0, "cpu": "host", "onboot": true, "agent": true}),
            vec![(json!({"cores": 100}), V, "cores")],
        ),
        (
            "generators/account/lastSettings",
            json!({"passwordOptions": {"length": 16, "uppercase": true, "lowercase": true, "numbers": true, "symbols": false}, "selectedDomain": "x.test", "useCustomDomain": false}),
            vec![
                (
                    json!({"passwordOptions": {"length": 5}}),
                    V,
                    "passwordOptions.length",
                ),
                (
                    json!({"passwordOptions": {"length": 129}}),
                    V,
                    "passwordOptions.length",
                ),
                (json!({"useCustomDomain": "no"}), V, "useCustomDomain"),
            ],
        ),
        (
            "generators/account/defaultTemplateId",
            json!("tpl-1"),
            vec![(json!(""), V, "body"), (json!(5), V, "body")],
        ),
        (
            "generators/account/templates",
            json!({"tpl-1": {"name": "One", "settings": {"passwordOptions": {"length": 12}}}}),
            vec![(
                json!({"tpl-1": {"settings": {"passwordOptions": {"length": 1}}}}),
                V,
                "tpl-1.settings.passwordOptions.length",
            )],
        ),
        (
            "generators/account/templates/tpl-2",
            json!({"name": "Two"}),
            vec![(json!({"name": ""}), V, "name")],
        ),
        (
            "vmgenerator/task_logs",
            json!([{"at": 1, "msg": "free-form"}]),
            vec![(json!([{"password": "x"}]), V, "[0].password")],
        ),
        ("ui/sidebar", json!({"collapsed": true}), vec![]),
        ("finance/anything/deeper", json!("any value"), vec![]),
    ];

    for (path, valid, invalid) in &cases {
        let before = read(&s, path, &a).await;
        for (body, code, field) in invalid {
            let what = format!("PUT {path} {body}");
            refused(&put(&s, path, &a, body.clone()).await, code, field, &what);
            let what = format!("PATCH {path} {body}");
            refused(&patch(&s, path, &a, body.clone()).await, code, field, &what);
        }
        // Nothing of a refused write was stored.
        assert_eq!(
            read(&s, path, &a).await,
            before,
            "{path} changed by refused writes"
        );
        let data = ok(&put(&s, path, &a, valid.clone()).await, path);
        assert_eq!(&data, valid, "{path}: PUT answers the stored value");
        assert_eq!(&read(&s, path, &a).await, valid, "{path}: read back");
    }

    // The typed paths' values are all in the tree.
    let tree = read(&s, "", &a).await;
    assert_eq!(
        tree["alerts"]["extra"], "kept",
        "passthrough extras are kept"
    );
    assert_eq!(
        tree["projects"]["wow_midnight"]["gold_price_usd"],
        json!(0.5)
    );
    assert_eq!(tree["vmgenerator"]["hardware"]["cores"], json!(8));
    assert_eq!(tree["vmgenerator"]["profiles"]["big"]["name"], "Big");
    assert_eq!(tree["generators"]["account"]["defaultTemplateId"], "tpl-1");
    assert_eq!(
        tree["api_keys"]["ipqs"]["api_key"], "k-1",
        "admins see secrets"
    );
    // `meta`: the normalized path and RFC 3339 time of the root's last write.
    let r = s
        .get(&format!("{S}/settings/theme/visual/"), Some(&a))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["mode"], "image");
    assert_eq!(r.body["meta"]["path"], "theme/visual");
    let at = r.body["meta"]["updated_at"].as_str().expect("updated_at");
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    // Absent values read as null, with no update time.
    let r = s.get(&format!("{S}/ui/nothing/here"), Some(&a)).await;
    assert_eq!(r.body["data"], Value::Null);
    // The stored timestamp is epoch ms.
    let (ms,): (i64,) = sqlx::query_as(
        "SELECT updated_at FROM settings_documents WHERE tenant_id = 'default' AND root = 'theme'",
    )
    .fetch_one(s.db.raw_pool())
    .await
    .unwrap();
    assert!(ms > 1_600_000_000_000, "{ms}");
    s.stop().await;
}

async fn merge_semantics(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.admin_token().await;
    for method in ["PUT", "PATCH"] {
        let w = |body: Value| {
            let s = &s;
            let a = &a;
            async move {
                s.call(method, &format!("{S}/theme"), Some(a), Some(body))
                    .await
            }
        };
        ok(&patch(&s, "theme", &a, json!({"active_preset_id": "x", "shape": {"radiusSm": 2, "radiusMd": 3}, "palettes": {"a": 1}})).await, "seed");
        // Shallow: a top-level key is replaced whole, others stay.
        let d = ok(&w(json!({"shape": {"radiusLg": 4}})).await, method);
        assert_eq!(
            d,
            json!({"active_preset_id": "x", "shape": {"radiusLg": 4}, "palettes": {"a": 1}}),
            "{method} merges shallowly"
        );
        // `null` deletes a key; `{}` changes nothing.
        let d = ok(&w(json!({"palettes": null})).await, method);
        assert_eq!(
            d,
            json!({"active_preset_id": "x", "shape": {"radiusLg": 4}}),
            "{method}"
        );
        let d = ok(&w(json!({})).await, method);
        assert_eq!(
            d,
            json!({"active_preset_id": "x", "shape": {"radiusLg": 4}}),
            "{method}"
        );
        // A sub-path write merges into that sub-object only.
        let d = ok(
            &s.call(
                method,
                &format!("{S}/theme/shape"),
                Some(&a),
                Some(json!({"radiusSm": 1})),
            )
            .await,
            method,
        );
        assert_eq!(d, json!({"radiusLg": 4, "radiusSm": 1}));
        // A non-object replaces; null at a path deletes it.
        ok(
            &s.call(
                method,
                &format!("{S}/ui/x"),
                Some(&a),
                Some(json!({"a": 1})),
            )
            .await,
            method,
        );
        ok(
            &s.call(method, &format!("{S}/ui/x"), Some(&a), Some(json!([1, 2])))
                .await,
            method,
        );
        assert_eq!(read(&s, "ui/x", &a).await, json!([1, 2]));
        ok(
            &s.call(method, &format!("{S}/ui/x"), Some(&a), Some(Value::Null))
                .await,
            method,
        );
        assert_eq!(read(&s, "ui", &a).await, json!({}));
        // Deleting a whole collection entry.
        ok(
            &w(json!({"presets": {"p": {"name": "P"}, "q": {"name": "Q"}}})).await,
            method,
        );
        ok(
            &s.call(
                method,
                &format!("{S}/theme/presets"),
                Some(&a),
                Some(json!({"p": null})),
            )
            .await,
            method,
        );
        assert_eq!(
            read(&s, "theme/presets", &a).await,
            json!({"q": {"name": "Q"}})
        );
        ok(
            &s.call(
                method,
                &format!("{S}/projects"),
                Some(&a),
                Some(json!({"a": {"name": "A"}, "b": {"name": "B"}})),
            )
            .await,
            method,
        );
        ok(
            &s.call(
                method,
                &format!("{S}/projects"),
                Some(&a),
                Some(json!({"a": null})),
            )
            .await,
            method,
        );
        assert_eq!(read(&s, "projects", &a).await, json!({"b": {"name": "B"}}));
        // Reset for the other method.
        ok(
            &s.call(
                method,
                &format!("{S}/theme"),
                Some(&a),
                Some(json!({"active_preset_id": null, "shape": null, "presets": null})),
            )
            .await,
            "reset",
        );
        ok(
            &s.call(
                method,
                &format!("{S}/projects"),
                Some(&a),
                Some(json!({"b": null})),
            )
            .await,
            "reset",
        );
        assert_eq!(read(&s, "theme", &a).await, json!({}));
    }
    s.stop().await;
}

async fn path_rules(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.admin_token().await;
    let bad_path = |r: &Resp, what: &str| {
        r.assert_error(400, "BAD_REQUEST");
        assert_eq!(
            r.body["error"]["message"], "Invalid settings path",
            "{what}"
        );
        assert!(
            r.body["error"]["details"]["reason"].is_string(),
            "{what}: {}",
            r.body
        );
    };
    let long = format!("ui/{}", "a".repeat(520));
    let seg = format!("ui/{}", "a".repeat(129));
    for path in [
        "nope",            // unknown root
        "settings/nope/x", // unknown root after the prefix
        "ui/a.b",          // forbidden characters of the original
        "ui/a$b",
        "ui/a%5Bb",           // `[`
        "ui/a%23b",           // `#`
        "ui/.x",              // (`..` is normalized away by URL clients; see the unit test)
        "ui//x",              // empty segment
        "ui/a%20b",           // space
        "ui/a/b/c/d/e/f/g/h", // 9 segments
        long.as_str(),        // over 512 bytes
        seg.as_str(),         // segment over 128
    ] {
        let url = format!("{S}/{path}");
        bad_path(&s.get(&url, Some(&a)).await, path);
        bad_path(
            &s.call("PUT", &url, Some(&a), Some(json!({"a": 1}))).await,
            path,
        );
        bad_path(
            &s.call("PATCH", &url, Some(&a), Some(json!({"a": 1}))).await,
            path,
        );
    }
    // Eight segments are fine; a leading `settings/` is dropped.
    ok(&put(&s, "ui/a/b/c/d/e/f/g", &a, json!(1)).await, "depth 8");
    assert_eq!(read(&s, "settings/ui/a/b/c/d/e/f/g", &a).await, json!(1));
    ok(
        &put(&s, "settings/alerts", &a, json!({"warning_days": 3})).await,
        "prefix",
    );
    assert_eq!(read(&s, "alerts", &a).await, json!({"warning_days": 3}));
    // `settings` alone is the tree (read only).
    assert_eq!(read(&s, "settings", &a).await, read(&s, "", &a).await);
    bad_path(
        &put(&s, "settings", &a, json!({"x": 1})).await,
        "write the tree",
    );
    // Unknown ids in documented routes follow the same rules.
    bad_path(&s.get(&format!("{S}/projects/a.b"), Some(&a)).await, "id");
    // Other methods are not allowed; the body must be JSON.
    let r = s
        .call("DELETE", &format!("{S}/alerts"), Some(&a), None)
        .await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    let r = s
        .call("POST", &format!("{S}/ui/x"), Some(&a), Some(json!({})))
        .await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    let r = s
        .http
        .put(s.url(&format!("{S}/alerts")))
        .bearer_auth(&a)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

async fn api_keys_are_masked_for_non_admins(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.admin_token().await;
    let (_, viewer) = s.user(&a, "viewer@default.test", "viewer").await;
    let (_, operator) = s.user(&a, "operator@default.test", "operator").await;
    let keys = json!({"ipqs": {"api_key": "ipqs-secret-123", "enabled": true}, "telegram": {"bot_token": "tg-secret-456", "chat_id": "42", "enabled": true}, "other": {"token": "extra-secret-789"}});
    ok(&put(&s, "api_keys", &a, keys.clone()).await, "admin writes");
    assert_eq!(read(&s, "api_keys", &a).await, keys, "admin reads in clear");
    let masked = json!({"ipqs": {"api_key": "********", "enabled": true}, "telegram": {"bot_token": "********", "chat_id": "42", "enabled": true}, "other": {"token": "********"}});
    for t in [&viewer, &operator] {
        assert_eq!(read(&s, "api_keys", t).await, masked);
        assert_eq!(read(&s, "", t).await["api_keys"], masked);
        assert_eq!(
            read(&s, "settings/api_keys/ipqs/api_key", t).await,
            json!("********")
        );
        let r = s.get(&format!("{S}/api_keys/telegram"), Some(t)).await;
        assert!(!r.body.to_string().contains("secret"), "{}", r.body);
    }
    // Writing secrets is admin-only (an operator is refused, nothing changes).
    let r = put(
        &s,
        "api_keys",
        &operator,
        json!({"ipqs": {"api_key": "mine"}}),
    )
    .await;
    r.assert_error(403, "FORBIDDEN");
    let r = patch(&s, "api_keys/ipqs/api_key", &operator, json!("mine")).await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(read(&s, "api_keys", &a).await, keys);
    s.stop().await;
}

async fn failing_write_leaves_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.admin_token().await;
    let rows = || async {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM settings_documents WHERE tenant_id = 'default'")
                .fetch_one(s.db.raw_pool())
                .await
                .unwrap();
        n
    };
    // A refused first write of a root leaves no row (the lock's placeholder
    // row is rolled back with the transaction).
    let r = put(&s, "theme", &a, json!({"visual": {"blurPx": 99}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(rows().await, 0);
    let r = patch(
        &s,
        "vmgenerator/ssh",
        &a,
        json!({"host": "h", "password": "p"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(rows().await, 0);
    // A document over the size limit is refused whole.
    let big = "x".repeat(700_000);
    ok(&put(&s, "ui/a", &a, json!(big)).await, "first half");
    let r = put(&s, "ui/b", &a, json!(big)).await;
    r.assert_error(400, "VALIDATION_ERROR");
    let ui = read(&s, "ui", &a).await;
    assert!(ui.get("b").is_none() && ui["a"].is_string());
    // A refused write to an existing document changes none of it, even the
    // parts of the body that were valid.
    ok(
        &put(&s, "theme", &a, json!({"shape": {"radiusSm": 1}})).await,
        "seed",
    );
    let before = read(&s, "theme", &a).await;
    let r = patch(
        &s,
        "theme",
        &a,
        json!({"active_preset_id": "p", "shape": {"radiusSm": 99}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(read(&s, "theme", &a).await, before);
    assert_eq!(rows().await, 2);
    // Concurrent merges into one root all land (writes are serialized per root).
    let mut tasks = vec![];
    for i in 0..8 {
        let http = s.http.clone();
        let url = s.url(&format!("{S}/ui/concurrent"));
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            http.patch(url)
                .bearer_auth(a)
                .json(&json!({ format!("k{i}"): i }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let c = read(&s, "ui/concurrent", &a).await;
    assert_eq!(c.as_object().unwrap().len(), 8, "{c}");
    s.stop().await;
}

async fn role_gates_and_tenants(backend: Backend) {
    let s = TestServer::start(backend).await;
    let infra = s.admin_token().await;
    let a_admin = s.tenant_with_admin(&infra, "set-a").await;
    let b_admin = s.tenant_with_admin(&infra, "set-b").await;
    let (_, a_viewer) = s.user(&a_admin, "viewer@set-a.test", "viewer").await;
    let (_, a_operator) = s.user(&a_admin, "operator@set-a.test", "operator").await;

    // Anonymous: 401 everywhere.
    for (m, p) in [
        ("GET", ""),
        ("GET", "/theme"),
        ("PUT", "/theme"),
        ("PATCH", "/ui/x"),
    ] {
        let r = s.call(m, &format!("{S}{p}"), None, Some(json!({}))).await;
        r.assert_error(401, "UNAUTHORIZED");
    }
    // Viewer: reads, never writes.
    read(&s, "", &a_viewer).await;
    read(&s, "theme", &a_viewer).await;
    for (m, p) in [
        ("PUT", "theme"),
        ("PATCH", "theme"),
        ("PUT", "projects/x"),
        ("PATCH", "ui/free"),
        ("PUT", "api_keys"),
    ] {
        let r = s
            .call(
                m,
                &format!("{S}/{p}"),
                Some(&a_viewer),
                Some(json!({"name": "x"})),
            )
            .await;
        r.assert_error(403, "FORBIDDEN");
    }
    // Operator: writes (not api_keys, see the masking test).
    ok(
        &put(
            &s,
            "theme",
            &a_operator,
            json!({"active_preset_id": "a-secret-preset"}),
        )
        .await,
        "operator",
    );
    ok(
        &patch(&s, "ui/free", &a_operator, json!({"x": "a-value"})).await,
        "operator",
    );
    // Admin of A writes api_keys; tenant B sees none of A's settings.
    ok(
        &put(
            &s,
            "api_keys",
            &a_admin,
            json!({"ipqs": {"api_key": "a-key"}}),
        )
        .await,
        "admin",
    );
    let b_tree = read(&s, "", &b_admin).await;
    assert_eq!(b_tree, json!({}), "tenant B sees nothing of A");
    assert_eq!(read(&s, "theme", &b_admin).await, Value::Null);
    assert_eq!(read(&s, "api_keys", &b_admin).await, Value::Null);
    // B's writes stay in B.
    ok(
        &put(&s, "theme", &b_admin, json!({"active_preset_id": "b"})).await,
        "B",
    );
    assert_eq!(
        read(&s, "theme/active_preset_id", &a_admin).await,
        "a-secret-preset"
    );
    assert_eq!(read(&s, "theme/active_preset_id", &b_admin).await, "b");
    // Infra (platform role) is admin of its own tenant only.
    assert_eq!(read(&s, "theme", &infra).await, Value::Null);
    s.stop().await;
}
