//! Optional external JWTs (Supabase-compatible): HS256 shared secret and/or
//! asymmetric keys from a JWKS URL, with a configured issuer and audience.
//!
//! The tenant comes only from `app_metadata.tenant_id` — never from
//! `user_metadata`, which the end user can edit. Roles come from
//! `app_metadata.roles`; without one the configured default applies.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::Role;
use crate::config::JwtConfig;

const JWKS_TTL: Duration = Duration::from_secs(600);
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a valid JWT: {0}")]
    Malformed(String),
    #[error("signature, issuer, audience or expiry rejected: {0}")]
    Rejected(String),
    #[error("algorithm {0:?} is not accepted by this server's configuration")]
    Algorithm(Algorithm),
    #[error("no JWKS key matches kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("JWKS fetch failed: {0}")]
    Jwks(String),
    #[error("token has no app_metadata.tenant_id")]
    NoTenant,
}

/// What a verified external token says about its bearer.
#[derive(Debug, Clone)]
pub struct ExternalClaims {
    pub subject: String,
    pub email: String,
    pub tenant_id: String,
    pub role: Role,
    pub infra: bool,
}

#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    app_metadata: Option<Value>,
}

pub struct JwtVerifier {
    cfg: JwtConfig,
    hs256: Option<DecodingKey>,
    http: reqwest::Client,
    jwks: RwLock<Option<(JwkSet, Instant)>>,
    /// When the JWKS was last requested, successfully or not: at most one
    /// request per `JWKS_MIN_REFRESH`, so tokens with made-up `kid`s (or a
    /// JWKS endpoint that is down) cannot make the server fetch per request.
    last_fetch: std::sync::Mutex<Option<Instant>>,
    /// Negative cache: `kid`s a fresh fetch did not have, with when.
    unknown_kids: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

/// How long a `kid` missing from the JWKS is answered from the negative cache.
const UNKNOWN_KID_TTL: Duration = Duration::from_secs(300);
/// Most remembered unknown `kid`s (the cache is cleared when full).
const MAX_UNKNOWN_KIDS: usize = 10_000;

impl JwtVerifier {
    pub fn new(cfg: JwtConfig) -> Self {
        let hs256 = cfg
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            cfg,
            hs256,
            http,
            jwks: RwLock::new(None),
            last_fetch: std::sync::Mutex::new(None),
            unknown_kids: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Does this look like a JWT (three base64url parts)?
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("eyJ")
    }

    pub async fn verify(&self, token: &str) -> Result<ExternalClaims, JwtError> {
        let header = decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(JwtError::Algorithm(header.alg))?,
            Algorithm::HS384 | Algorithm::HS512 => return Err(JwtError::Algorithm(header.alg)),
            alg => {
                if self.cfg.jwks_url.is_none() {
                    return Err(JwtError::Algorithm(alg));
                }
                self.jwks_key(header.kid.as_deref()).await?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.cfg.issuer.as_str()]);
        validation.set_audience(&self.cfg.audience);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 30;
        let data = decode::<RawClaims>(token, &key, &validation)
            .map_err(|e| JwtError::Rejected(e.to_string()))?;
        self.map_claims(data.claims)
    }

    fn map_claims(&self, c: RawClaims) -> Result<ExternalClaims, JwtError> {
        let app = c.app_metadata.unwrap_or(Value::Null);
        let tenant_id = app
            .get("tenant_id")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .ok_or(JwtError::NoTenant)?;
        let names: Vec<&str> = app
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let role = names
            .iter()
            .filter_map(|n| Role::parse_tenant_role(n))
            .max()
            .unwrap_or(self.cfg.default_role);
        Ok(ExternalClaims {
            email: c.email.unwrap_or_else(|| format!("{}@external", c.sub)),
            subject: c.sub,
            tenant_id,
            role,
            infra: names.contains(&"infra"),
        })
    }

    async fn jwks_key(&self, kid: Option<&str>) -> Result<DecodingKey, JwtError> {
        let unknown = || JwtError::UnknownKey(kid.map(str::to_string));
        if let Some(k) = kid {
            let negative = self.unknown_kids.lock().unwrap_or_else(|e| e.into_inner());
            if negative
                .get(k)
                .is_some_and(|t| t.elapsed() < UNKNOWN_KID_TTL)
            {
                return Err(unknown());
            }
        }
        {
            let cache = self.jwks.read().await;
            if let Some((set, fetched)) = cache.as_ref() {
                if fetched.elapsed() < JWKS_TTL {
                    if let Some(k) = find_key(set, kid) {
                        return k;
                    }
                }
            }
        }
        // Fetch at most once per JWKS_MIN_REFRESH, whatever the outcome.
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH) {
                return Err(unknown());
            }
            *last = Some(Instant::now());
        }
        let set = self.fetch_jwks().await?;
        let result = find_key(&set, kid).unwrap_or_else(|| Err(unknown()));
        if result.is_err() {
            self.remember_unknown(kid);
        }
        *self.jwks.write().await = Some((set, Instant::now()));
        result
    }

    fn remember_unknown(&self, kid: Option<&str>) {
        if let Some(k) = kid {
            let mut negative = self.unknown_kids.lock().unwrap_or_else(|e| e.into_inner());
            if negative.len() >= MAX_UNKNOWN_KIDS {
                negative.clear();
            }
            negative.insert(k.to_string(), Instant::now());
        }
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, JwtError> {
        let url = self.cfg.jwks_url.as_deref().unwrap_or_default();
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| JwtError::Jwks(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(JwtError::Jwks(format!("HTTP {}", resp.status())));
        }
        resp.json::<JwkSet>()
            .await
            .map_err(|e| JwtError::Jwks(e.to_string()))
    }
}

fn find_key(set: &JwkSet, kid: Option<&str>) -> Option<Result<DecodingKey, JwtError>> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        None if set.keys.len() == 1 => &set.keys[0],
        None => return None,
    };
    Some(DecodingKey::from_jwk(jwk).map_err(|e| JwtError::Malformed(e.to_string())))
}
