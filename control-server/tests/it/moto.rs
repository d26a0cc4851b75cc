//! The object stores the tests run on: the server's local store, or S3 on
//! a real S3-compatible server — `moto_server` (PyPI `moto[server]`,
//! installed by `scripts/setup-test-env.sh` into
//! `/var/tmp/botmox-tools/moto`; `BOTMOX_MOTO_SERVER=/path/to/moto_server`
//! overrides it), started per test on a free port of 127.0.0.1 and reached
//! with path-style requests.
//!
//! Without moto an S3 test is skipped with a message — except under
//! `CI=true`, where it fails.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use control_server::config::Settings;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::TestServer;

/// Where `scripts/setup-test-env.sh` installs it.
const MOTO_DEFAULT: &str = "/var/tmp/botmox-tools/moto/bin/moto_server";
/// moto accepts any credentials; these are what the server signs with.
pub const KEY_ID: &str = "botmox-test-key";
pub const SECRET: &str = "botmox-test-secret";
pub const BUCKET: &str = "botmox-objects";

/// A running `moto_server`, killed when dropped.
pub struct Moto {
    child: tokio::process::Child,
    pub port: u16,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn binary() -> Option<PathBuf> {
        let path = std::env::var_os("BOTMOX_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(MOTO_DEFAULT));
        path.is_file().then_some(path)
    }

    /// Start moto on a free port and wait until it answers; `None` (after
    /// saying why) when it is not installed, outside CI.
    pub async fn start() -> Option<Moto> {
        let Some(bin) = Self::binary() else {
            let msg = format!(
                "moto_server not found at {MOTO_DEFAULT} (or BOTMOX_MOTO_SERVER) — run `bash scripts/setup-test-env.sh`"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg} (CI=true: the S3 tests must not be skipped)");
            }
            eprintln!("SKIPPED S3 test: {msg} (set CI=true to make this a failure)");
            return None;
        };
        let mut last = String::new();
        // A port picked free can be taken before moto binds it: try again.
        for _ in 0..3 {
            let port = free_port();
            let mut child = tokio::process::Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("moto_server exited with {status} (port {port} taken?)");
                    break;
                }
                if let Ok(r) = http
                    .get(format!("http://127.0.0.1:{port}/"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        return Some(Moto { child, port });
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if last.is_empty() {
                last = format!("moto_server did not answer on port {port} within 30 s");
            }
            let _ = child.kill().await;
        }
        panic!("{last}");
    }

    /// Create a bucket (moto does not check credentials).
    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Stop it now (the server's S3 calls then fail).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// A client of the bucket with the test credentials (moto refuses
    /// anonymous object requests).
    pub fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .build()
            .expect("S3 test client")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
}

/// The store a test server uses, and a way around the server to it.
pub struct TestStore {
    pub kind: Kind,
    pub moto: Option<Moto>,
}

impl TestStore {
    /// `None`: S3 wanted but moto is not installed (outside CI).
    pub async fn new(kind: Kind) -> Option<TestStore> {
        let moto = match kind {
            Kind::Local => None,
            Kind::S3 => {
                let m = Moto::start().await?;
                m.create_bucket(BUCKET).await;
                Some(m)
            }
        };
        Some(TestStore { kind, moto })
    }

    /// Point the server's settings at this store.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(m) = &self.moto {
            settings.object_store = Some(format!(
                "s3://{BUCKET}?endpoint={}&region=us-east-1",
                m.endpoint()
            ));
            settings.object_store_access_key_id = Some(KEY_ID.into());
            settings.object_store_secret_access_key = Some(SECRET.into());
        }
    }

    fn local_path(s: &TestServer, key: &str) -> PathBuf {
        s.data.path().join("objects").join(key)
    }

    /// Put an object behind the server's back.
    pub async fn put(&self, s: &TestServer, key: &str, bytes: &[u8]) {
        match &self.moto {
            None => {
                let path = Self::local_path(s, key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Some(m) => {
                m.client()
                    .put(&Path::from(key), bytes.to_vec().into())
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
            }
        }
    }

    /// Remove an object behind the server's back.
    pub async fn delete(&self, s: &TestServer, key: &str) {
        match &self.moto {
            None => std::fs::remove_file(Self::local_path(s, key)).unwrap(),
            Some(m) => m
                .client()
                .delete(&Path::from(key))
                .await
                .unwrap_or_else(|e| panic!("delete {key}: {e}")),
        }
    }

    /// The object's bytes as the store holds them (`None`: absent).
    pub async fn get(&self, s: &TestServer, key: &str) -> Option<Vec<u8>> {
        match &self.moto {
            None => std::fs::read(Self::local_path(s, key)).ok(),
            Some(m) => match m.client().get(&Path::from(key)).await {
                Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {key}: {e}"),
            },
        }
    }

    /// How many objects exist under `prefix` (staging files and aborted
    /// uploads must leave none behind).
    pub async fn count(&self, s: &TestServer, prefix: &str) -> usize {
        match &self.moto {
            None => {
                let root = Self::local_path(s, prefix);
                fn walk(p: &std::path::Path) -> usize {
                    match std::fs::read_dir(p) {
                        Ok(rd) => rd
                            .map(|e| {
                                let e = e.unwrap();
                                if e.file_type().unwrap().is_dir() {
                                    walk(&e.path())
                                } else {
                                    1
                                }
                            })
                            .sum(),
                        Err(_) => 0,
                    }
                }
                walk(&root)
            }
            Some(m) => {
                let listed: Vec<_> = m
                    .client()
                    .list(Some(&Path::from(prefix)))
                    .try_collect()
                    .await
                    .unwrap();
                listed.len()
            }
        }
    }
}
