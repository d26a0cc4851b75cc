//! The `ssh-exec` allowlist (inventory §4.7) as a parser: an allowlisted
//! command is parsed into argv (program + arguments), every argument must
//! match a strict character class, and the remote command line is rebuilt
//! from the argv with [`sh_quote`] around every word, so the remote shell
//! never interprets anything the payload wrote.
//!
//! Accepted (literal words case-insensitive, written back in lower case):
//!
//! - `qm status|start|stop|shutdown|reset|suspend|resume <vmid>`
//! - `qm sendkey <vmid> <key>` — key `[A-Za-z0-9_+-]{1,64}`, not starting with `-`
//! - `cat /etc/pve/qemu-server/<vmid>.conf`
//! - `pvesh get /nodes/<node>/qemu[/]` — node by PVE's node-name rule
//!   (`[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?`)
//! - `pvesh get /cluster/resources[/]`
//!
//! `<vmid>` is 1..=999999999 written without leading zeros. The whole input
//! may only contain `[A-Za-z0-9._:/+-]` and ASCII space (words are separated
//! by one or more spaces) and is at most [`MAX_COMMAND_LEN`] bytes: tabs,
//! CR/LF, NUL, non-ASCII (unicode whitespace) and every shell
//! metacharacter are refused before any word is looked at.

/// Longest accepted command, in bytes.
pub const MAX_COMMAND_LEN: usize = 256;

/// Why a command is not allowlisted (shown in `SSH_COMMAND_FORBIDDEN`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error("the command is empty")]
    Empty,
    #[error("the command is {0} bytes long (at most {MAX_COMMAND_LEN})")]
    TooLong(usize),
    #[error(
        "character {ch:?} at byte {at} is not allowed (only letters, digits, spaces and . _ : / + -)"
    )]
    BadChar { ch: char, at: usize },
    #[error("{0:?} is not one of the allowlisted commands")]
    NotAllowlisted(String),
    #[error("invalid {what} {value:?}")]
    BadArgument { what: &'static str, value: String },
}

/// An allowlisted command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedCommand {
    argv: Vec<String>,
}

impl AllowedCommand {
    /// Program and arguments, canonical (lower-case literals).
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The command line sent to the SSH server: every word single-quoted.
    pub fn to_remote_command(&self) -> String {
        self.argv
            .iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes one word for a POSIX shell: `'…'`, with `'` written as `'\''`.
/// The only quoting function of the SSH executor (allowlisted argv, config
/// paths).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '+' | '-' | ' ')
}

fn vmid(word: &str) -> Result<String, AllowlistError> {
    let bad = || AllowlistError::BadArgument {
        what: "VM id",
        value: word.to_string(),
    };
    if word.is_empty()
        || word.len() > 9
        || word.starts_with('0')
        || !word.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    Ok(word.to_string())
}

/// PVE's node-name rule (format `pve-node`): a host name label.
pub fn is_valid_node_name(node: &str) -> bool {
    let b = node.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn sendkey(word: &str) -> Result<String, AllowlistError> {
    if word.is_empty()
        || word.len() > 64
        || word.starts_with('-')
        || !word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
    {
        return Err(AllowlistError::BadArgument {
            what: "key",
            value: word.to_string(),
        });
    }
    Ok(word.to_string())
}

/// `/nodes/<node>/qemu[/]` → the node.
fn nodes_qemu_path(path: &str) -> Option<&str> {
    let lower = path.to_ascii_lowercase();
    if !lower.starts_with("/nodes/") {
        return None;
    }
    let rest = &path["/nodes/".len()..];
    let rest_lower = &lower["/nodes/".len()..];
    let end = if rest_lower.ends_with("/qemu/") {
        rest.len() - "/qemu/".len()
    } else if rest_lower.ends_with("/qemu") {
        rest.len() - "/qemu".len()
    } else {
        return None;
    };
    Some(&rest[..end])
}

/// Parses `command` against the allowlist.
pub fn parse(command: &str) -> Result<AllowedCommand, AllowlistError> {
    if command.len() > MAX_COMMAND_LEN {
        return Err(AllowlistError::TooLong(command.len()));
    }
    if let Some((at, ch)) = command.char_indices().find(|(_, c)| !allowed_char(*c)) {
        return Err(AllowlistError::BadChar { ch, at });
    }
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Err(AllowlistError::Empty);
    }
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let argv: Vec<String> = match l.as_slice() {
        ["qm", action @ ("status" | "start" | "stop" | "shutdown" | "reset" | "suspend" | "resume"), _] =>
        {
            vec!["qm".into(), (*action).into(), vmid(words[2])?]
        }
        ["qm", "sendkey", _, _] => vec![
            "qm".into(),
            "sendkey".into(),
            vmid(words[2])?,
            sendkey(words[3])?,
        ],
        ["cat", path] => {
            let id = path
                .strip_prefix("/etc/pve/qemu-server/")
                .and_then(|p| p.strip_suffix(".conf"))
                .ok_or_else(|| AllowlistError::NotAllowlisted(command.to_string()))?;
            vec![
                "cat".into(),
                format!("/etc/pve/qemu-server/{}.conf", vmid(id)?),
            ]
        }
        ["pvesh", "get", "/cluster/resources" | "/cluster/resources/"] => {
            vec!["pvesh".into(), "get".into(), "/cluster/resources".into()]
        }
        ["pvesh", "get", _] => {
            let node = nodes_qemu_path(words[2])
                .ok_or_else(|| AllowlistError::NotAllowlisted(command.to_string()))?;
            if !is_valid_node_name(node) {
                return Err(AllowlistError::BadArgument {
                    what: "node name",
                    value: node.to_string(),
                });
            }
            vec!["pvesh".into(), "get".into(), format!("/nodes/{node}/qemu")]
        }
        _ => return Err(AllowlistError::NotAllowlisted(command.to_string())),
    };
    Ok(AllowedCommand { argv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_commands_become_quoted_argv() {
        for (input, argv) in [
            ("qm status 101", "'qm' 'status' '101'"),
            ("QM start 9000", "'qm' 'start' '9000'"),
            ("  qm   STOP  7  ", "'qm' 'stop' '7'"),
            (
                "qm sendkey 101 ctrl-alt-delete",
                "'qm' 'sendkey' '101' 'ctrl-alt-delete'",
            ),
            (
                "cat /etc/pve/qemu-server/101.conf",
                "'cat' '/etc/pve/qemu-server/101.conf'",
            ),
            (
                "pvesh get /nodes/pve/qemu",
                "'pvesh' 'get' '/nodes/pve/qemu'",
            ),
            (
                "pvesh get /Nodes/pve-2/QEMU/",
                "'pvesh' 'get' '/nodes/pve-2/qemu'",
            ),
            (
                "pvesh get /cluster/resources/",
                "'pvesh' 'get' '/cluster/resources'",
            ),
        ] {
            assert_eq!(parse(input).unwrap().to_remote_command(), argv, "{input}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        for bad in [
            "qm destroy 101",
            "qm status 101 extra",
            "qm status 0101",
            "qm status 0",
            "qm status 1234567890",
            "qm sendkey 101 --skiplock",
            "cat /etc/shadow",
            "cat /etc/pve/qemu-server/../../shadow.conf",
            "cat /etc/pve/qemu-server/101.conf.bak",
            "pvesh set /nodes/pve/qemu",
            "pvesh get /nodes/-pve/qemu",
            "pvesh get /nodes/pve./qemu",
            "pvesh get /nodes/a/b/qemu",
            "pvesh get /nodes//qemu",
            "pvesh get /access/users",
            "",
            "   ",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(parse("").unwrap_err(), AllowlistError::Empty);
        assert_eq!(
            parse("qm status 1\t").unwrap_err(),
            AllowlistError::BadChar { ch: '\t', at: 11 }
        );
        assert_eq!(
            parse(&"1".repeat(300)).unwrap_err(),
            AllowlistError::TooLong(300)
        );
    }

    #[test]
    fn sh_quote_round_trips_through_sh() {
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
        assert_eq!(sh_quote(""), "''");
        for word in [
            "a b",
            "$(id)",
            "`id`",
            "'",
            "''\\'",
            "a\nb",
            "*",
            "; rm -rf /",
            "ü",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote(word)))
                .output()
                .expect("sh");
            assert_eq!(String::from_utf8_lossy(&out.stdout), word, "{word:?}");
        }
    }
}
