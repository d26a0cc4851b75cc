//! A private graphical session for one test: Xvfb on a free display (chosen
//! by Xvfb itself via `-displayfd`) and a private D-Bus session bus
//! (`dbus-daemon --session --nofork --print-address`). Both are children of
//! the test and are killed by pid when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use botmox_webdriver::on_path;
/// A child process killed by pid on drop (the shared crate's).
pub use botmox_webdriver::Guard;

/// Programs the GUI tests need.
pub const REQUIRED_TOOLS: &[&str] = &["Xvfb", "WebKitWebDriver", "dbus-daemon", "gdbus"];

/// Returns false (after printing why) when the GUI test must be skipped.
/// Under `CI=true` a missing tool fails the test instead: CI never skips.
pub fn preflight(test: &str) -> bool {
    let missing: Vec<&str> = REQUIRED_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: missing {} — run `sudo bash scripts/gui-test-env.sh`",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: the GUI test must not be skipped)");
    }
    eprintln!("SKIPPED {msg} (set CI=true to make this a failure)");
    false
}

pub struct Display {
    /// e.g. ":7"
    pub display: String,
    /// DBUS_SESSION_BUS_ADDRESS of the private bus.
    pub dbus_address: String,
    // dropped in reverse order of start: bus first, then X
    _dbus: Guard,
    _xvfb: Guard,
}

impl Display {
    /// Starts Xvfb (1280x800, 24 bit, no TCP) and a session bus. `log_dir`
    /// receives xvfb.log and dbus.log.
    pub fn start(log_dir: &Path) -> Display {
        let xlog = std::fs::File::create(log_dir.join("xvfb.log")).unwrap();
        // -displayfd 1: Xvfb picks a free display number and writes it to
        // our stdout pipe once it accepts connections.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(xlog)
            .spawn()
            .expect("start Xvfb");
        let out = xvfb.stdout.take().unwrap();
        let n = read_first_line(out, Duration::from_secs(20), "Xvfb -displayfd");
        let display = format!(":{}", n.trim());
        let xvfb = Guard {
            name: "Xvfb",
            child: xvfb,
        };

        let dlog = std::fs::File::create(log_dir.join("dbus.log")).unwrap();
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(dlog)
            .spawn()
            .expect("start dbus-daemon");
        let out = dbus.stdout.take().unwrap();
        let dbus_address = read_first_line(out, Duration::from_secs(20), "dbus-daemon")
            .trim()
            .to_string();
        assert!(
            dbus_address.starts_with("unix:"),
            "dbus-daemon address: {dbus_address:?}"
        );
        Display {
            display,
            dbus_address,
            _dbus: Guard {
                name: "dbus-daemon",
                child: dbus,
            },
            _xvfb: xvfb,
        }
    }

    /// Environment for every GUI process started in this session.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DISPLAY".into(), self.display.clone()),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.dbus_address.clone()),
            ("GDK_BACKEND".into(), "x11".into()),
            // no accessibility bus in this private session
            ("NO_AT_BRIDGE".into(), "1".into()),
            // software rendering: Xvfb has no GPU
            ("WEBKIT_DISABLE_DMABUF_RENDERER".into(), "1".into()),
            ("WEBKIT_DISABLE_COMPOSITING_MODE".into(), "1".into()),
            ("LIBGL_ALWAYS_SOFTWARE".into(), "1".into()),
        ]
    }

    /// Bus names on the private session bus.
    pub fn bus_names(&self) -> String {
        let out = Command::new("gdbus")
            .args([
                "call",
                "--session",
                "--dest",
                "org.freedesktop.DBus",
                "--object-path",
                "/org/freedesktop/DBus",
                "--method",
                "org.freedesktop.DBus.ListNames",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus_address)
            .output()
            .expect("run gdbus");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Introspects `path` on bus name `dest` (empty string on error).
    pub fn introspect(&self, dest: &str, path: &str) -> String {
        let out = Command::new("gdbus")
            .args([
                "introspect",
                "--session",
                "--dest",
                dest,
                "--object-path",
                path,
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus_address)
            .output()
            .expect("run gdbus");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Finds the tray icon the app exports on the session bus: a
    /// StatusNotifierItem (libayatana-appindicator exports
    /// /org/ayatana/NotificationItem/<id>; ksni-style items use
    /// /StatusNotifierItem). Returns (bus name, object path).
    pub fn find_tray(&self) -> Option<(String, String)> {
        let names = self.bus_names();
        let mut candidates: Vec<String> = names
            .split(['\'', ',', '[', ']', '(', ')'])
            .map(str::trim)
            .filter(|s| s.starts_with(':') || s.starts_with("org.kde.StatusNotifierItem"))
            .map(str::to_string)
            .collect();
        candidates.sort();
        candidates.dedup();
        for name in &candidates {
            let root = self.introspect(name, "/org/ayatana/NotificationItem");
            for line in root.lines() {
                if let Some(rest) = line.trim().strip_prefix("node ") {
                    let child = rest.trim_end_matches('{').trim();
                    let path = format!("/org/ayatana/NotificationItem/{child}");
                    if self
                        .introspect(name, &path)
                        .contains("org.kde.StatusNotifierItem")
                    {
                        return Some((name.clone(), path));
                    }
                }
            }
            if self
                .introspect(name, "/StatusNotifierItem")
                .contains("org.kde.StatusNotifierItem")
            {
                return Some((name.clone(), "/StatusNotifierItem".into()));
            }
        }
        None
    }

    /// The labels of the tray's menu (com.canonical.dbusmenu GetLayout of
    /// the item's `Menu` object), as gdbus prints them.
    pub fn tray_menu(&self, tray: &(String, String)) -> String {
        let menu = self.tray_property(tray, "Menu");
        let Some(path) = menu.split('\'').nth(1) else {
            return format!("(no Menu property: {menu})");
        };
        let out = Command::new("gdbus")
            .args([
                "call",
                "--session",
                "--dest",
                &tray.0,
                "--object-path",
                path,
                "--method",
                "com.canonical.dbusmenu.GetLayout",
                "--", // so that -1 is not read as an option
                "0",
                "-1",
                "[]",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus_address)
            .output()
            .expect("run gdbus");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// A property of the tray's StatusNotifierItem (gdbus text form).
    pub fn tray_property(&self, tray: &(String, String), prop: &str) -> String {
        let out = Command::new("gdbus")
            .args([
                "call",
                "--session",
                "--dest",
                &tray.0,
                "--object-path",
                &tray.1,
                "--method",
                "org.freedesktop.DBus.Properties.Get",
                "org.kde.StatusNotifierItem",
                prop,
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.dbus_address)
            .output()
            .expect("run gdbus");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Reads one line from a child's pipe, with a deadline (a reader thread).
fn read_first_line(r: impl std::io::Read + Send + 'static, within: Duration, what: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(r).read_line(&mut line);
        let _ = tx.send(line);
    });
    let start = Instant::now();
    match rx.recv_timeout(within) {
        Ok(l) if !l.trim().is_empty() => l,
        Ok(_) => panic!("{what} closed its output without printing (see the logs)"),
        Err(_) => panic!("{what} printed nothing within {:?}", start.elapsed()),
    }
}

/// Pids of running processes whose environment contains `KEY=VALUE`
/// (used to find the app processes this test started via WebKitWebDriver).
pub fn pids_with_env(key: &str, value: &str) -> Vec<u32> {
    let needle = format!("{key}={value}");
    let mut out = Vec::new();
    let me = std::process::id();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(env) = std::fs::read(e.path().join("environ")) {
                if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                    out.push(pid);
                }
            }
        }
    }
    out
}
