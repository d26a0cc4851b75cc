//! Object storage: one abstraction over the `object_store` crate for the
//! domains that keep bytes (artifact releases, theme assets).
//!
//! Two stores sit behind the same API:
//!
//! * **local** (the default): files under `<data_dir>/objects/` (or
//!   `file:///DIR`). The server signs its own URLs — an HMAC-SHA256 token
//!   with the object key, method, expiry and limits, under the key in
//!   `<data_dir>/object-url-key` ([`signing`]) — and serves them at
//!   `/api/v1/objects/{token}` ([`routes`]). No S3 is needed to run the
//!   product.
//! * **s3**: a bucket of S3 or any S3-compatible server, path-style
//!   requests; URLs are SigV4-presigned by `object_store`'s `Signer`.
//!
//! Every URL lives [`crate::config::ObjectsConfig::url_ttl_s`] (60..=300 s).
//! Object keys are validated ([`ObjectKey`]): no `..`, `//`, leading or
//! trailing `/`, control characters or anything outside a safe set.
//! Uploads stream: the SHA-256 and size are computed while the bytes go
//! to the store, and an upload that overflows its limit or does not match
//! what was declared is aborted before it becomes visible.

pub mod routes;
pub mod signing;

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayloadMut, RetryConfig,
    WriteMultipart,
};
use sha2::{Digest, Sha256};

use crate::config::{ObjectStoreKind, ObjectsConfig};
pub use signing::{Grant, UrlProblem, UrlSigner};

/// Parts of a streamed upload go to the store in chunks of this size (S3's
/// smallest multipart part); a smaller object is one plain `PUT`.
const CHUNK: usize = 5 * 1024 * 1024;
/// Parts uploaded concurrently.
const PART_CONCURRENCY: usize = 2;

/// A validated object key: 1..=1024 bytes of `A-Z a-z 0-9 . _ - + = @ /`,
/// no leading or trailing `/`, no `//`, no `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey {
    raw: String,
    path: Path,
}

impl ObjectKey {
    pub const MAX_LEN: usize = 1024;
    /// The rule, for field errors and the OpenAPI document.
    pub const RULE: &'static str = "1-1024 characters of A-Z a-z 0-9 . _ - + = @ and /, \
         without a leading or trailing /, // or ..";
    /// The same as a regular expression (ECMA-262).
    pub const PATTERN: &'static str =
        r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*/$)[A-Za-z0-9._\-+=@/]{1,1024}$";

    pub fn parse(raw: &str) -> Option<ObjectKey> {
        let ok = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'.' | b'_' | b'-' | b'+' | b'=' | b'@' | b'/')
            })
            && !raw.starts_with('/')
            && !raw.ends_with('/')
            && !raw.contains("//")
            && !raw.contains("..");
        if !ok {
            return None;
        }
        let path = Path::parse(raw).ok()?;
        Some(ObjectKey {
            raw: raw.to_string(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object not found")]
    NotFound,
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the body is empty")]
    Empty,
    #[error("the bytes do not match: got {size} bytes with SHA-256 {sha256}")]
    Mismatch { size: u64, sha256: String },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("object store: {0}")]
    Backend(String),
}

impl From<object_store::Error> for ObjectError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound,
            other => ObjectError::Backend(other.to_string()),
        }
    }
}

/// The base of the server's own URLs (`https://host:port`, no trailing
/// `/`): `public_url` when configured, else what the request was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(pub String);

/// A URL that grants one method on one object until `expires_at_ms`.
#[derive(Debug, Clone)]
pub struct SignedUrl {
    pub url: String,
    /// Epoch milliseconds.
    pub expires_at_ms: i64,
    pub expires_in_seconds: u64,
}

/// What an upload wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// What an upload must be, checked before it is committed.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub size: u64,
    pub sha256: &'a str,
}

/// How URLs are made: signed by the server (local files) or presigned
/// for S3.
enum Mode {
    Local(UrlSigner),
    S3(Arc<AmazonS3>),
}

pub struct Objects {
    store: Arc<dyn ObjectStore>,
    mode: Mode,
    ttl: Duration,
    describe: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("store", &self.describe)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Objects {
    /// Open the configured store (the local directory is created 0700; the
    /// URL signing key is created 0600 on first start).
    pub fn open(cfg: &ObjectsConfig, data_dir: &FsPath) -> anyhow::Result<Objects> {
        let ttl = Duration::from_secs(cfg.url_ttl_s);
        let describe = cfg.store.describe();
        tracing::info!(store = %describe, url_ttl_s = cfg.url_ttl_s, "object store");
        match &cfg.store {
            ObjectStoreKind::Local { dir } => {
                crate::fsutil::create_private_dir(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the object directory {}: {e}", dir.display())
                })?;
                let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    anyhow::anyhow!("cannot open the object directory {}: {e}", dir.display())
                })?;
                let signer = UrlSigner::load(data_dir)?;
                Ok(Objects {
                    store: Arc::new(store),
                    mode: Mode::Local(signer),
                    ttl,
                    describe,
                })
            }
            ObjectStoreKind::S3(s) => {
                // Standard AWS environment (and instance credentials) first,
                // then what was configured.
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&s.bucket)
                    .with_region(&s.region)
                    .with_virtual_hosted_style_request(false)
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(Duration::from_secs(120))
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_allow_http(
                                s.endpoint
                                    .as_deref()
                                    .is_some_and(|e| e.starts_with("http://")),
                            ),
                    )
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig::default(),
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(10),
                    });
                if let Some(e) = &s.endpoint {
                    b = b.with_endpoint(e);
                }
                if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                }
                let s3 = Arc::new(
                    b.build()
                        .map_err(|e| anyhow::anyhow!("object store {describe}: {e}"))?,
                );
                Ok(Objects {
                    store: s3.clone(),
                    mode: Mode::S3(s3),
                    ttl,
                    describe,
                })
            }
        }
    }

    /// The store without secrets (`local:/srv/objects`, `s3://bucket?…`).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Readiness: the store answers (a listing of an empty prefix).
    pub async fn check(&self) -> Result<(), ObjectError> {
        let probe = Path::from("botmox-readiness");
        self.store.list_with_delimiter(Some(&probe)).await?;
        Ok(())
    }

    /// The object's size.
    pub async fn size(&self, key: &ObjectKey) -> Result<u64, ObjectError> {
        Ok(self.store.head(key.path()).await?.size)
    }

    /// Read the whole object: its size and SHA-256.
    pub async fn digest(&self, key: &ObjectKey) -> Result<Written, ObjectError> {
        let mut stream = self.store.get(key.path()).await?.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Written {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// The first `n` bytes (fewer when the object is shorter).
    pub async fn prefix(&self, key: &ObjectKey, n: u64) -> Result<Bytes, ObjectError> {
        let size = self.size(key).await?;
        if size == 0 {
            return Ok(Bytes::new());
        }
        Ok(self.store.get_range(key.path(), 0..size.min(n)).await?)
    }

    /// The object as a stream, with its size.
    pub async fn read(
        &self,
        key: &ObjectKey,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, ObjectError>>), ObjectError> {
        let got = self.store.get(key.path()).await?;
        let size = got.meta.size;
        Ok((
            size,
            got.into_stream()
                .map(|r| r.map_err(ObjectError::from))
                .boxed(),
        ))
    }

    /// Stream `body` into `key`, hashing as it goes: refused (nothing
    /// stored) when it is empty, longer than `limit`, or not `expected`.
    /// Small bodies are one `PUT`; larger ones a multipart upload that is
    /// aborted on any refusal.
    pub async fn write<S, E>(
        &self,
        key: &ObjectKey,
        body: S,
        limit: u64,
        expected: Option<Expected<'_>>,
    ) -> Result<Written, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let mut body = std::pin::pin!(body);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buffer = PutPayloadMut::new();
        let mut multipart: Option<WriteMultipart> = None;
        let outcome: Result<(), ObjectError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ObjectError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(ObjectError::TooLarge(limit));
                }
                hasher.update(&chunk);
                match &mut multipart {
                    Some(w) => {
                        w.wait_for_capacity(PART_CONCURRENCY).await?;
                        w.put(chunk);
                    }
                    None => {
                        buffer.push(chunk);
                        if buffer.content_length() >= CHUNK {
                            let upload = self.store.put_multipart(key.path()).await?;
                            let mut w = WriteMultipart::new_with_chunk_size(upload, CHUNK);
                            for part in std::mem::take(&mut buffer).freeze() {
                                w.put(part);
                            }
                            multipart = Some(w);
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        let written = Written {
            size,
            sha256: hex::encode(hasher.finalize()),
        };
        let verdict = outcome.and_then(|()| {
            if size == 0 {
                Err(ObjectError::Empty)
            } else if expected.is_some_and(|e| e.size != size || e.sha256 != written.sha256) {
                Err(ObjectError::Mismatch {
                    size,
                    sha256: written.sha256.clone(),
                })
            } else {
                Ok(())
            }
        });
        match (verdict, multipart) {
            (Ok(()), Some(w)) => {
                w.finish().await?;
            }
            (Ok(()), None) => {
                self.store.put(key.path(), buffer.freeze()).await?;
            }
            (Err(e), Some(w)) => {
                if let Err(abort) = w.abort().await {
                    tracing::warn!(key = %key, error = %abort, "aborting a refused upload failed");
                }
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        }
        Ok(written)
    }

    fn expiry(&self) -> (i64, u64) {
        let secs = self.ttl.as_secs();
        (now_s() + secs as i64, secs)
    }

    fn local_url(signer: &UrlSigner, base: &BaseUrl, grant: &Grant) -> String {
        format!("{}/api/v1/objects/{}", base.0, signer.sign(grant))
    }

    /// A URL that downloads the object until it expires. `content_type`:
    /// what the local store answers with (S3 answers what was stored).
    pub async fn download_url(
        &self,
        key: &ObjectKey,
        base: &BaseUrl,
        content_type: Option<&str>,
    ) -> Result<SignedUrl, ObjectError> {
        let (exp, secs) = self.expiry();
        let url = match &self.mode {
            Mode::Local(signer) => Self::local_url(
                signer,
                base,
                &Grant::get(key.as_str(), exp, content_type.map(str::to_string)),
            ),
            Mode::S3(s3) => s3
                .signed_url(object_store::signer::Method::GET, key.path(), self.ttl)
                .await?
                .to_string(),
        };
        Ok(SignedUrl {
            url,
            expires_at_ms: exp * 1000,
            expires_in_seconds: secs,
        })
    }

    /// A URL that uploads (PUT) the object until it expires: at most
    /// `max_bytes`, sent with `Content-Type: content_type` (the S3
    /// signature binds it; the local store checks it).
    pub async fn upload_url(
        &self,
        key: &ObjectKey,
        base: &BaseUrl,
        max_bytes: u64,
        content_type: &str,
    ) -> Result<SignedUrl, ObjectError> {
        let (exp, secs) = self.expiry();
        let url = match &self.mode {
            Mode::Local(signer) => Self::local_url(
                signer,
                base,
                &Grant::put(key.as_str(), exp, max_bytes, content_type.to_string()),
            ),
            Mode::S3(s3) => {
                let value = object_store::signer::HeaderValue::from_str(content_type)
                    .map_err(|e| ObjectError::Backend(format!("content type: {e}")))?;
                let opts = SignedUrlOptions::new().with_signed_header(
                    object_store::signer::HeaderName::from_static("content-type"),
                    value,
                );
                s3.signed_url_opts(
                    object_store::signer::Method::PUT,
                    key.path(),
                    self.ttl,
                    &opts,
                )
                .await?
                .to_string()
            }
        };
        Ok(SignedUrl {
            url,
            expires_at_ms: exp * 1000,
            expires_in_seconds: secs,
        })
    }

    /// Check a token of `/api/v1/objects/{token}` for `method` (local
    /// store only: on S3 no such URL is ever issued).
    pub fn verify_local(
        &self,
        token: &str,
        method: &str,
    ) -> Result<(Grant, ObjectKey), UrlProblem> {
        let Mode::Local(signer) = &self.mode else {
            return Err(UrlProblem::Invalid);
        };
        let grant = signer.verify(token, method, now_s())?;
        let key = ObjectKey::parse(&grant.k).ok_or(UrlProblem::Invalid)?;
        Ok((grant, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_validated() {
        for ok in [
            "a",
            "artifacts/t/releases/0192",
            "theme-assets/acme/0192-bg.png",
            "a+b=c@d_e.f-g",
        ] {
            assert!(ObjectKey::parse(ok).is_some(), "{ok} refused");
        }
        for bad in [
            "", "/abs", "dir/", "a//b", "a/../b", "..", "a..b", "./a", "a/./b", "a\u{0}b", "a\nb",
            "a b", "a#1", "a\\b", "ä", "a?b", "%2e%2e",
        ] {
            assert!(ObjectKey::parse(bad).is_none(), "{bad:?} accepted");
        }
        assert!(ObjectKey::parse(&"a".repeat(1024)).is_some());
        assert!(ObjectKey::parse(&"a".repeat(1025)).is_none());
    }

    fn local(dir: &FsPath) -> Objects {
        let cfg = ObjectsConfig {
            store: ObjectStoreKind::Local {
                dir: dir.join("objects"),
            },
            url_ttl_s: 60,
            artifact_max_bytes: 1 << 30,
        };
        Objects::open(&cfg, dir).unwrap()
    }

    fn chunks(parts: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    #[tokio::test]
    async fn writes_stream_hash_and_refuse_before_committing() {
        let dir = tempfile::tempdir().unwrap();
        let o = local(dir.path());
        o.check().await.unwrap();
        let key = ObjectKey::parse("t/small").unwrap();
        let w = o
            .write(
                &key,
                chunks(vec![b"hello ".to_vec(), b"world".to_vec()]),
                100,
                None,
            )
            .await
            .unwrap();
        assert_eq!(w.size, 11);
        assert_eq!(w.sha256, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(o.digest(&key).await.unwrap(), w);
        assert_eq!(&o.prefix(&key, 5).await.unwrap()[..], b"hello");
        // Over the limit, empty, or not what was declared: nothing stored.
        let other = ObjectKey::parse("t/refused").unwrap();
        assert!(matches!(
            o.write(&other, chunks(vec![vec![1; 50], vec![2; 51]]), 100, None)
                .await,
            Err(ObjectError::TooLarge(100))
        ));
        assert!(matches!(
            o.write(&other, chunks(vec![]), 100, None).await,
            Err(ObjectError::Empty)
        ));
        let expected = Expected {
            size: 3,
            sha256: &"0".repeat(64),
        };
        assert!(matches!(
            o.write(&other, chunks(vec![b"abc".to_vec()]), 100, Some(expected))
                .await,
            Err(ObjectError::Mismatch { size: 3, .. })
        ));
        assert!(matches!(o.size(&other).await, Err(ObjectError::NotFound)));
        // Larger than one part: the multipart path, then a refusal of it.
        let big: Vec<Vec<u8>> = (0..12).map(|i| vec![i as u8; 1024 * 1024]).collect();
        let all: Vec<u8> = big.concat();
        let sha = hex::encode(Sha256::digest(&all));
        let key = ObjectKey::parse("t/big").unwrap();
        let exp = Expected {
            size: all.len() as u64,
            sha256: &sha,
        };
        let w = o
            .write(&key, chunks(big.clone()), 1 << 30, Some(exp))
            .await
            .unwrap();
        assert_eq!(w.size, all.len() as u64);
        assert_eq!(o.digest(&key).await.unwrap().sha256, sha);
        let bad = ObjectKey::parse("t/big-bad").unwrap();
        let wrong = Expected {
            size: all.len() as u64,
            sha256: &"f".repeat(64),
        };
        assert!(o
            .write(&bad, chunks(big), 1 << 30, Some(wrong))
            .await
            .is_err());
        assert!(matches!(o.size(&bad).await, Err(ObjectError::NotFound)));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("objects/t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut leftovers = leftovers;
        leftovers.sort();
        assert_eq!(leftovers, ["big", "small"], "no staging files left");
    }

    #[tokio::test]
    async fn local_urls_are_signed_for_one_method_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let o = local(dir.path());
        let key = ObjectKey::parse("t/x").unwrap();
        let base = BaseUrl("http://127.0.0.1:1".into());
        let u = o
            .download_url(&key, &base, Some("image/png"))
            .await
            .unwrap();
        assert_eq!(u.expires_in_seconds, 60);
        let token = u.url.rsplit('/').next().unwrap();
        assert!(u.url.starts_with("http://127.0.0.1:1/api/v1/objects/"));
        let (g, k) = o.verify_local(token, "GET").unwrap();
        assert_eq!(k, key);
        assert_eq!(g.t.as_deref(), Some("image/png"));
        assert_eq!(
            o.verify_local(token, "PUT").unwrap_err(),
            UrlProblem::Invalid
        );
        let up = o.upload_url(&key, &base, 10, "image/png").await.unwrap();
        let token = up.url.rsplit('/').next().unwrap();
        let (g, _) = o.verify_local(token, "PUT").unwrap();
        assert_eq!(g.n, Some(10));
    }
}
