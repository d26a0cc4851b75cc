//! A minimal W3C WebDriver client over reqwest, shared by the GUI tests
//! (dev-only; no part of any shipped binary):
//!
//! * the tray app's test (`agent-tauri/tests/gui.rs`) drives the real
//!   `botmox-agent-tray` through WebKitWebDriver;
//! * the web console's browser ring (`control-server/tests/it/browser.rs`)
//!   drives headless Chromium through `chromedriver`.
//!
//! [`Driver`] starts a WebDriver server process on a free loopback port and
//! waits for `/status`; [`Session`] speaks the protocol (capabilities are
//! the caller's, so one client serves both drivers); [`chromium`] starts
//! headless Chromium for the console's tests (control-server's browser
//! ring and agent-core's end-to-end console flow); [`shot`] decides
//! whether a screenshot shows a rendered page or a blank one.

pub mod chromium;
pub mod shot;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The W3C element reference key.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often [`Session::text_of`] finds an element again after it went
/// stale between finding and reading it.
const STALE_RETRIES: usize = 5;

/// WebDriver key codes (`Session::press`).
pub mod keys {
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
    pub const ESCAPE: &str = "\u{E00C}";
    pub const SHIFT: &str = "\u{E008}";
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Is `program` an executable file on `PATH`?
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// A child process killed (by its pid) and reaped on drop.
pub struct Guard {
    pub name: &'static str,
    pub child: Child,
}

impl Guard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("{} exited unexpectedly: {st}", self.name);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver server process (WebKitWebDriver, chromedriver, …).
pub struct Driver {
    pub url: String,
    pub guard: Guard,
}

impl Driver {
    /// Starts `program --port=<free port> args…` with `env` added to its
    /// environment (inherited by the browser it launches), output to `log`;
    /// waits until `/status` answers.
    pub async fn start(
        program: &'static str,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Driver {
        let port = free_port();
        let logf = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut d = Driver {
            url: format!("http://127.0.0.1:{port}"),
            guard: Guard {
                name: program,
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
                "{program} did not answer /status (log: {})",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }
}

/// One WebDriver session.
#[derive(Clone)]
pub struct Session {
    base: String,
    http: reqwest::Client,
}

#[derive(Clone, Debug)]
pub struct Element(pub String);

fn debug() -> bool {
    std::env::var_os("BOTMOX_WD_DEBUG").is_some()
}

impl Session {
    /// New session on the driver at `driver_url` with these capabilities
    /// (the value of `capabilities.alwaysMatch`).
    pub async fn new(driver_url: &str, always_match: Value) -> Session {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": always_match } });
        let r = http
            .post(format!("{driver_url}/session"))
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
            base: format!("{driver_url}/session/{id}"),
            http,
        }
    }

    /// A raw command: `method` on `<session>/path`; the answer's `value`,
    /// or the status and body when it failed.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
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

    /// [`Session::req`] that panics on failure.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.req(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Navigates to `url` (waits for the page load).
    pub async fn goto(&self, url: &str) {
        self.ok("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The current page's URL.
    pub async fn current_url(&self) -> String {
        self.ok("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Sets the window's outer size.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.ok(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    pub async fn find(&self, css: &str) -> Option<Element> {
        let v = self
            .req(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        if debug() {
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
        if debug() {
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

    /// Presses and releases `key` (a [`keys`] code or a character) as a
    /// real key event to the focused element.
    pub async fn press(&self, key: &str) {
        self.ok(
            "POST",
            "/actions",
            Some(json!({"actions": [{
                "type": "key", "id": "keyboard",
                "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}],
            }]})),
        )
        .await;
        let _ = self.req("DELETE", "/actions", None).await;
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

    /// The rendered text of the first match of `css`; "" when nothing
    /// matches. An element swapped out between finding it and reading it
    /// (an htmx refresh replaces the fragment) is found again, so a
    /// one-shot assertion never reads a swap as empty text.
    pub async fn text_of(&self, css: &str) -> String {
        for _ in 0..STALE_RETRIES {
            let Some(e) = self.find(css).await else {
                return String::new();
            };
            match self
                .req("GET", &format!("/element/{}/text", e.0), None)
                .await
            {
                Ok(v) => return v.as_str().unwrap_or_default().to_string(),
                Err(err) if err.contains("stale element") => continue,
                Err(_) => return String::new(),
            }
        }
        String::new()
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

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.ok(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs an asynchronous `script`: it calls `arguments[arguments.length - 1]`
    /// with its result.
    pub async fn exec_async(&self, script: &str, args: Value) -> Value {
        self.ok(
            "POST",
            "/execute/async",
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

    /// The browser's console log since the last call (chromedriver's
    /// `se/log` extension, `goog:loggingPrefs` `browser` set in the
    /// capabilities): entries with `level`, `message`, `source`.
    pub async fn browser_log(&self) -> Result<Vec<Value>, String> {
        let v = self
            .req("POST", "/se/log", Some(json!({"type": "browser"})))
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// PNG bytes of the viewport (WebDriver "Take Screenshot").
    ///
    /// WebKitGTK answers a screenshot only after the page's next
    /// presentation update; without GPU compositing (Xvfb) an idle page
    /// never produces one and the request hangs. So while the request is
    /// pending, a 1x1 px, 1 %-opaque marker in the top-left corner is
    /// toggled to force repaints; it is removed afterwards. (Chromium
    /// answers at once, so the marker is never drawn there.)
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

    /// Ends the session (the driver then closes the browser or app).
    pub async fn close(&self) {
        let _ = self
            .http
            .delete(&self.base)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
    }
}
