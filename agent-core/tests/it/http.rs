//! The control-server client's certificate pinning over real HTTPS (pve-sim
//! serves a self-signed certificate, like a paired Bot-Mox server would).

use std::time::{Duration, Instant};

use agent_core::http::{budgets, ServerClient};
use agent_core::retry::RetryPolicy;
use reqwest::Method;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test]
async fn server_client_pins_the_bundle_fingerprint() {
    let sim = sim().await;
    let cancel = CancellationToken::new();
    let policy = RetryPolicy::exponential(
        3,
        Duration::from_millis(100),
        Duration::from_millis(200),
        Duration::from_secs(5),
    );

    // pinned: the TLS handshake succeeds; the answer is the server's own 401
    let c = ServerClient::new(&sim.url(), Some(&hex_fp(&sim)), Duration::from_secs(5)).unwrap();
    let e = c
        .call::<Value>(Method::GET, "/api2/json/nodes", None, &policy, &cancel)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    // 401 is final: answered at once, not retried
    // wrong pin: TLS error, not retried
    let c = ServerClient::new(&sim.url(), Some(&"11".repeat(32)), Duration::from_secs(5)).unwrap();
    let t0 = Instant::now();
    let e = c
        .call::<Value>(
            Method::GET,
            "/api2/json/version",
            None,
            &budgets::heartbeat(),
            &cancel,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "TLS_ERROR", "{e}");
    assert!(e.to_string().contains("fingerprint mismatch"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(1));
    // no pin and a self-signed certificate: refused
    let c = ServerClient::new(&sim.url(), None, Duration::from_secs(5)).unwrap();
    let e = c
        .call::<Value>(Method::GET, "/api2/json/version", None, &policy, &cancel)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "TLS_ERROR", "{e}");
    // a dropped connection is retried
    sim.faults().drop_next(1, Some("/version"));
    let c = ServerClient::new(&sim.url(), Some(&hex_fp(&sim)), Duration::from_secs(5)).unwrap();
    let e = c
        .call::<Value>(Method::GET, "/api2/json/version", None, &policy, &cancel)
        .await
        .unwrap_err();
    assert_eq!(
        e.status(),
        Some(401),
        "after the retry the server answered: {e}"
    );
}
