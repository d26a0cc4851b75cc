//! External (Supabase-compatible) JWTs: HS256 secret and JWKS (ES256).

use crate::common::{base_settings, Backend, TestServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "an-hs256-secret-that-is-long-enough-0123";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(tenant_in_app: Option<&str>, extra: Value) -> Value {
    let mut c = json!({
        "sub": "2f6b5c1e-0000-4000-8000-000000000001",
        "email": "jwt.user@example.com",
        "iss": "supabase",
        "aud": "authenticated",
        "role": "authenticated",
        "exp": now() + 600,
        "iat": now(),
    });
    if let Some(t) = tenant_in_app {
        c["app_metadata"] = json!({"tenant_id": t, "roles": ["operator"]});
    }
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c
}

fn hs256(c: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn whoami(s: &TestServer, token: &str) -> crate::common::Resp {
    s.get("/api/v1/auth/whoami", Some(token)).await
}

#[tokio::test]
async fn hs256_tokens_are_verified_and_tenant_comes_only_from_app_metadata() {
    let settings = control_server::config::Settings {
        jwt_hs256_secret: Some(SECRET.into()),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;

    let good = hs256(&claims(Some("default"), json!({})), SECRET);
    let r = whoami(&s, &good).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["tenant_id"], "default");
    assert_eq!(r.body["data"]["roles"], json!(["operator"]));
    assert_eq!(r.body["data"]["source"], "external_jwt");
    assert_eq!(r.body["data"]["email"], "jwt.user@example.com");
    // Role gates apply to JWT users too.
    s.get("/api/v1/users", Some(&good))
        .await
        .assert_error(403, "FORBIDDEN");

    let refused = [
        (
            "wrong secret",
            hs256(
                &claims(Some("default"), json!({})),
                "another-secret-that-is-long-enough-99",
            ),
        ),
        (
            "wrong issuer",
            hs256(&claims(Some("default"), json!({"iss": "evil"})), SECRET),
        ),
        (
            "wrong audience",
            hs256(&claims(Some("default"), json!({"aud": "anon"})), SECRET),
        ),
        (
            "expired",
            hs256(
                &claims(Some("default"), json!({"exp": now() - 3600})),
                SECRET,
            ),
        ),
        ("no tenant", hs256(&claims(None, json!({})), SECRET)),
        (
            "tenant only in user_metadata",
            hs256(
                &claims(None, json!({"user_metadata": {"tenant_id": "default"}})),
                SECRET,
            ),
        ),
        (
            "unknown tenant",
            hs256(&claims(Some("ghost"), json!({})), SECRET),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
                URL_SAFE_NO_PAD.encode(claims(Some("default"), json!({})).to_string())
            ),
        ),
    ];
    for (why, token) in refused {
        let r = whoami(&s, &token).await;
        assert_eq!(r.status, 401, "{why} must be refused: {}", r.body);
    }

    // A tenant planted in user_metadata never overrides app_metadata.
    let planted = hs256(
        &claims(
            Some("default"),
            json!({"user_metadata": {"tenant_id": "acme", "roles": ["admin"]}}),
        ),
        SECRET,
    );
    let infra = s.admin_token().await;
    s.tenant_with_admin(&infra, "acme").await;
    let r = whoami(&s, &planted).await;
    assert_eq!(r.body["data"]["tenant_id"], "default");
    assert_eq!(r.body["data"]["roles"], json!(["operator"]));
    // External JWTs cannot be "logged out" here.
    s.post("/api/v1/auth/logout", Some(&good), json!({}))
        .await
        .assert_error(400, "NOT_REVOCABLE");
    s.stop().await;
}

#[tokio::test]
async fn jwks_keys_are_fetched_and_kid_must_match() {
    // An ES256 key pair; its public half is served as a JWKS over HTTP.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = key.public_key_raw();
    assert_eq!(raw[0], 4, "uncompressed point");
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    }]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let settings = control_server::config::Settings {
        jwt_jwks_url: Some(format!("http://{jwks_addr}/jwks.json")),
        jwt_issuer: Some("https://idp.example.com/auth/v1".into()),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;
    let signing = EncodingKey::from_ec_der(&key.serialize_der());
    let sign = |kid: &str, c: &Value| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.to_string());
        encode(&h, c, &signing).unwrap()
    };
    let c = claims(
        Some("default"),
        json!({"iss": "https://idp.example.com/auth/v1", "app_metadata": {"tenant_id": "default", "roles": ["admin", "infra"]}}),
    );
    let r = whoami(&s, &sign("k1", &c)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["roles"], json!(["admin", "infra"]));
    assert_eq!(whoami(&s, &sign("unknown-kid", &c)).await.status, 401);
    // HS256 is not accepted when only JWKS is configured.
    assert_eq!(whoami(&s, &hs256(&c, SECRET)).await.status, 401);
    // A different key claiming kid k1 fails the signature check.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    let forged = encode(&h, &c, &EncodingKey::from_ec_der(&other.serialize_der())).unwrap();
    assert_eq!(whoami(&s, &forged).await.status, 401);
    s.stop().await;
}
