//! A minimal W3C WebDriver client over reqwest, for WebKitWebDriver.
//!
//! Why WebKitWebDriver directly and not tauri-driver: on Linux tauri-driver
//! is only a proxy that starts WebKitWebDriver and rewrites
//! `tauri:options.application` into `webkitgtk:browserOptions.binary`
//! (and sets TAURI_WEBVIEW_AUTOMATION=true). Doing that here removes a
//! `cargo install` (minutes on 2 cores) and one process from the chain; the
//! protocol the test speaks is the same. The app is the "browser": the
//! driver launches it with our args and connects through WebKit's
//! automation (WEBKIT_INSPECTOR_SERVER) once wry allows automation, which it
//! does when TAURI_WEBVIEW_AUTOMATION=true is in the environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::display::Guard;

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The WebKitWebDriver process.
pub struct Driver {
    pub url: String,
    pub guard: Guard,
}

impl Driver {
    /// Starts WebKitWebDriver on a free loopback port with `env` (inherited
    /// by the app it launches); waits until /status answers.
    pub async fn start(env: &[(String, String)], log: &Path) -> Driver {
        let port = super::server::free_port();
        let logf = std::fs::File::create(log).unwrap();
        let child = Command::new("WebKitWebDriver")
            .arg(format!("--port={port}"))
            .arg("--host=127.0.0.1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start WebKitWebDriver");
        let mut d = Driver {
            url: format!("http://127.0.0.1:{port}"),
            guard: Guard {
                name: "WebKitWebDriver",
                child,
            },
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            d.guard.assert_running();
            if let Ok(r) = http.get(format!("{}/status", d.url)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "WebKitWebDriver did not answer /status"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }
}

#[derive(Clone)]
pub struct Session {
    base: String,
    http: reqwest::Client,
}

#[derive(Clone, Debug)]
pub struct Element(pub String);

impl Session {
    /// New session whose "browser" is `binary args...`.
    pub async fn new(driver: &Driver, binary: &Path, args: &[&str]) -> Session {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "webkitgtk:browserOptions": {
                        "binary": binary.to_string_lossy(),
                        "args": args,
                    }
                }
            }
        });
        let r = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("POST /session");
        let st = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(st.is_success(), "new session failed: {st} {v}");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"));
        Session {
            base: format!("{}/session/{id}", driver.url),
            http,
        }
    }

    async fn req(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let mut rb = self.http.request(method.parse().unwrap(), &url);
        if let Some(b) = body {
            rb = rb.json(&b);
        } else if method == "POST" {
            rb = rb.json(&json!({}));
        }
        let r = rb
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let st = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !st.is_success() {
            return Err(format!("{method} {path}: {st} {v}"));
        }
        Ok(v["value"].clone())
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.req(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn find(&self, css: &str) -> Option<Element> {
        let v = self
            .req(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        if std::env::var_os("BOTMOX_WD_DEBUG").is_some() {
            eprintln!("find({css}) -> {v:?}");
        }
        let v = v.ok()?;
        v[ELEMENT_KEY].as_str().map(|s| Element(s.to_string()))
    }

    /// Waits until `css` matches an element.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element matches {css} within {within:?}; visible text:\n{}",
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until `css` matches an element that is displayed (checked in
    /// the page: laid out, non-empty box, not hidden by an ancestor).
    pub async fn wait_visible(&self, css: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if self.visible(css).await {
                if let Some(e) = self.find(css).await {
                    return e;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{css} not visible within {within:?}; visible text:\n{}",
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub async fn visible(&self, css: &str) -> bool {
        let v = self
            .req(
                "POST",
                "/execute/sync",
                Some(json!({
                    "script": "const el = document.querySelector(arguments[0]);
                       if (!el || el.closest('[hidden]')) return false;
                       const r = el.getBoundingClientRect();
                       const st = getComputedStyle(el);
                       return r.width > 0 && r.height > 0 && st.visibility !== 'hidden'
                         && st.display !== 'none';",
                    "args": [css],
                })),
            )
            .await;
        if std::env::var_os("BOTMOX_WD_DEBUG").is_some() {
            eprintln!("visible({css}) -> {v:?}");
        }
        matches!(v, Ok(Value::Bool(true)))
    }

    pub async fn click(&self, e: &Element) {
        self.ok("POST", &format!("/element/{}/click", e.0), None)
            .await;
    }

    pub async fn click_css(&self, css: &str) {
        let e = self.wait_visible(css, Duration::from_secs(10)).await;
        self.click(&e).await;
    }

    /// Clears the field, then types `text` into it (real key events).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.wait_visible(css, Duration::from_secs(10)).await;
        self.ok("POST", &format!("/element/{}/clear", e.0), None)
            .await;
        self.ok(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Sets a <select> (or any input) value from JS and fires input+change.
    pub async fn set_value(&self, css: &str, value: &str) {
        self.wait_for(css, Duration::from_secs(10)).await;
        let ok = self
            .exec(
                "const el = document.querySelector(arguments[0]);
                 if (!el) return false;
                 el.value = arguments[1];
                 el.dispatchEvent(new Event('input', {bubbles: true}));
                 el.dispatchEvent(new Event('change', {bubbles: true}));
                 return el.value === arguments[1];",
                json!([css, value]),
            )
            .await;
        assert_eq!(ok, json!(true), "could not set {css} to {value:?}");
    }

    pub async fn text(&self, e: &Element) -> String {
        self.ok("GET", &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn text_of(&self, css: &str) -> String {
        match self.find(css).await {
            Some(e) => self.text(&e).await,
            None => String::new(),
        }
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let v = self
            .exec(
                "const el = document.querySelector(arguments[0]);
                 return el ? el.getAttribute(arguments[1]) : null;",
                json!([css, name]),
            )
            .await;
        v.as_str().map(str::to_string)
    }

    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.ok(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    pub async fn body_text(&self) -> String {
        self.req(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    pub async fn source(&self) -> String {
        self.ok("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// PNG bytes of the webview (WebDriver "Take Screenshot").
    ///
    /// WebKitGTK answers a screenshot only after the page's next
    /// presentation update; without GPU compositing (Xvfb) an idle page
    /// never produces one and the request hangs. So while the request is
    /// pending, a 1x1 px, 1 %-opaque marker in the top-left corner is
    /// toggled to force repaints; it is removed afterwards.
    pub async fn screenshot(&self) -> Vec<u8> {
        let shot = self.req("GET", "/screenshot", None);
        let nudge = async {
            let mut i = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                i += 1;
                let _ = self
                    .req(
                        "POST",
                        "/execute/sync",
                        Some(json!({
                            "script": "let m = document.getElementById('__wd_repaint');
                               if (!m) { m = document.createElement('div'); m.id = '__wd_repaint';
                                 m.style.cssText = 'position:fixed;left:0;top:0;width:1px;height:1px;pointer-events:none;z-index:2147483647';
                                 document.documentElement.appendChild(m); }
                               m.style.background = arguments[0] ? 'rgba(0,0,0,0.01)' : 'rgba(0,0,0,0.02)';",
                            "args": [i.is_multiple_of(2)],
                        })),
                    )
                    .await;
            }
        };
        let v = tokio::select! {
            r = shot => r.unwrap_or_else(|e| panic!("{e}")),
            _ = nudge => unreachable!(),
        };
        let _ = self
            .req(
                "POST",
                "/execute/sync",
                Some(json!({
                    "script": "const m = document.getElementById('__wd_repaint'); if (m) m.remove();",
                    "args": [],
                })),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot is base64"))
            .expect("screenshot base64 decodes")
    }

    /// Saves a screenshot to `dir/name` and returns the path.
    pub async fn save_screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.screenshot().await;
        let p = dir.join(name);
        std::fs::write(&p, png).unwrap();
        p
    }

    /// Ends the session (WebKitWebDriver then closes the app).
    pub async fn close(&self) {
        let _ = self
            .http
            .delete(&self.base)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
    }
}
