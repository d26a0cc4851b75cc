//! Command-line arguments of `botmox-agent-tray`. Parsed by hand: the app
//! must also accept what a second launch, the OS deep-link handler and the
//! autostart entry pass (`botmox://pair?…`, `--autostart`), and ignore
//! anything else instead of refusing to start.

use crate::view::View;

pub const USAGE: &str = "\
Usage: botmox-agent-tray [--show pair|targets|status] [botmox://pair?bundle=…]

Bot-Mox Agent tray app. Lives in the system tray; the window opens from the
tray menu.

Options:
  --show VIEW     open the window on VIEW (pair, targets or status)
  --version, -V   print the version and exit
  --help, -h      print this help and exit

Environment: BOTMOX_AGENT_CONFIG_DIR (config dir), BOTMOX_AGENT_SECRET_STORE
(keyring, secret-service or file), BOTMOX_AGENT_LOG (log filter).";

/// What the command line asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub version: bool,
    pub help: bool,
    /// `--show VIEW`.
    pub show: Option<View>,
    /// A `botmox://` link (deep link) given on the command line.
    pub deep_link: Option<String>,
    /// Started by the OS at login.
    pub autostart: bool,
    /// Arguments that were not understood (logged, not fatal).
    pub ignored: Vec<String>,
    /// `--show` with a value that is not a view.
    pub bad_show: Option<String>,
}

/// Parses `argv` without the program name.
pub fn parse<I, S>(argv: I) -> Args
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut a = Args::default();
    let mut it = argv.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--version" | "-V" => a.version = true,
            "--help" | "-h" => a.help = true,
            "--autostart" => a.autostart = true,
            "--show" => match it.next() {
                Some(v) => set_show(&mut a, &v),
                None => a.bad_show = Some(String::new()),
            },
            s if s.starts_with("--show=") => set_show(&mut a, &s["--show=".len()..]),
            s if s.to_ascii_lowercase().starts_with("botmox://") => a.deep_link = Some(arg),
            _ => a.ignored.push(arg),
        }
    }
    a
}

fn set_show(a: &mut Args, v: &str) {
    match View::parse(v) {
        Some(view) => a.show = Some(view),
        None => a.bad_show = Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_links_and_ignores_the_rest() {
        let a = parse(["--show", "pair"]);
        assert_eq!(a.show, Some(View::Pair));
        let a = parse(["--show=targets", "botmox://pair?bundle=abc", "-psn_0_1"]);
        assert_eq!(a.show, Some(View::Targets));
        assert_eq!(a.deep_link.as_deref(), Some("botmox://pair?bundle=abc"));
        assert_eq!(a.ignored, vec!["-psn_0_1".to_string()]);
        assert!(parse(["--version"]).version);
        assert!(parse(["-V"]).version);
        assert_eq!(parse(["--show", "nope"]).bad_show.as_deref(), Some("nope"));
        assert!(parse(["--autostart"]).autostart);
    }
}
