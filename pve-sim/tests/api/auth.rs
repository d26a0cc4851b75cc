use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{pinned_client, start_sim, Api, Auth};

#[tokio::test]
async fn ticket_login_requires_csrf_for_writes() {
    let sim = start_sim().await;
    let api = Api::login(&sim).await;
    let Auth::Ticket { ticket, csrf } = api.auth.clone() else {
        panic!("ticket auth expected")
    };
    assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
    assert!(!csrf.is_empty());

    let version = api.ok(Method::GET, "/version", &[]).await;
    assert_eq!(version["version"], "9.1.2");

    // Write without the CSRF header: 401, nothing changed.
    let resp = api
        .client
        .put(format!("{}/nodes/pve/qemu/9000/config", api.base))
        .header("Cookie", format!("PVEAuthCookie={ticket}"))
        .form(&[("description", "no csrf")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!sim.vm(9000).unwrap().config.contains_key("description"));

    // With the CSRF header it works.
    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[("description", "with csrf")],
    )
    .await;
    assert_eq!(sim.vm(9000).unwrap().config["description"], "with csrf");
    sim.assert_no_violations();
}

#[tokio::test]
async fn json_login_and_wrong_password() {
    let sim = start_sim().await;
    let client = pinned_client(&sim);
    let resp = client
        .post(format!("{}/access/ticket", sim.api_url()))
        .json(&json!({"username": "root", "realm": "pam", "password": sim.password()}))
        .send()
        .await
        .unwrap();
    let (status, body) = Api::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["username"], "root@pam");

    let anon = Api::anonymous(&sim);
    let (status, _) = anon
        .post(
            "/access/ticket",
            &[("username", "root@pam"), ("password", "nope")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    sim.assert_no_violations();
}

#[tokio::test]
async fn api_token_auth_and_401s() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let nodes = api.ok(Method::GET, "/nodes", &[]).await;
    assert_eq!(nodes[0]["node"], "pve");
    assert_eq!(nodes[0]["ssl_fingerprint"], sim.fingerprint());
    // Token writes need no CSRF token.
    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[("description", "via token")],
    )
    .await;

    let anon = Api::anonymous(&sim);
    assert_eq!(anon.get("/version").await.0, StatusCode::UNAUTHORIZED);
    let bad = Api {
        auth: Auth::Token(
            "PVEAPIToken=root@pam!botmox=00000000-0000-0000-0000-000000000000".into(),
        ),
        ..Api::anonymous(&sim)
    };
    assert_eq!(bad.get("/version").await.0, StatusCode::UNAUTHORIZED);
    let bad_ticket = Api {
        auth: Auth::Ticket {
            ticket: "PVE:root@pam:00000000::forged".into(),
            csrf: "x".into(),
        },
        ..Api::anonymous(&sim)
    };
    assert_eq!(bad_ticket.get("/version").await.0, StatusCode::UNAUTHORIZED);
    sim.assert_no_violations();
}

#[tokio::test]
async fn expired_ticket_needs_relogin() {
    let sim = start_sim().await;
    let api = Api::login(&sim).await;
    assert_eq!(api.get("/version").await.0, StatusCode::OK);
    sim.expire_tickets();
    assert_eq!(api.get("/version").await.0, StatusCode::UNAUTHORIZED);
    let again = Api::login(&sim).await;
    assert_eq!(again.get("/version").await.0, StatusCode::OK);
}

#[tokio::test]
async fn tls_is_pinned_to_the_sim_certificate() {
    let sim = start_sim().await;
    let other = start_sim().await;
    // A client trusting another simulator's certificate must fail the handshake.
    let wrong = pinned_client(&other);
    let err = wrong
        .get(format!("{}/version", sim.api_url()))
        .send()
        .await
        .expect_err("handshake must fail");
    assert!(err.is_connect(), "{err}");
    // Fingerprint pinning: right fingerprint works, wrong one fails.
    let good = crate::common::fingerprint_client(&sim.fingerprint());
    let resp = good
        .get(format!("{}/version", sim.api_url()))
        .header("Authorization", sim.token_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let fp_wrong = crate::common::fingerprint_client(&other.fingerprint());
    assert!(fp_wrong
        .get(format!("{}/version", sim.api_url()))
        .send()
        .await
        .is_err());
    let fp = sim.fingerprint();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(fp
        .chars()
        .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
}
