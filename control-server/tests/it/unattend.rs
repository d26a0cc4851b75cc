//! Unattend profiles through real HTTP on both backends: CRUD, every
//! validation rule (one test each), default switching, tenant/owner
//! isolation, legacy migration, previews (same bytes as the builder).

use serde_json::{json, Value};

use crate::common::{Backend, TestServer};
use control_server::domains::unattend::{build_answer_file, UnattendConfig, VmContext};

const BASE: &str = "/api/v1/unattend-profiles";

fn config() -> Value {
    json!({
        "user": {"nameMode": "custom", "customName": "Operator", "password": "s3cret"},
        "computerName": {"mode": "custom", "customName": "LAB-01"}
    })
}

fn body(name: &str, cfg: Value) -> Value {
    json!({"name": name, "config": cfg})
}

async fn operator(s: &TestServer, email: &str) -> (String, String) {
    let admin = s.admin_token().await;
    s.user(&admin, email, "operator").await
}

async fn create(s: &TestServer, token: &str, name: &str, cfg: Value) -> Value {
    let r = s.post(BASE, Some(token), body(name, cfg)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"].clone()
}

// ---------------------------------------------------------------- CRUD

async fn crud(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, op) = operator(&s, "op@default.test").await;
    let p = create(&s, &op, "Lab", config()).await;
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["name"], "Lab");
    assert_eq!(p["is_default"], false);
    // Defaults are filled in and returned.
    assert_eq!(p["config"]["locale"]["timeZone"], "Turkey Standard Time");
    assert_eq!(p["config"]["customScript"]["executable"], "START.ps1");
    let r = s.get(&format!("{BASE}/{id}"), Some(&op)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], p);

    let r = s
        .get(&format!("{BASE}?sort=name&order=asc&q=la"), Some(&op))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["total"], 1);
    assert_eq!(r.body["data"][0]["id"], id.as_str());
    let r = s.get(&format!("{BASE}?bogus=1"), Some(&op)).await;
    r.assert_error(400, "VALIDATION_ERROR");

    let mut cfg = config();
    cfg["locale"] = json!({"timeZone": "UTC", "geoLocation": 244});
    let r = s
        .call(
            "PUT",
            &format!("{BASE}/{id}"),
            Some(&op),
            Some(body("Lab 2", cfg)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["name"], "Lab 2");
    assert_eq!(r.body["data"]["config"]["locale"]["geoLocation"], 244);

    let r = s
        .call(
            "PATCH",
            &format!("{BASE}/{id}"),
            Some(&op),
            Some(json!({"name": "Lab 3"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["name"], "Lab 3");
    assert_eq!(
        r.body["data"]["config"]["locale"]["timeZone"], "UTC",
        "PATCH keeps the config"
    );

    // Unique (tenant, owner, name).
    create(&s, &op, "Other", config()).await;
    let r = s.post(BASE, Some(&op), body("Lab 3", config())).await;
    r.assert_error(409, "UNATTEND_PROFILE_NAME_TAKEN");
    let r = s
        .call(
            "PATCH",
            &format!("{BASE}/{id}"),
            Some(&op),
            Some(json!({"name": "Other"})),
        )
        .await;
    r.assert_error(409, "UNATTEND_PROFILE_NAME_TAKEN");
    // Another owner may use the same name.
    let (_, op2) = operator(&s, "op2@default.test").await;
    create(&s, &op2, "Lab 3", config()).await;

    let r = s
        .call("DELETE", &format!("{BASE}/{id}"), Some(&op), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["deleted"], true);
    let r = s.get(&format!("{BASE}/{id}"), Some(&op)).await;
    r.assert_error(404, "UNATTEND_PROFILE_NOT_FOUND");
    s.stop().await;
}

async fn viewers_read_but_do_not_write(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin_token().await;
    let (_, viewer) = s.user(&admin, "v@default.test", "viewer").await;
    let r = s.post(BASE, Some(&viewer), body("x", config())).await;
    r.assert_error(403, "FORBIDDEN");
    let r = s.get(BASE, Some(&viewer)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            &format!("{BASE}/preview"),
            Some(&viewer),
            json!({"config": config()}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.stop().await;
}

async fn legacy_shapes_are_migrated_and_unknown_fields_named(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, op) = operator(&s, "op@default.test").await;
    let mut cfg = config();
    cfg["locale"] = json!({"inputLocales": ["0407:00000407"]});
    cfg["softwareRemoval"] = json!({"mode": "mixed", "fixedPackages": ["Microsoft.BingNews"]});
    cfg["visualEffects"] = json!({"mode": "random", "cursorShadow": true});
    cfg["desktopIcons"] = json!({"recycleBin": true});
    let p = create(&s, &op, "Legacy", cfg).await;
    let c = &p["config"];
    assert_eq!(
        c["locale"]["keyboardLayouts"],
        json!([{"language": "0407", "layout": "00000407"}])
    );
    assert!(c["locale"].get("inputLocales").is_none());
    assert_eq!(c["softwareRemoval"]["mode"], "fixed_random");
    assert_eq!(c["visualEffects"]["mode"], "custom_randomize");
    assert_eq!(c["visualEffects"]["effects"]["cursorShadow"], true);
    assert_eq!(c["desktopIcons"]["mode"], "custom");
    assert_eq!(c["desktopIcons"]["icons"]["recycleBin"], true);
    assert_eq!(c["windowsSettings"]["enableRemoteDesktop"], false);

    // a bad legacy value is named, not dropped by the migration
    let mut cfg = config();
    cfg["locale"] = json!({"inputLocales": ["0407:00000407", ""]});
    let r = s
        .post(BASE, Some(&op), body("Bad legacy", cfg.clone()))
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert!(
        r.body["error"]["details"]["fields"]["config.locale.inputLocales[1]"].is_string(),
        "{}",
        r.body
    );
    let r = s
        .post(
            &format!("{BASE}/preview"),
            Some(&op),
            json!({"config": cfg}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");

    let mut cfg = config();
    cfg["user"]["nickname"] = json!("x");
    let r = s.post(BASE, Some(&op), body("Bad", cfg)).await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert!(
        r.body["error"]["details"]["fields"]["config.user.nickname"].is_string(),
        "{}",
        r.body
    );
    s.stop().await;
}

// ---------------------------------------------------------------- rules

/// POST a config with `patch` merged in; expect one error on `field`
/// whose message contains `rule`.
async fn refused(backend: Backend, patch: Value, field: &str, rule: &str) {
    let s = TestServer::start(backend).await;
    let (_, op) = operator(&s, "op@default.test").await;
    let mut cfg = config();
    for (k, v) in patch.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let r = s.post(BASE, Some(&op), body("Rule", cfg)).await;
    r.assert_error(400, "VALIDATION_ERROR");
    let msg = r.body["error"]["details"]["fields"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no error on {field}: {}", r.body))
        .to_string();
    assert!(
        msg.contains(rule),
        "{field}: `{msg}` does not name `{rule}`"
    );
    assert_eq!(
        s.get(BASE, Some(&op)).await.body["meta"]["total"],
        0,
        "nothing stored"
    );
    s.stop().await;
}

macro_rules! rules {
    ($($name:ident: $patch:expr, $field:literal, $rule:literal;)+) => {
        $(async fn $name(backend: Backend) {
            refused(backend, $patch, $field, $rule).await
        })+
    };
}

rules! {
    rule_computer_name_at_most_15: json!({"computerName": {"mode": "custom", "customName": "ABCDEFGHIJKLMNOP"}}), "config.computerName.customName", "at most 15";
    rule_computer_name_not_all_digits: json!({"computerName": {"mode": "custom", "customName": "1234"}}), "config.computerName.customName", "all digits";
    rule_computer_name_characters: json!({"computerName": {"mode": "custom", "customName": "LAB_01"}}), "config.computerName.customName", "only letters";
    rule_computer_name_no_edge_hyphen: json!({"computerName": {"mode": "custom", "customName": "LAB-"}}), "config.computerName.customName", "hyphen";
    rule_user_name_at_most_20: json!({"user": {"nameMode": "custom", "customName": "abcdefghijklmnopqrstu", "password": "x"}}), "config.user.customName", "at most 20";
    rule_user_name_forbidden_characters: json!({"user": {"nameMode": "custom", "customName": "ops|team", "password": "x"}}), "config.user.customName", "must not contain";
    rule_user_name_no_trailing_dot: json!({"user": {"nameMode": "custom", "customName": "ops.", "password": "x"}}), "config.user.customName", "dot";
    rule_user_name_not_computer_name: json!({"user": {"nameMode": "custom", "customName": "lab-01", "password": "x"}}), "config.user.customName", "computer name";
    rule_display_name_at_most_256: json!({"user": {"nameMode": "fixed", "displayName": "d".repeat(257), "password": "x"}}), "config.user.displayName", "256";
    rule_password_at_most_127: json!({"user": {"nameMode": "fixed", "password": "p".repeat(128)}}), "config.user.password", "127";
    rule_password_required_with_auto_logon: json!({"user": {"nameMode": "fixed", "autoLogonCount": 5}}), "config.user.password", "auto-logon";
    rule_time_zone_known: json!({"locale": {"timeZone": "Europe/Berlin"}}), "config.locale.timeZone", "time-zone id";
    rule_keyboard_layout_hex: json!({"locale": {"keyboardLayouts": [{"language": "0409", "layout": "0000040G"}]}}), "config.locale.keyboardLayouts[0].layout", "8 hex digits";
    rule_geo_id_known: json!({"locale": {"geoLocation": 1}}), "config.locale.geoLocation", "GeoId";
    rule_random_count_min_le_max: json!({"capabilityRemoval": {"mode": "random", "randomCount": {"min": 4, "max": 2}}}), "config.capabilityRemoval.randomCount.min", "min ≤ max";
    rule_executable_plain_name: json!({"customScript": {"executable": "..\\START.ps1"}}), "config.customScript.executable", "plain file name";
    rule_executable_extension: json!({"customScript": {"executable": "START.sh"}}), "config.customScript.executable", ".ps1, .cmd, .bat or .exe";
    rule_delay_at_most_600: json!({"customScript": {"delaySeconds": 601}}), "config.customScript.delaySeconds", "between 0 and 600";
}

// ---------------------------------------------------------------- default

async fn default_switching(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, op) = operator(&s, "op@default.test").await;
    let (_, op2) = operator(&s, "op2@default.test").await;
    let a = s
        .post(
            BASE,
            Some(&op),
            json!({"name": "A", "is_default": true, "config": config()}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = a.body["data"]["id"].as_str().unwrap().to_string();
    let other = s
        .post(
            BASE,
            Some(&op2),
            json!({"name": "Z", "is_default": true, "config": config()}),
        )
        .await;
    assert_eq!(other.status, 201);
    let b = s
        .post(
            BASE,
            Some(&op),
            json!({"name": "B", "is_default": true, "config": config()}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
    let b = b.body["data"]["id"].as_str().unwrap().to_string();
    let defaults = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["is_default"] == true)
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(defaults(&s.get(BASE, Some(&op)).await.body), vec![b]);
    let r = s
        .call(
            "PATCH",
            &format!("{BASE}/{a}"),
            Some(&op),
            Some(json!({"is_default": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        defaults(&s.get(BASE, Some(&op)).await.body),
        vec![a.clone()]
    );
    let r = s.get(&format!("{BASE}?is_default=1"), Some(&op)).await;
    assert_eq!(r.body["meta"]["total"], 1, "{}", r.body);
    // The other owner's default is untouched.
    assert_eq!(defaults(&s.get(BASE, Some(&op2)).await.body).len(), 1);
    s.stop().await;
}

// ---------------------------------------------------------------- isolation

async fn tenant_and_owner_isolation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let infra = s.admin_token().await;
    let admin_a = s.tenant_with_admin(&infra, "uat-a").await;
    let admin_b = s.tenant_with_admin(&infra, "uat-b").await;
    let (_, op_a) = s.user(&admin_a, "op@uat-a.test", "operator").await;
    let (_, op_a2) = s.user(&admin_a, "op2@uat-a.test", "operator").await;
    let (_, op_b) = s.user(&admin_b, "op@uat-b.test", "operator").await;
    let p = create(&s, &op_a, "Mine", config()).await;
    let id = p["id"].as_str().unwrap().to_string();
    let path = format!("{BASE}/{id}");
    for (who, token) in [
        ("other tenant's operator", &op_b),
        ("other tenant's admin", &admin_b),
        ("same tenant's other operator", &op_a2),
    ] {
        for (method, body) in [
            ("GET", None),
            ("PUT", Some(body("x", config()))),
            ("PATCH", Some(json!({"name": "x"}))),
            ("DELETE", None),
        ] {
            let r = s.call(method, &path, Some(token), body).await;
            assert_eq!(r.status, 404, "{who} {method}: {}", r.body);
            assert_eq!(r.code(), "UNATTEND_PROFILE_NOT_FOUND");
        }
        let r = s
            .post(&format!("{path}/preview"), Some(token), json!({}))
            .await;
        r.assert_error(404, "UNATTEND_PROFILE_NOT_FOUND");
        let r = s.get(BASE, Some(token)).await;
        assert!(
            !r.body.to_string().contains(&id),
            "{who} lists it: {}",
            r.body
        );
    }
    // The tenant's admin sees and may change it; the owner stays.
    let r = s
        .get(
            &format!(
                "{BASE}?owner_user_id={}",
                p["owner_user_id"].as_str().unwrap()
            ),
            Some(&admin_a),
        )
        .await;
    assert_eq!(r.body["meta"]["total"], 1, "{}", r.body);
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&admin_a),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["owner_user_id"], p["owner_user_id"]);
    assert_eq!(
        s.get(&path, Some(&op_a)).await.body["data"]["name"],
        "Renamed"
    );
    s.stop().await;
}

// ---------------------------------------------------------------- preview

async fn preview_is_the_builders_answer_file(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (_, op) = operator(&s, "op@default.test").await;
    let mut cfg = config();
    cfg["user"]["customNameSuffix"] = json!("sequential");
    cfg["user"]["displayName"] = json!("<Ops> & \"Co\"");
    cfg["softwareRemoval"] = json!({"mode": "random", "randomPool": ["A.B", "C.D", "E.F", "G.H"]});
    let p = create(&s, &op, "Preview", cfg.clone()).await;
    let id = p["id"].as_str().unwrap();
    let ctx = json!({"vm_uuid": "6a8f2c3e-1b4d-4e5f-9a0b-1c2d3e4f5a6b", "vmid": 101, "batch_index": 2, "seed": 99});
    let saved = s
        .post(&format!("{BASE}/{id}/preview"), Some(&op), ctx.clone())
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let mut unsaved_body = ctx.clone();
    unsaved_body["config"] = cfg.clone();
    let unsaved = s
        .post(&format!("{BASE}/preview"), Some(&op), unsaved_body)
        .await;
    assert_eq!(unsaved.status, 200, "{}", unsaved.body);
    assert_eq!(saved.body["data"], unsaved.body["data"]);

    // The same bytes the ISO gets from the library.
    let config: UnattendConfig = serde_json::from_value(p["config"].clone()).unwrap();
    let built = build_answer_file(
        &config,
        &VmContext {
            vm_uuid: "6a8f2c3e-1b4d-4e5f-9a0b-1c2d3e4f5a6b".into(),
            vmid: Some(101),
            batch_index: 2,
            ip: None,
            seed: 99,
        },
    )
    .unwrap();
    let d = &saved.body["data"];
    assert_eq!(d["xml"].as_str().unwrap().as_bytes(), &built.xml[..]);
    assert_eq!(d["user_name"], "Operator03");
    assert_eq!(d["computer_name"], "LAB-01");
    assert_eq!(d["files"][0]["name"], "setup.ps1");
    let xml = d["xml"].as_str().unwrap();
    assert!(xml.contains("&lt;Ops&gt; &amp; &quot;Co&quot;"), "{xml}");
    assert!(xml.contains("urn:schemas-microsoft-com:unattend"));

    // Another seed: the same profile, other random draws; same seed: same.
    let again = s
        .post(&format!("{BASE}/{id}/preview"), Some(&op), ctx)
        .await;
    assert_eq!(again.body["data"], saved.body["data"]);
    let r = s
        .post(
            &format!("{BASE}/preview"),
            Some(&op),
            json!({"config": {"user": {"nameMode": "fixed"}, "computerName": {"mode": "fixed"}}}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert!(
        r.body["error"]["details"]["fields"]["config.user.password"].is_string(),
        "{}",
        r.body
    );
    let r = s
        .post(
            &format!("{BASE}/{id}/preview"),
            Some(&op),
            json!({"vm_uuid": "nope"}),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

backend_tests!(
    crud,
    viewers_read_but_do_not_write,
    legacy_shapes_are_migrated_and_unknown_fields_named,
    default_switching,
    tenant_and_owner_isolation,
    preview_is_the_builders_answer_file,
    rule_computer_name_at_most_15,
    rule_computer_name_not_all_digits,
    rule_computer_name_characters,
    rule_computer_name_no_edge_hyphen,
    rule_user_name_at_most_20,
    rule_user_name_forbidden_characters,
    rule_user_name_no_trailing_dot,
    rule_user_name_not_computer_name,
    rule_display_name_at_most_256,
    rule_password_at_most_127,
    rule_password_required_with_auto_logon,
    rule_time_zone_known,
    rule_keyboard_layout_hex,
    rule_geo_id_known,
    rule_random_count_min_le_max,
    rule_executable_plain_name,
    rule_executable_extension,
    rule_delay_at_most_600,
);

// ---------------------------------------------------------------- OpenAPI

/// The OpenAPI schemas of the profile configuration use the wire names:
/// a configuration with every field set is serialised with serde and each
/// object's keys are compared with its schema's properties (legacy fields,
/// which serialise only before migration, may be documented in addition,
/// deprecated). Every property is described. Before the fix the flag
/// structs (`EffectFlags`, `IconFlags`, `StartFolders`) were documented
/// with the Rust field names (`this_pc` for `thisPC`).
#[test]
fn openapi_config_schemas_use_the_wire_names() {
    use control_server::domains::unattend::config::{
        EffectFlags, IconFlags, IconMode, KeyboardLayout, PackageName, RandomCount, StartFolders,
    };
    let doc: Value = serde_json::from_str(&control_server::http::openapi_json()).unwrap();
    let mut c: UnattendConfig = serde_json::from_value(json!({
        "user": {"nameMode": "custom", "customName": "Operator", "displayName": "Ops", "password": "pw"},
        "computerName": {"mode": "custom", "customName": "LAB-01"}
    }))
    .unwrap();
    c.locale.keyboard_layouts = vec![KeyboardLayout {
        language: "0409".into(),
        layout: "00000409".into(),
    }];
    let pkgs = || vec![PackageName("Microsoft.BingNews".into())];
    let count = Some(RandomCount { min: 1, max: 2 });
    c.software_removal.fixed_packages = pkgs();
    c.software_removal.random_pool = pkgs();
    c.software_removal.never_remove = pkgs();
    c.software_removal.random_count = count;
    c.capability_removal.fixed_capabilities = pkgs();
    c.capability_removal.random_pool = pkgs();
    c.capability_removal.random_count = count;
    c.desktop_icons.mode = Some(IconMode::Custom);
    for k in EffectFlags::KEYS {
        c.visual_effects.effects.set(k, Some(true));
    }
    for k in IconFlags::KEYS {
        c.desktop_icons.icons.set(k, Some(false));
    }
    for k in StartFolders::KEYS {
        c.desktop_icons.start_folders.set(k, Some(true));
    }
    let wire = serde_json::to_value(&c).unwrap();
    let root = json!({"$ref": "#/components/schemas/UnattendConfig"});
    let mut problems = vec![];
    let mut checked = std::collections::BTreeSet::new();
    compare(&doc, &root, &wire, "config", &mut problems, &mut checked);
    for name in [
        "EffectFlags",
        "IconFlags",
        "StartFolders",
        "WindowsSettings",
    ] {
        assert!(checked.contains(name), "{name} not reached: {checked:?}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Follow `$ref` and the `oneOf: [null, …]` of an `Option`; the schema's
/// name when it was a reference.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> (&'a Value, Option<String>) {
    let mut name = None;
    loop {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let n = r.trim_start_matches("#/components/schemas/");
            name = Some(n.to_string());
            schema = &doc["components"]["schemas"][n];
        } else if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
            match alts.iter().find(|a| a.get("type") != Some(&json!("null"))) {
                Some(a) => schema = a,
                None => return (schema, name),
            }
        } else {
            return (schema, name);
        }
    }
}

fn described(doc: &Value, prop: &Value) -> bool {
    let has = |v: &Value| {
        v["description"]
            .as_str()
            .is_some_and(|d| !d.trim().is_empty())
    };
    has(prop)
        || prop["oneOf"]
            .as_array()
            .is_some_and(|a| a.iter().any(has))
        || prop["allOf"]
            .as_array()
            .is_some_and(|a| a.iter().any(has))
        // an inline array of a described item type documents itself
        || (prop["type"] == "array" && has(resolve(doc, &prop["items"]).0))
}

fn compare(
    doc: &Value,
    schema: &Value,
    wire: &Value,
    path: &str,
    problems: &mut Vec<String>,
    checked: &mut std::collections::BTreeSet<String>,
) {
    let (schema, name) = resolve(doc, schema);
    match wire {
        Value::Object(map) => {
            if let Some(n) = name {
                checked.insert(n);
            }
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for key in map.keys() {
                if !props.contains_key(key) {
                    problems.push(format!(
                        "{path}.{key}: sent and accepted on the wire, not in the schema (has {:?})",
                        props.keys().collect::<Vec<_>>()
                    ));
                }
            }
            for (key, prop) in &props {
                let deprecated = prop["deprecated"] == true
                    || prop["oneOf"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["deprecated"] == true));
                if !map.contains_key(key) && !deprecated {
                    problems.push(format!("{path}.{key}: in the schema, not a wire name"));
                }
                if !described(doc, prop) {
                    problems.push(format!("{path}.{key}: no description"));
                }
            }
            for (key, v) in map {
                if let Some(prop) = props.get(key) {
                    compare(doc, prop, v, &format!("{path}.{key}"), problems, checked);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                compare(
                    doc,
                    &schema["items"],
                    v,
                    &format!("{path}[{i}]"),
                    problems,
                    checked,
                );
            }
        }
        _ => {}
    }
}
