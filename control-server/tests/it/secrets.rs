//! The secrets vault (inventory §2.12, issue #13) through real HTTP: the
//! original's client-encrypted secrets, values the server seals with its
//! data key, envelopes sealed to an agent's X25519 key (by the console or by
//! `control-server admin secret put`), bindings (with `vm_settings`, §8
//! item 17), delivery to exactly the bound agent, every error code, roles
//! and tenants — and no response or log line carrying secret material.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use botmox_protocol::envelope::{self, AgentKeyPair, Binding, PublicKey};
use control_server::crypto::{Aad, DataKeys, SealedParts};
use serde_json::{json, Value};

use crate::common::{Backend, Resp, TestServer};

backend_tests!(
    client_secrets_keep_the_original_contract,
    server_sealed_values_use_the_data_key_and_stay_in_their_row,
    every_error_code_of_the_vault,
    bindings_upsert_filter_and_belong_to_their_creator,
    the_secrets_list_is_metadata_of_the_callers_secrets,
    agents_register_keys_and_receive_only_their_secrets,
    console_envelopes_are_stored_blind_and_checked_against_the_agent_key,
    tenants_never_see_each_other_secrets,
    roles_gate_every_route,
    cli_put_seals_to_the_agent_key_without_the_server_seeing_it,
    no_secret_value_in_any_log,
);

const BIN: &str = env!("CARGO_BIN_EXE_control-server");

/// The original frontend's client material (WebCrypto AES-256-GCM).
const CIPHERTEXT: &str = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJ+/8=";
const NONCE: &str = "AAECAwQFBgcICQoL";
const CLIENT_KEY: &str = "local-browser-key-v1";

/// Keys that must never appear in a user's (2xx) response.
const MATERIAL_KEYS: &[&str] = &["ciphertext", "nonce", "aad", "value", "plaintext"];

/// No response carries material: none of `secrets` anywhere in the text,
/// and no 2xx body has a material key at any depth.
#[track_caller]
fn assert_no_material(r: &Resp, secrets: &[&str]) {
    let text = r.body.to_string();
    for s in secrets {
        assert!(!text.contains(s), "material {s:?} in a response: {text}");
    }
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    assert!(
                        !MATERIAL_KEYS.contains(&k.as_str()),
                        "`{path}.{k}` in a response"
                    );
                    walk(x, &format!("{path}.{k}"));
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, path)),
            _ => {}
        }
    }
    if (200..300).contains(&r.status) {
        walk(&r.body, "");
    }
}

/// A tenant with an admin, two operators and a viewer.
struct Tenant {
    admin: String,
    op: String,
    op_id: String,
    op2: String,
    viewer: String,
}

async fn tenant(s: &TestServer, infra: &str, id: &str) -> Tenant {
    let admin = s.tenant_with_admin(infra, id).await;
    let (op_id, op) = s.user(&admin, &format!("op@{id}.test"), "operator").await;
    let (_, op2) = s.user(&admin, &format!("op2@{id}.test"), "operator").await;
    let (_, viewer) = s.user(&admin, &format!("viewer@{id}.test"), "viewer").await;
    Tenant {
        admin,
        op,
        op_id,
        op2,
        viewer,
    }
}

/// Pair and register an agent for `user`: (agent id, agent token).
async fn pair(s: &TestServer, user: &str, name: &str) -> (String, String) {
    let p = s
        .post("/api/v1/agents/pairings", Some(user), json!({"name": name}))
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let code = p.body["data"]["pairing_code"].as_str().unwrap();
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"pairing_code": code, "machine_name": name}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.body["data"]["agent"]["id"].as_str().unwrap().to_string(),
        r.body["data"]["agent_token"].as_str().unwrap().to_string(),
    )
}

async fn put_key(s: &TestServer, agent_token: &str, public_key: &str) -> Resp {
    s.call(
        "PUT",
        "/api/v1/agents/me/public-key",
        Some(agent_token),
        Some(json!({"alg": "X25519", "public_key": public_key})),
    )
    .await
}

fn client_body(label: &str) -> Value {
    json!({"label": label, "ciphertext": CIPHERTEXT, "alg": "aes-256-gcm",
           "key_id": CLIENT_KEY, "nonce": NONCE, "aad_meta": {"scope": "vmgenerator"}})
}

async fn create(s: &TestServer, token: &str, body: Value) -> Resp {
    s.post("/api/v1/secrets", Some(token), body).await
}

async fn create_ok(s: &TestServer, token: &str, body: Value) -> String {
    let r = create(s, token, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

async fn bind(s: &TestServer, token: &str, scope: (&str, &str), secret: &str, field: &str) -> Resp {
    s.post(
        "/api/v1/secrets/bindings",
        Some(token),
        json!({"scope_type": scope.0, "scope_id": scope.1, "secret_ref": secret, "field_name": field}),
    )
    .await
}

async fn fetch(s: &TestServer, agent_token: &str, id: &str) -> Resp {
    s.get(
        &format!("/api/v1/agents/me/secrets/{id}"),
        Some(agent_token),
    )
    .await
}

/// Open a delivered secret with `key`: the envelope is bound to the
/// secret id and the agent id the response names.
fn open(r: &Resp, key: &AgentKeyPair) -> Result<Vec<u8>, envelope::EnvelopeError> {
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["alg"], envelope::ALG);
    assert!(d.get("ciphertext").is_none() && d.get("value").is_none());
    key.open(
        d["envelope"].as_str().unwrap(),
        Binding {
            secret_id: d["secret_id"].as_str().unwrap(),
            agent_id: d["agent_id"].as_str().unwrap(),
        },
    )
    .map(|v| v.to_vec())
}

/// The stored row's (kind, alg, key_id, nonce, ciphertext, aad).
async fn stored(
    s: &TestServer,
    tenant: &str,
    id: &str,
) -> (String, String, String, String, String, String) {
    sqlx::query_as(
        "SELECT kind, alg, key_id, nonce, ciphertext, aad FROM secrets WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(s.db.raw_pool())
    .await
    .expect("stored secret")
}

// ---------------------------------------------------------------- client

async fn client_secrets_keep_the_original_contract(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "vault").await;

    let r = create(&s, &t.op, client_body("browser secret")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_no_material(&r, &[CIPHERTEXT, NONCE]);
    let m = &r.body["data"];
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["tenant_id"], "vault");
    assert_eq!(m["label"], "browser secret");
    assert_eq!(m["kind"], "client");
    assert_eq!(m["alg"], "aes-256-gcm");
    assert_eq!(m["key_id"], CLIENT_KEY);
    assert_eq!(m["aad_meta"], json!({"scope": "vmgenerator"}));
    assert_eq!(m["material_version"], 1);
    assert_eq!(m["rotated_at"], Value::Null);
    assert_eq!(m["agent_id"], Value::Null);
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    // The row holds exactly what the client sent.
    let (kind, alg, key_id, nonce, ct, aad) = stored(&s, "vault", &id).await;
    assert_eq!(
        (
            kind.as_str(),
            alg.as_str(),
            key_id.as_str(),
            nonce.as_str(),
            ct.as_str()
        ),
        ("client", "aes-256-gcm", CLIENT_KEY, NONCE, CIPHERTEXT)
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&aad).unwrap(),
        br#"{"scope":"vmgenerator"}"#
    );

    // alg defaults to AES-256-GCM, aad_meta to {}; a client-chosen id wins.
    let r = create(
        &s,
        &t.op,
        json!({"id": "sec-mine_1", "label": "x", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["id"], "sec-mine_1");
    assert_eq!(r.body["data"]["alg"], "AES-256-GCM");
    assert_eq!(r.body["data"]["aad_meta"], json!({}));
    create(
        &s,
        &t.op2,
        json!({"id": "sec-mine_1", "label": "y", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE}),
    )
    .await
    .assert_error(409, "CONFLICT");

    // meta: the creator and admins; never the material.
    for token in [&t.op, &t.admin, &infra] {
        let r = s
            .get(&format!("/api/v1/secrets/{id}/meta"), Some(token))
            .await;
        if token == &infra {
            // infra's own tenant is `default`: not found there.
            r.assert_error(404, "SECRET_NOT_FOUND");
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"], *m);
        assert_no_material(&r, &[CIPHERTEXT, NONCE]);
    }
    for token in [&t.op2, &t.viewer] {
        s.get(&format!("/api/v1/secrets/{id}/meta"), Some(token))
            .await
            .assert_error(404, "SECRET_NOT_FOUND");
    }

    // rotate: version + 1, rotated_at, aad_meta kept when left out.
    let new_ct = "AAAA/+//";
    let r = s
        .post(
            &format!("/api/v1/secrets/{id}/rotate"),
            Some(&t.op),
            json!({"ciphertext": new_ct, "key_id": "local-browser-key-v2", "nonce": "bm9uY2Uy"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_material(&r, &[new_ct, "bm9uY2Uy"]);
    let d = &r.body["data"];
    assert_eq!(d["material_version"], 2);
    assert_eq!(d["key_id"], "local-browser-key-v2");
    assert_eq!(d["alg"], "AES-256-GCM");
    assert_eq!(d["aad_meta"], json!({"scope": "vmgenerator"}));
    assert_eq!(d["created_at"], m["created_at"]);
    assert!(d["rotated_at"].is_string());
    let (_, _, _, nonce, ct, _) = stored(&s, "vault", &id).await;
    assert_eq!((nonce.as_str(), ct.as_str()), ("bm9uY2Uy", new_ct));
    // Admins rotate anyone's; the other operator does not see it.
    let r = s
        .post(
            &format!("/api/v1/secrets/{id}/rotate"),
            Some(&t.admin),
            json!({"ciphertext": CIPHERTEXT, "key_id": CLIENT_KEY, "nonce": NONCE, "aad_meta": {}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["material_version"], 3);
    assert_eq!(r.body["data"]["aad_meta"], json!({}));
    s.post(
        &format!("/api/v1/secrets/{id}/rotate"),
        Some(&t.op2),
        json!({"ciphertext": CIPHERTEXT, "key_id": CLIENT_KEY, "nonce": NONCE}),
    )
    .await
    .assert_error(404, "SECRET_NOT_FOUND");
    s.stop().await;
}

// ---------------------------------------------------------------- server

async fn server_sealed_values_use_the_data_key_and_stay_in_their_row(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "sealed").await;
    let plain = "server-sealed-plaintext-7f3a";
    let r = create(&s, &t.op, json!({"label": "db", "value": plain})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_no_material(&r, &[plain]);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["data"]["kind"], "server");
    assert_eq!(r.body["data"]["alg"], "AES-256-GCM");

    // Sealed with the data key of the data dir, bound to tenant and id.
    let keys =
        DataKeys::parse(&std::fs::read_to_string(s.data.path().join("data-key")).unwrap()).unwrap();
    assert_eq!(r.body["data"]["key_id"], keys.active_key_id());
    let (kind, _, key_id, nonce, ct, aad) = stored(&s, "sealed", &id).await;
    assert_eq!(kind, "server");
    assert!(
        !ct.contains(plain)
            && !URL_SAFE_NO_PAD
                .decode(&ct)
                .unwrap()
                .windows(plain.len())
                .any(|w| w == plain.as_bytes())
    );
    let parts = SealedParts {
        key_id,
        nonce,
        ciphertext: ct,
    };
    let aad_of = |id: &'static str| Aad {
        purpose: "secrets.value",
        tenant: "sealed",
        id,
    };
    let here = Aad {
        purpose: "secrets.value",
        tenant: "sealed",
        id: &id,
    };
    assert_eq!(keys.open(here, &parts.join()).unwrap(), plain.as_bytes());
    assert_eq!(URL_SAFE_NO_PAD.decode(&aad).unwrap(), here.bytes());
    // Copied to another row or tenant, it does not open.
    assert!(keys.open(aad_of("another-row"), &parts.join()).is_err());
    assert!(keys
        .open(
            Aad {
                tenant: "other",
                ..here
            },
            &parts.join()
        )
        .is_err());

    // Rotating to a new value reseals; rotating to client material changes the kind.
    let r = s
        .post(
            &format!("/api/v1/secrets/{id}/rotate"),
            Some(&t.op),
            json!({"value": "second-plaintext-91c2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_material(&r, &["second-plaintext-91c2"]);
    let (_, _, key_id, nonce, ct, _) = stored(&s, "sealed", &id).await;
    let reopened = keys
        .open(
            here,
            &SealedParts {
                key_id,
                nonce,
                ciphertext: ct,
            }
            .join(),
        )
        .unwrap();
    assert_eq!(reopened, b"second-plaintext-91c2");
    let r = s
        .post(
            &format!("/api/v1/secrets/{id}/rotate"),
            Some(&t.op),
            json!({"ciphertext": CIPHERTEXT, "key_id": CLIENT_KEY, "nonce": NONCE}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["kind"], "client");
    assert_eq!(r.body["data"]["material_version"], 3);
    s.stop().await;
}

// ---------------------------------------------------------------- errors

async fn every_error_code_of_the_vault(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "codes").await;
    let plain = "plaintext-in-a-bad-request";
    let env = {
        let k = AgentKeyPair::generate().unwrap();
        envelope::seal(
            k.public(),
            Binding {
                secret_id: "e",
                agent_id: "a",
            },
            b"x",
        )
        .unwrap()
    };
    // SECRETS_INVALID_CREATE_BODY, naming the field.
    let bad_creates: Vec<(Value, &str)> = vec![
        (
            json!({"ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE}),
            "label",
        ),
        (json!({"label": "", "value": plain}), "label"),
        (json!({"label": "x".repeat(201), "value": plain}), "label"),
        (json!({"label": "bad\u{0}label", "value": plain}), "label"),
        (json!({"label": "l"}), "ciphertext"),
        (
            json!({"label": "l", "value": plain, "ciphertext": CIPHERTEXT}),
            "value",
        ),
        (
            json!({"label": "l", "value": plain, "key_id": "k"}),
            "key_id",
        ),
        (json!({"label": "l", "value": ""}), "value"),
        (json!({"label": "l", "value": "v".repeat(65_537)}), "value"),
        (
            json!({"label": "l", "ciphertext": "not base64!", "key_id": "k", "nonce": NONCE}),
            "ciphertext",
        ),
        (
            json!({"label": "l", "ciphertext": "A".repeat(262_145), "key_id": "k", "nonce": NONCE}),
            "ciphertext",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "nonce": NONCE}),
            "key_id",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k"}),
            "nonce",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE, "alg": "x".repeat(51)}),
            "alg",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE, "agent_id": "a"}),
            "agent_id",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE, "aad_meta": []}),
            "aad_meta",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE, "aad_meta": {"x": "y".repeat(17_000)}}),
            "aad_meta",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE, "id": "no spaces"}),
            "id",
        ),
        (
            json!({"label": "l", "ciphertext": CIPHERTEXT, "key_id": "k", "nonce": NONCE, "extra": 1}),
            "extra",
        ),
        (json!({"label": "l", "value": null}), "value"),
        // agent envelopes: agent_id and id are required, the envelope must parse
        (
            json!({"id": "e", "label": "l", "ciphertext": env, "alg": envelope::ALG, "key_id": "x25519:0"}),
            "agent_id",
        ),
        (
            json!({"label": "l", "ciphertext": env, "alg": envelope::ALG, "key_id": "x25519:0", "agent_id": "a"}),
            "id",
        ),
        (
            json!({"id": "e", "label": "l", "ciphertext": CIPHERTEXT, "alg": envelope::ALG, "key_id": "x25519:0", "agent_id": "a"}),
            "ciphertext",
        ),
        (
            json!({"id": "e", "label": "l", "ciphertext": env, "alg": envelope::ALG, "key_id": "x25519:0", "agent_id": "a", "nonce": NONCE}),
            "nonce",
        ),
    ];
    for (body, field) in bad_creates {
        let r = create(&s, &t.op, body.clone()).await;
        r.assert_error(400, "SECRETS_INVALID_CREATE_BODY");
        let fields = r.body["error"]["details"]["fields"].as_object().unwrap();
        assert!(
            fields
                .keys()
                .any(|k| k == field || k.starts_with(&format!("{field}."))),
            "{body}: expected a `{field}` error, got {fields:?}"
        );
        assert!(!r.body.to_string().contains(plain), "{}", r.body);
    }
    // Not JSON at all.
    let r = s
        .http
        .post(s.url("/api/v1/secrets"))
        .bearer_auth(&t.op)
        .header("content-type", "application/json")
        .body("{\"label\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "MALFORMED_JSON"
    );

    let id = create_ok(&s, &t.op, json!({"label": "ok", "value": plain})).await;
    // SECRETS_INVALID_ID on every route with an id.
    for path in [
        "/api/v1/secrets/bad%20id/meta".to_string(),
        format!("/api/v1/secrets/{}/meta", "x".repeat(101)),
    ] {
        s.get(&path, Some(&t.op))
            .await
            .assert_error(400, "SECRETS_INVALID_ID");
    }
    s.post(
        "/api/v1/secrets/bad%21id/rotate",
        Some(&t.op),
        json!({"value": "v"}),
    )
    .await
    .assert_error(400, "SECRETS_INVALID_ID");
    let (_, agent_token) = pair(&s, &t.op, "codes-agent").await;
    fetch(&s, &agent_token, "bad%24id")
        .await
        .assert_error(400, "SECRETS_INVALID_ID");
    // SECRET_NOT_FOUND
    s.get("/api/v1/secrets/no-such-secret/meta", Some(&t.op))
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    s.post(
        "/api/v1/secrets/no-such-secret/rotate",
        Some(&t.op),
        json!({"value": "v"}),
    )
    .await
    .assert_error(404, "SECRET_NOT_FOUND");
    bind(&s, &t.op, ("bot", "b1"), "no-such-secret", "password")
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    fetch(&s, &agent_token, &id)
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    // SECRETS_INVALID_ROTATE_BODY
    for (body, field) in [
        (json!({}), "ciphertext"),
        (json!({"value": "v", "label": "renamed"}), "label"),
        (json!({"value": "v", "id": "other"}), "id"),
        (json!({"ciphertext": CIPHERTEXT, "key_id": "k"}), "nonce"),
        (json!({"value": "v", "nonce": NONCE}), "nonce"),
        (json!({"value": "v", "unknown": true}), "unknown"),
    ] {
        let r = s
            .post(
                &format!("/api/v1/secrets/{id}/rotate"),
                Some(&t.op),
                body.clone(),
            )
            .await;
        r.assert_error(400, "SECRETS_INVALID_ROTATE_BODY");
        assert!(
            r.body["error"]["details"]["fields"]
                .as_object()
                .unwrap()
                .contains_key(field),
            "{body}: {}",
            r.body
        );
    }
    // SECRETS_INVALID_BINDING_CREATE_BODY
    for (body, field) in [
        (
            json!({"scope_type": "planet", "scope_id": "p", "secret_ref": id}),
            "scope_type",
        ),
        (
            json!({"scope_type": "bot", "scope_id": "", "secret_ref": id}),
            "scope_id",
        ),
        (
            json!({"scope_type": "bot", "scope_id": "x".repeat(201), "secret_ref": id}),
            "scope_id",
        ),
        (
            json!({"scope_type": "bot", "scope_id": "b", "secret_ref": "bad ref"}),
            "secret_ref",
        ),
        (
            json!({"scope_type": "bot", "scope_id": "b", "secret_ref": id, "field_name": "a\nb"}),
            "field_name",
        ),
        (json!({"scope_type": "bot", "scope_id": "b"}), "body"),
        (
            json!({"scope_type": "bot", "scope_id": "b", "secret_ref": id, "x": 1}),
            "x",
        ),
    ] {
        let r = s
            .post("/api/v1/secrets/bindings", Some(&t.op), body.clone())
            .await;
        r.assert_error(400, "SECRETS_INVALID_BINDING_CREATE_BODY");
        assert!(
            r.body["error"]["details"]["fields"]
                .as_object()
                .unwrap()
                .contains_key(field),
            "{body}: {}",
            r.body
        );
    }
    // SECRETS_INVALID_BINDINGS_LIST_QUERY
    for q in ["scope_type=planet", "limit=0", "bogus=1", "sort=secret_ref"] {
        s.get(&format!("/api/v1/secrets/bindings?{q}"), Some(&t.op))
            .await
            .assert_error(400, "SECRETS_INVALID_BINDINGS_LIST_QUERY");
    }
    s.stop().await;
}

// ---------------------------------------------------------------- bindings

async fn bindings_upsert_filter_and_belong_to_their_creator(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "binds").await;
    let s1 = create_ok(&s, &t.op, client_body("one")).await;
    let s2 = create_ok(&s, &t.op, client_body("two")).await;
    let other = create_ok(&s, &t.op2, client_body("theirs")).await;

    // §8 item 17: the console's `vm_settings/vmgenerator` scope is accepted.
    let r = bind(
        &s,
        &t.op,
        ("vm_settings", "vmgenerator"),
        &s1,
        "proxmox.password",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_no_material(&r, &[CIPHERTEXT]);
    let first = r.body["data"].clone();
    assert_eq!(first["scope_type"], "vm_settings");
    assert_eq!(first["scope_id"], "vmgenerator");
    assert_eq!(first["secret_ref"], s1.as_str());
    assert_eq!(first["field_name"], "proxmox.password");
    assert_eq!(first["tenant_id"], "binds");
    for scope in ["bot", "vm", "tenant"] {
        let r = bind(&s, &t.op, (scope, "x1"), &s2, "").await;
        assert_eq!(r.status, 201, "{scope}: {}", r.body);
        assert_eq!(r.body["data"]["field_name"], "");
    }
    // Upsert on (scope, field): same binding, new secret, created_at kept.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = bind(
        &s,
        &t.op,
        ("vm_settings", "vmgenerator"),
        &s2,
        "proxmox.password",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["id"], first["id"]);
    assert_eq!(r.body["data"]["secret_ref"], s2.as_str());
    assert_eq!(r.body["data"]["created_at"], first["created_at"]);
    // Another operator may neither use this secret nor take over the field.
    bind(&s, &t.op2, ("bot", "b9"), &s1, "p")
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    bind(
        &s,
        &t.op2,
        ("vm_settings", "vmgenerator"),
        &other,
        "proxmox.password",
    )
    .await
    .assert_error(409, "CONFLICT");
    // An admin may.
    let r = bind(
        &s,
        &t.admin,
        ("vm_settings", "vmgenerator"),
        &other,
        "proxmox.password",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["secret_ref"], other.as_str());

    // Lists: own (admins: all), newest first, filters of the original.
    let mine = list(&s, &t.op, "").await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 4);
    assert_eq!(mine["meta"]["total"], 4);
    let times: Vec<&str> = mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let filtered = list(&s, &t.op, "?scope_type=vm_settings&scope_id=vmgenerator").await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["data"][0]["secret_ref"], other.as_str());
    let by_ref = list(&s, &t.admin, &format!("?secret_ref={s2}")).await;
    assert_eq!(by_ref["data"].as_array().unwrap().len(), 3);
    assert_eq!(list(&s, &t.op2, "").await["data"], json!([]));
    assert_eq!(list(&s, &t.viewer, "").await["data"], json!([]));
    assert_eq!(
        list(&s, &t.admin, "").await["data"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    s.stop().await;
}

/// `GET /secrets`: metadata of the caller's own secrets (admins: the
/// tenant's), filtered, searched and paged by the list kit, never material.
async fn the_secrets_list_is_metadata_of_the_callers_secrets(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "lists").await;
    let one = create_ok(&s, &t.op, client_body("alpha db")).await;
    let two = create_ok(
        &s,
        &t.op,
        json!({"id": "sealed-1", "label": "beta key", "value": "plain-value-77"}),
    )
    .await;
    let theirs = create_ok(&s, &t.op2, client_body("gamma")).await;
    let ids = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let get = |token: String, q: &'static str| {
        let s = &s;
        async move {
            let r = s.get(&format!("/api/v1/secrets{q}"), Some(&token)).await;
            assert_no_material(&r, &[CIPHERTEXT, "plain-value-77"]);
            r
        }
    };
    // newest first, only the caller's own
    let r = get(t.op.clone(), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r), [two.clone(), one.clone()]);
    assert_eq!(r.body["meta"]["total"], 2, "{}", r.body);
    assert_eq!(r.body["data"][0]["kind"], "server");
    assert_eq!(r.body["data"][1]["label"], "alpha db");
    // the admin: the tenant's; filters, search, sort
    let r = get(t.admin.clone(), "?sort=label&order=asc").await;
    assert_eq!(ids(&r), [one.clone(), two.clone(), theirs.clone()]);
    let r = get(t.admin.clone(), "?kind=client&q=gam").await;
    assert_eq!(ids(&r), vec![theirs.clone()]);
    let r = get(t.admin.clone(), "?limit=1&page=2&sort=label&order=asc").await;
    assert_eq!(ids(&r), vec![two.clone()]);
    // a viewer sees their own: none
    let r = get(t.viewer.clone(), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(ids(&r).is_empty());
    // another tenant sees nothing of these
    let r = get(infra.clone(), "").await;
    assert!(ids(&r)
        .iter()
        .all(|id| ![&one, &two, &theirs].contains(&id)));
    // a query the kit refuses names the field
    let r = get(t.op.clone(), "?sort=ciphertext").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "SECRETS_INVALID_LIST_QUERY");
    assert!(
        r.body["error"]["details"]["fields"]["sort"].is_string(),
        "{}",
        r.body
    );
    s.stop().await;
}

/// `GET /secrets/bindings{q}` as `token`: the body (checked for material).
async fn list(s: &TestServer, token: &str, q: &str) -> Value {
    let r = s
        .get(&format!("/api/v1/secrets/bindings{q}"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_material(&r, &[CIPHERTEXT]);
    r.body
}

// ---------------------------------------------------------------- agents

async fn agents_register_keys_and_receive_only_their_secrets(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "deliver").await;
    let (agent, agent_token) = pair(&s, &t.op, "agent-1").await;
    let (agent2, agent2_token) = pair(&s, &t.op, "agent-2").await;
    let (theirs, _) = pair(&s, &t.op2, "agent-of-op2").await;
    let plain = "the-agent-secret-5d2e";
    let secret = create_ok(&s, &t.op, json!({"label": "pve password", "value": plain})).await;
    let r = bind(&s, &t.op, ("agent", &agent), &secret, "proxmox.password").await;
    assert_eq!(r.status, 201, "{}", r.body);

    // No key yet: AGENT_PUBLIC_KEY_MISSING; the agent view has none.
    fetch(&s, &agent_token, &secret)
        .await
        .assert_error(409, "AGENT_PUBLIC_KEY_MISSING");
    let view = s.get(&format!("/api/v1/agents/{agent}"), Some(&t.op)).await;
    assert_eq!(view.body["data"]["public_key"], Value::Null);

    // Key registration: validated, idempotent, shown on the agent.
    for (alg, key) in [
        (
            "RSA",
            "ehpOcJvwhaxJSroEabmx7aCrH3ixaqu3n_7akGI-hSI".to_string(),
        ),
        ("X25519", "too-short".to_string()),
        ("X25519", URL_SAFE_NO_PAD.encode([0u8; 32])),
    ] {
        s.call(
            "PUT",
            "/api/v1/agents/me/public-key",
            Some(&agent_token),
            Some(json!({"alg": alg, "public_key": key})),
        )
        .await
        .assert_error(400, "VALIDATION_ERROR");
    }
    let key = AgentKeyPair::generate().unwrap();
    let r = put_key(&s, &agent_token, &key.public().to_base64()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["changed"], true);
    assert_eq!(r.body["data"]["key_id"], key.public().key_id());
    assert_eq!(r.body["data"]["agent_id"], agent.as_str());
    let again = put_key(&s, &agent_token, &key.public().to_base64()).await;
    assert_eq!(again.body["data"]["changed"], false);
    assert_eq!(
        again.body["data"]["registered_at"],
        r.body["data"]["registered_at"]
    );
    let view = s.get(&format!("/api/v1/agents/{agent}"), Some(&t.op)).await;
    assert_eq!(view.body["data"]["public_key"], key.public().to_base64());
    assert_eq!(view.body["data"]["public_key_id"], key.public().key_id());
    // Users cannot register keys.
    s.call(
        "PUT",
        "/api/v1/agents/me/public-key",
        Some(&t.op),
        Some(json!({"alg": "X25519", "public_key": key.public().to_base64()})),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // The server-sealed secret arrives sealed to the agent's key only.
    let r = fetch(&s, &agent_token, &secret).await;
    assert_no_material(&r, &[plain]);
    assert_eq!(r.body["data"]["key_id"], key.public().key_id());
    assert_eq!(r.body["data"]["label"], "pve password");
    assert_eq!(r.body["data"]["material_version"], 1);
    assert_eq!(open(&r, &key).unwrap(), plain.as_bytes());
    let stranger = AgentKeyPair::generate().unwrap();
    assert!(open(&r, &stranger).is_err());
    // …and bound to this agent: presented for the other agent it does not open.
    let env = r.body["data"]["envelope"].as_str().unwrap();
    assert!(key
        .open(
            env,
            Binding {
                secret_id: &secret,
                agent_id: &agent2
            }
        )
        .is_err());

    // Another agent of the same owner: not bound, not found.
    let key2 = AgentKeyPair::generate().unwrap();
    assert_eq!(
        put_key(&s, &agent2_token, &key2.public().to_base64())
            .await
            .status,
        200
    );
    fetch(&s, &agent2_token, &secret)
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    // A user token on the agents' route; an agent token on the users' routes.
    s.get(&format!("/api/v1/agents/me/secrets/{secret}"), Some(&t.op))
        .await
        .assert_error(403, "FORBIDDEN");
    s.get(
        &format!("/api/v1/secrets/{secret}/meta"),
        Some(&agent_token),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // Binding to agents: the caller's own (admins: any), active.
    bind(&s, &t.op, ("agent", &theirs), &secret, "p")
        .await
        .assert_error(403, "AGENT_OWNER_MISMATCH");
    bind(
        &s,
        &t.op,
        ("agent", "00000000-0000-7000-8000-000000000000"),
        &secret,
        "p",
    )
    .await
    .assert_error(404, "AGENT_NOT_FOUND");
    sqlx::query("UPDATE agents SET owner_user_id = NULL WHERE id = $1")
        .bind(&theirs)
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    bind(&s, &t.op, ("agent", &theirs), &secret, "p")
        .await
        .assert_error(403, "AGENT_OWNER_UNASSIGNED");
    // A client-encrypted secret cannot be delivered to an agent.
    let client = create_ok(&s, &t.op, client_body("browser")).await;
    bind(&s, &t.op, ("agent", &agent), &client, "browser")
        .await
        .assert_error(409, "SECRET_NOT_DELIVERABLE");

    // Rotation is delivered (new version); rotated to client material it is not deliverable.
    let r = s
        .post(
            &format!("/api/v1/secrets/{secret}/rotate"),
            Some(&t.op),
            json!({"value": "rotated-agent-secret"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = fetch(&s, &agent_token, &secret).await;
    assert_eq!(r.body["data"]["material_version"], 2);
    assert_eq!(open(&r, &key).unwrap(), b"rotated-agent-secret");
    // A new agent key: the server-sealed secret follows it.
    let new_key = AgentKeyPair::generate().unwrap();
    let r = put_key(&s, &agent_token, &new_key.public().to_base64()).await;
    assert_eq!(r.body["data"]["changed"], true);
    let r = fetch(&s, &agent_token, &secret).await;
    assert_eq!(open(&r, &new_key).unwrap(), b"rotated-agent-secret");
    assert!(open(&r, &key).is_err());
    let r = s
        .post(
            &format!("/api/v1/secrets/{secret}/rotate"),
            Some(&t.op),
            json!({"ciphertext": CIPHERTEXT, "key_id": CLIENT_KEY, "nonce": NONCE}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fetch(&s, &agent_token, &secret)
        .await
        .assert_error(409, "SECRET_NOT_DELIVERABLE");

    // A revoked agent gets nothing and receives no new bindings.
    let r = s
        .post(
            &format!("/api/v1/agents/{agent2}/revoke"),
            Some(&t.admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let server_secret = create_ok(&s, &t.op, json!({"label": "v", "value": "v"})).await;
    bind(&s, &t.op, ("agent", &agent2), &server_secret, "p")
        .await
        .assert_error(403, "AGENT_REVOKED");
    fetch(&s, &agent2_token, &server_secret)
        .await
        .assert_error(403, "AGENT_REVOKED");
    s.stop().await;
}

async fn console_envelopes_are_stored_blind_and_checked_against_the_agent_key(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "blind").await;
    let (agent, agent_token) = pair(&s, &t.op, "blind-agent").await;
    let (agent2, agent2_token) = pair(&s, &t.op, "blind-agent-2").await;
    let body = |id: &str, env: &str, agent: &str, key_id: &str| {
        json!({"id": id, "label": "sealed by the console", "ciphertext": env,
               "alg": envelope::ALG, "agent_id": agent, "key_id": key_id})
    };
    let plain = b"sealed-in-the-browser-0b8c";
    // The agent has no key yet.
    let someone = AgentKeyPair::generate().unwrap();
    let early = envelope::seal(
        someone.public(),
        Binding {
            secret_id: "early",
            agent_id: &agent,
        },
        plain,
    )
    .unwrap();
    create(
        &s,
        &t.op,
        body("early", &early, &agent, &someone.public().key_id()),
    )
    .await
    .assert_error(409, "AGENT_PUBLIC_KEY_MISSING");

    let key = AgentKeyPair::generate().unwrap();
    assert_eq!(
        put_key(&s, &agent_token, &key.public().to_base64())
            .await
            .status,
        200
    );
    let key2 = AgentKeyPair::generate().unwrap();
    assert_eq!(
        put_key(&s, &agent2_token, &key2.public().to_base64())
            .await
            .status,
        200
    );
    // What the console does: read the agent's key, choose the id, seal.
    let view = s.get(&format!("/api/v1/agents/{agent}"), Some(&t.op)).await;
    let public = PublicKey::from_base64(view.body["data"]["public_key"].as_str().unwrap()).unwrap();
    let key_id = view.body["data"]["public_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = "console-secret-1";
    let env = envelope::seal(
        &public,
        Binding {
            secret_id: id,
            agent_id: &agent,
        },
        plain,
    )
    .unwrap();
    // Sealed to another key than the agent's current one.
    create(
        &s,
        &t.op,
        body(id, &env, &agent, &someone.public().key_id()),
    )
    .await
    .assert_error(409, "AGENT_PUBLIC_KEY_MISMATCH");
    let r = create(&s, &t.op, body(id, &env, &agent, &key_id)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_no_material(&r, &[&env]);
    assert_eq!(r.body["data"]["kind"], "agent");
    assert_eq!(r.body["data"]["agent_id"], agent.as_str());
    assert_eq!(r.body["data"]["key_id"], key_id.as_str());
    // Stored as sent: the server has only the envelope.
    let (kind, alg, stored_key, nonce, ct, aad) = stored(&s, "blind", id).await;
    assert_eq!((kind.as_str(), alg.as_str()), ("agent", envelope::ALG));
    assert_eq!(
        (stored_key.as_str(), ct.as_str()),
        (key_id.as_str(), env.as_str())
    );
    assert_eq!(nonce, envelope::Parts::parse(&env).unwrap().nonce_base64());
    assert_eq!(
        URL_SAFE_NO_PAD.decode(aad).unwrap(),
        Binding {
            secret_id: id,
            agent_id: &agent
        }
        .aad()
    );

    // Delivered to that agent, byte for byte; binding it elsewhere is refused.
    assert_eq!(
        bind(&s, &t.op, ("agent", &agent), id, "token").await.status,
        201
    );
    let r = fetch(&s, &agent_token, id).await;
    assert_eq!(r.body["data"]["envelope"], env.as_str());
    assert_eq!(open(&r, &key).unwrap(), plain);
    bind(&s, &t.op, ("agent", &agent2), id, "token")
        .await
        .assert_error(409, "SECRET_NOT_DELIVERABLE");
    fetch(&s, &agent2_token, id)
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    // Even if a binding points another agent at it, the envelope is not for it.
    sqlx::query(
        "INSERT INTO secret_bindings (tenant_id, id, scope_type, scope_id, secret_ref, field_name, created_by, created_at, updated_at)
         VALUES ('blind', 'forged', 'agent', $1, $2, 'forged', $3, 0, 0)",
    )
    .bind(&agent2)
    .bind(id)
    .bind(&t.op_id)
    .execute(s.db.raw_pool())
    .await
    .unwrap();
    fetch(&s, &agent2_token, id)
        .await
        .assert_error(409, "SECRET_NOT_DELIVERABLE");

    // Rotation with a new envelope; then the agent replaces its key: the
    // old envelope is no longer deliverable (it must be put again).
    let env2 = envelope::seal(
        &public,
        Binding {
            secret_id: id,
            agent_id: &agent,
        },
        b"second",
    )
    .unwrap();
    let r = s
        .post(
            &format!("/api/v1/secrets/{id}/rotate"),
            Some(&t.op),
            json!({"ciphertext": env2, "alg": envelope::ALG, "agent_id": agent, "key_id": key_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        open(&fetch(&s, &agent_token, id).await, &key).unwrap(),
        b"second"
    );
    let replaced = AgentKeyPair::generate().unwrap();
    assert_eq!(
        put_key(&s, &agent_token, &replaced.public().to_base64())
            .await
            .status,
        200
    );
    fetch(&s, &agent_token, id)
        .await
        .assert_error(409, "SECRET_NOT_DELIVERABLE");
    s.stop().await;
}

// ---------------------------------------------------------------- tenants, roles

async fn tenants_never_see_each_other_secrets(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let a = tenant(&s, &infra, "tenant-a").await;
    let bb = tenant(&s, &infra, "tenant-b").await;
    let (agent_a, agent_a_token) = pair(&s, &a.op, "agent-a").await;
    let (agent_b, agent_b_token) = pair(&s, &bb.op, "agent-b").await;
    for token in [&agent_a_token, &agent_b_token] {
        let k = AgentKeyPair::generate().unwrap();
        assert_eq!(
            put_key(&s, token, &k.public().to_base64()).await.status,
            200
        );
    }
    let secret = create_ok(
        &s,
        &a.admin,
        json!({"id": "same-id", "label": "a", "value": "value-of-a"}),
    )
    .await;
    assert_eq!(
        bind(&s, &a.admin, ("agent", &agent_a), &secret, "p")
            .await
            .status,
        201
    );
    // Client ids are per tenant: B may use the same id.
    let r = create(
        &s,
        &bb.admin,
        json!({"id": "same-id", "label": "b", "value": "value-of-b"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["tenant_id"], "tenant-b");
    // B's admin reads B's, never A's.
    let r = s.get("/api/v1/secrets/same-id/meta", Some(&bb.admin)).await;
    assert_eq!(r.body["data"]["label"], "b");
    let r = s
        .post(
            "/api/v1/secrets/same-id/rotate",
            Some(&bb.admin),
            json!({"value": "b-rotated"}),
        )
        .await;
    assert_eq!(r.body["data"]["tenant_id"], "tenant-b");
    let r = s.get("/api/v1/secrets/same-id/meta", Some(&a.admin)).await;
    assert_eq!(r.body["data"]["material_version"], 1, "A's untouched");
    // A's agent in B's binding: not found; B's agent fetching A's secret: not found.
    bind(&s, &bb.admin, ("agent", &agent_a), "same-id", "p")
        .await
        .assert_error(404, "AGENT_NOT_FOUND");
    bind(&s, &a.admin, ("agent", &agent_b), "same-id", "p")
        .await
        .assert_error(404, "AGENT_NOT_FOUND");
    let only_a = create_ok(&s, &a.admin, json!({"label": "only a", "value": "x"})).await;
    s.get(&format!("/api/v1/secrets/{only_a}/meta"), Some(&bb.admin))
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    s.post(
        &format!("/api/v1/secrets/{only_a}/rotate"),
        Some(&bb.admin),
        json!({"value": "x"}),
    )
    .await
    .assert_error(404, "SECRET_NOT_FOUND");
    bind(&s, &bb.admin, ("bot", "b"), &only_a, "p")
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    fetch(&s, &agent_b_token, &only_a)
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    // B's agent asks for "same-id": B's secret exists but is not bound to it.
    fetch(&s, &agent_b_token, "same-id")
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    assert_eq!(fetch(&s, &agent_a_token, "same-id").await.status, 200);
    let list = s.get("/api/v1/secrets/bindings", Some(&bb.admin)).await;
    assert_eq!(list.body["data"], json!([]));
    // infra's own tenant is `default`: it does not see either.
    s.get(&format!("/api/v1/secrets/{only_a}/meta"), Some(&infra))
        .await
        .assert_error(404, "SECRET_NOT_FOUND");
    s.stop().await;
}

async fn roles_gate_every_route(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "roles").await;
    let (_, agent_token) = pair(&s, &t.op, "roles-agent").await;
    let id = create_ok(&s, &t.op, json!({"label": "l", "value": "v"})).await;
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/v1/secrets".into(),
            Some(json!({"label": "l", "value": "v"})),
        ),
        ("GET", format!("/api/v1/secrets/{id}/meta"), None),
        (
            "POST",
            format!("/api/v1/secrets/{id}/rotate"),
            Some(json!({"value": "v2"})),
        ),
        (
            "POST",
            "/api/v1/secrets/bindings".into(),
            Some(json!({"scope_type": "bot", "scope_id": "b", "secret_ref": id})),
        ),
        ("GET", "/api/v1/secrets/bindings".into(), None),
    ];
    for (method, path, body) in &routes {
        let call = |token: Option<String>| {
            let body = body.clone();
            let s = &s;
            async move { s.call(method, path, token.as_deref(), body).await }
        };
        call(None).await.assert_error(401, "UNAUTHORIZED");
        call(Some(agent_token.clone()))
            .await
            .assert_error(403, "FORBIDDEN");
        let viewer = call(Some(t.viewer.clone())).await;
        if *method == "POST" {
            viewer.assert_error(403, "FORBIDDEN");
        } else if path.ends_with("/meta") {
            viewer.assert_error(404, "SECRET_NOT_FOUND");
        } else {
            assert_eq!(viewer.status, 200, "{path}: {}", viewer.body);
        }
        let op = call(Some(t.op.clone())).await;
        assert!(
            (200..300).contains(&op.status),
            "{method} {path}: {}",
            op.body
        );
        assert_no_material(&op, &["v2"]);
    }
    s.call("PUT", "/api/v1/agents/me/public-key", None, Some(json!({})))
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.get(&format!("/api/v1/agents/me/secrets/{id}"), None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.stop().await;
}

// ---------------------------------------------------------------- the CLI

/// `control-server admin …` on the test server's database and data dir.
fn cli(s: &TestServer, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(s.data.path())
        .arg("--database-url")
        .arg(s.database_url())
        .env("BOTMOX_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run control-server admin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn cli_put_seals_to_the_agent_key_without_the_server_seeing_it(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let t = tenant(&s, &infra, "cli").await;
    let (agent, agent_token) = pair(&s, &t.op, "cli-agent").await;
    let plain = "cli-plaintext-4e1d with spaces\nand a second line";

    // No key registered yet; unknown agent; nothing on stdin.
    let (ok, _, err) = cli(
        &s,
        &["secret", "put", "--agent", &agent, "--label", "db"],
        plain,
    );
    assert!(!ok && err.contains("AGENT_PUBLIC_KEY_MISSING"), "{err}");
    let (ok, _, err) = cli(
        &s,
        &["secret", "put", "--agent", "no-such-agent", "--label", "db"],
        plain,
    );
    assert!(!ok && err.contains("AGENT_NOT_FOUND"), "{err}");
    let key = AgentKeyPair::generate().unwrap();
    assert_eq!(
        put_key(&s, &agent_token, &key.public().to_base64())
            .await
            .status,
        200
    );
    let (ok, _, err) = cli(
        &s,
        &["secret", "put", "--agent", &agent, "--label", "db"],
        "",
    );
    assert!(!ok && err.contains("no secret on standard input"), "{err}");

    // stdin, with one trailing newline that is not part of the secret.
    let (ok, out, err) = cli(
        &s,
        &[
            "secret",
            "put",
            "--agent",
            &agent,
            "--label",
            "db password",
            "--field",
            "db.password",
        ],
        &format!("{plain}\n"),
    );
    assert!(ok, "{out}\n{err}");
    for text in [&out, &err] {
        assert!(
            !text.contains("cli-plaintext-4e1d"),
            "plaintext printed: {text}"
        );
    }
    let printed: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let id = printed["secret"]["id"].as_str().unwrap().to_string();
    assert_eq!(printed["secret"]["kind"], "agent");
    assert_eq!(printed["secret"]["agent_id"], agent.as_str());
    assert_eq!(printed["secret"]["key_id"], key.public().key_id());
    assert_eq!(printed["binding"]["scope_type"], "agent");
    assert_eq!(printed["binding"]["scope_id"], agent.as_str());
    assert_eq!(printed["binding"]["field_name"], "db.password");
    assert!(printed.to_string().find("ciphertext").is_none());

    // The database holds only the envelope; the server's data key cannot open it.
    let (kind, _, _, _, ct, _) = stored(&s, "cli", &id).await;
    assert_eq!(kind, "agent");
    assert!(!ct.contains("cli-plaintext"));
    let keys =
        DataKeys::parse(&std::fs::read_to_string(s.data.path().join("data-key")).unwrap()).unwrap();
    let nonce = envelope::Parts::parse(&ct).unwrap().nonce_base64();
    assert!(keys
        .open(
            Aad {
                purpose: "secrets.value",
                tenant: "cli",
                id: &id
            },
            &SealedParts {
                key_id: keys.active_key_id().into(),
                nonce,
                ciphertext: ct.clone()
            }
            .join()
        )
        .is_err());

    // The agent's owner sees it; the agent receives and opens it.
    let meta = s
        .get(&format!("/api/v1/secrets/{id}/meta"), Some(&t.op))
        .await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(meta.body["data"]["label"], "db password");
    let r = fetch(&s, &agent_token, &id).await;
    assert_eq!(r.body["data"]["envelope"], ct.as_str());
    assert_eq!(open(&r, &key).unwrap(), plain.as_bytes());
    // The field defaults to the label; a second put replaces the binding.
    let (ok, out, err) = cli(
        &s,
        &[
            "secret",
            "put",
            "--agent",
            &agent,
            "--label",
            "db password",
            "--field",
            "db.password",
        ],
        "replacement\r\n",
    );
    assert!(ok, "{err}");
    let id2 = serde_json::from_str::<Value>(&out).unwrap()["secret"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bindings = s
        .get("/api/v1/secrets/bindings?scope_type=agent", Some(&t.op))
        .await;
    let rows = bindings.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", bindings.body);
    assert_eq!(rows[0]["secret_ref"], id2.as_str());
    assert_eq!(
        open(&fetch(&s, &agent_token, &id2).await, &key).unwrap(),
        b"replacement"
    );
    let (ok, out, _) = cli(
        &s,
        &["secret", "put", "--agent", &agent, "--label", "token"],
        "t",
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["binding"]["field_name"],
        "token"
    );
    s.stop().await;
}

// ---------------------------------------------------------------- logs

/// The real binary serving on `data` (and `database_url`), every log level
/// on, its stderr collected.
struct Served {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path, database_url: &str) -> Served {
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "off",
            "--data-dir",
        ])
        .arg(data)
        .arg("--database-url")
        .arg(database_url)
        .env("BOTMOX_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn control-server");
    // Owned by `Served` at once: killed and reaped however this ends.
    let mut served = Served {
        child,
        url: String::new(),
        log: Arc::new(Mutex::new(Vec::new())),
    };
    let stderr = served.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let sink = served.log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", served.log.lock().unwrap()));
        if let Some(i) = line.find("listening on ") {
            served.url = line[i + 13..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            return served;
        }
    }
}

async fn no_secret_value_in_any_log(b: Backend) {
    let data = tempfile::tempdir().unwrap();
    let (database_url, pg) = match b {
        Backend::Sqlite => (
            format!("sqlite://{}/botmox.db?mode=rwc", data.path().display()),
            None,
        ),
        Backend::Postgres => {
            let (url, name) = crate::common::create_pg_database().await;
            (url, Some(name))
        }
    };
    let served = serve(data.path(), &database_url);
    let http = reqwest::Client::new();
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = http.request(method.parse().unwrap(), format!("{}{path}", served.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let password = std::fs::read_to_string(data.path().join("initial-admin-password")).unwrap();
    let (st, login) = call(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "admin@localhost", "password": password.trim()})),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    let admin = login["data"]["token"].as_str().unwrap().to_string();
    let (st, p) = call(
        "POST",
        "/api/v1/agents/pairings",
        Some(&admin),
        Some(json!({"name": "log-agent"})),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let (st, reg) = call(
        "POST",
        "/api/v1/agents/register",
        None,
        Some(json!({"pairing_code": p["data"]["pairing_code"]})),
    )
    .await;
    assert_eq!(st, 201, "{reg}");
    let agent = reg["data"]["agent"]["id"].as_str().unwrap().to_string();
    let agent_token = reg["data"]["agent_token"].as_str().unwrap().to_string();
    let key = AgentKeyPair::generate().unwrap();
    let (st, _) = call(
        "PUT",
        "/api/v1/agents/me/public-key",
        Some(&agent_token),
        Some(json!({"alg": "X25519", "public_key": key.public().to_base64()})),
    )
    .await;
    assert_eq!(st, 200);

    // Every flow that carries a value, including refused ones.
    let values = [
        "LOGCANARY-server-value-1",
        "LOGCANARY-rotated-value-2",
        "LOGCANARY-refused-value-3",
        "LOGCANARY-console-value-4",
        "LOGCANARY-cli-value-5",
    ];
    let (st, r) = call(
        "POST",
        "/api/v1/secrets",
        Some(&admin),
        Some(json!({"label": "l", "value": values[0]})),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let id = r["data"]["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        "POST",
        "/api/v1/secrets/bindings",
        Some(&admin),
        Some(
            json!({"scope_type": "agent", "scope_id": agent, "secret_ref": id, "field_name": "f"}),
        ),
    )
    .await;
    assert_eq!(st, 201);
    let (st, r) = call(
        "GET",
        &format!("/api/v1/agents/me/secrets/{id}"),
        Some(&agent_token),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let opened = key
        .open(
            r["data"]["envelope"].as_str().unwrap(),
            Binding {
                secret_id: &id,
                agent_id: &agent,
            },
        )
        .unwrap();
    assert_eq!(opened.as_slice(), values[0].as_bytes());
    let (st, _) = call(
        "POST",
        &format!("/api/v1/secrets/{id}/rotate"),
        Some(&admin),
        Some(json!({"value": values[1]})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        "GET",
        &format!("/api/v1/agents/me/secrets/{id}"),
        Some(&agent_token),
        None,
    )
    .await;
    assert_eq!(st, 200);
    for body in [
        json!({"label": "l", "value": values[2], "ciphertext": CIPHERTEXT}),
        json!({"label": "l\u{1}", "value": values[2]}),
        json!({"label": "l", "value": values[2], "unknown": 1}),
    ] {
        let (st, _) = call("POST", "/api/v1/secrets", Some(&admin), Some(body)).await;
        assert_eq!(st, 400);
    }
    let (st, _) = call(
        "POST",
        &format!("/api/v1/secrets/{id}/rotate"),
        Some(&agent_token),
        Some(json!({"value": values[2]})),
    )
    .await;
    assert_eq!(st, 403);
    let env = envelope::seal(
        key.public(),
        Binding {
            secret_id: "console",
            agent_id: &agent,
        },
        values[3].as_bytes(),
    )
    .unwrap();
    let (st, r) = call(
        "POST",
        "/api/v1/secrets",
        Some(&admin),
        Some(
            json!({"id": "console", "label": "c", "ciphertext": env, "alg": envelope::ALG,
                    "agent_id": agent, "key_id": key.public().key_id()}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    // The admin CLI, against the same database while the server runs.
    let mut child = Command::new(BIN)
        .args([
            "admin", "secret", "put", "--agent", &agent, "--label", "cli",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--database-url")
        .arg(&database_url)
        .env("BOTMOX_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(values[4].as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, r) = call(
        "GET",
        &format!("/api/v1/agents/me/secrets/{cli_id}"),
        Some(&agent_token),
        None,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let opened = key
        .open(
            r["data"]["envelope"].as_str().unwrap(),
            Binding {
                secret_id: &cli_id,
                agent_id: &agent,
            },
        )
        .unwrap();
    assert_eq!(opened.as_slice(), values[4].as_bytes());

    // Give the log a moment to flush, then grep everything written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = served.log.lock().unwrap().join("\n");
    let cli_text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("secret delivered to agent"),
        "the log has the flows"
    );
    assert!(
        log.contains(&id),
        "the log names the secret ids, not their values"
    );
    assert!(log.lines().count() > 50, "trace logging was on");
    let private = key.private_base64();
    for (what, text) in [("server log", &log), ("admin CLI output", &cli_text)] {
        for v in values {
            assert!(!text.contains(v), "{v} in the {what}");
        }
        assert!(
            !text.contains(private.as_str()),
            "agent private key in the {what}"
        );
        assert!(!text.contains(&agent_token), "agent token in the {what}");
    }
    drop(served);
    if let Some(name) = pg {
        crate::common::drop_pg_database(&name).await;
    }
}
