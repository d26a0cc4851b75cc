//! Test helpers: an HTTPS client that trusts only the simulator's
//! certificate, and small request wrappers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pve_sim::{PveSim, SimConfig};
use reqwest::StatusCode;
use serde_json::Value;

/// Starts a simulator with short tasks (100 ms).
pub async fn start_sim() -> PveSim {
    start_sim_in(None).await
}

pub async fn start_sim_in(data_dir: Option<std::path::PathBuf>) -> PveSim {
    PveSim::start_with(SimConfig {
        data_dir,
        task_duration: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A reqwest client whose only trust anchor is the simulator's certificate.
pub fn pinned_client(sim: &PveSim) -> reqwest::Client {
    let cert = reqwest::Certificate::from_der(sim.certificate_der()).expect("cert");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A rustls verifier that accepts exactly one certificate, by its SHA-256
/// fingerprint (`AB:CD:...`), and still checks handshake signatures.
#[derive(Debug)]
pub struct FingerprintVerifier {
    pub fingerprint: String,
    pub provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if pve_sim::tls::fingerprint_of(end_entity) == self.fingerprint {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "certificate fingerprint mismatch".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client pinned by fingerprint only (as the agent does with a bundle).
pub fn fingerprint_client(fingerprint: &str) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FingerprintVerifier {
            fingerprint: fingerprint.to_string(),
            provider,
        }))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[derive(Clone, Debug)]
pub enum Auth {
    Token(String),
    Ticket { ticket: String, csrf: String },
    Anonymous,
}

/// Minimal PVE API client for the tests.
#[derive(Clone, Debug)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub auth: Auth,
}

impl Api {
    pub fn anonymous(sim: &PveSim) -> Api {
        Api {
            client: pinned_client(sim),
            base: sim.api_url(),
            auth: Auth::Anonymous,
        }
    }

    pub fn token(sim: &PveSim) -> Api {
        Api {
            auth: Auth::Token(sim.token_header()),
            ..Api::anonymous(sim)
        }
    }

    /// Logs in with username/password (form-encoded, like the agent).
    pub async fn login(sim: &PveSim) -> Api {
        let anon = Api::anonymous(sim);
        let (status, body) = anon
            .send(
                reqwest::Method::POST,
                "/access/ticket",
                &[("username", sim.username()), ("password", sim.password())],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        Api {
            auth: Auth::Ticket {
                ticket: body["data"]["ticket"].as_str().unwrap().to_string(),
                csrf: body["data"]["CSRFPreventionToken"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            },
            ..anon
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Token(h) => rb = rb.header("Authorization", h),
            Auth::Ticket { ticket, csrf } => {
                rb = rb
                    .header("Cookie", format!("PVEAuthCookie={ticket}"))
                    .header("CSRFPreventionToken", csrf)
            }
            Auth::Anonymous => {}
        }
        rb
    }

    pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut rb = self.request(method.clone(), path);
        if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            rb = rb.query(form);
        } else {
            rb = rb.form(form);
        }
        Self::read(rb.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, &[]).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, form).await
    }

    pub async fn put(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, form).await
    }

    pub async fn delete(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, query).await
    }

    /// `data` of a 200 answer (panics otherwise).
    pub async fn ok(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.send(method.clone(), path, form).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
        body["data"].clone()
    }

    /// Polls the task status until it is stopped; returns the final status.
    pub async fn wait_task(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).expect("node in UPID");
        let path = format!("/nodes/{node}/tasks/{}/status", encode(upid));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.get(&path).await;
            assert_eq!(status, StatusCode::OK, "task status: {body}");
            if body["data"]["status"] == "stopped" {
                return body["data"].clone();
            }
            assert!(Instant::now() < deadline, "task {upid} did not finish");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
}

/// Percent-encodes one path segment (UPIDs, volume ids).
pub fn encode(segment: &str) -> String {
    url_escape(segment)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Asserts a UPID has PVE's shape for the given type and id.
pub fn assert_upid(upid: &Value, task_type: &str, id: &str) -> String {
    let upid = upid.as_str().expect("UPID string").to_string();
    let re = regex::Regex::new(&format!(
        "^UPID:pve:[0-9A-F]{{8}}:[0-9A-F]{{8}}:[0-9A-F]{{8}}:{task_type}:{}:[^:]+:$",
        regex::escape(id)
    ))
    .unwrap();
    assert!(re.is_match(&upid), "bad UPID {upid}");
    upid
}
