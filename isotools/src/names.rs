//! Name rules for the three namespaces.
//!
//! * Rock Ridge keeps the exact Unicode name (up to 255 bytes).
//! * Joliet keeps the exact name as UCS-2/UTF-16 big endian, at most 64 code units,
//!   without the characters Joliet forbids (`* / : ; ? \`).
//! * The primary (ECMA-119 level 1) namespace gets an 8.3 d-character name, made
//!   unique inside its directory with a `~N` suffix.

use std::collections::HashSet;

use crate::error::{IsoError, Result};

/// Longest Rock Ridge / POSIX name component, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest Joliet name, in UTF-16 code units.
pub const MAX_JOLIET_UNITS: usize = 64;
const JOLIET_FORBIDDEN: &[char] = &['*', '/', ':', ';', '?', '\\'];

/// Checks the rules every name must satisfy regardless of options.
pub(crate) fn check_basic(path: &str, name: &str) -> Result<()> {
    let invalid = |reason: &str| IsoError::InvalidName {
        path: path.to_string(),
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("empty name component"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are reserved"));
    }
    if name.contains('/') {
        return Err(invalid(
            "'/' separates path components and cannot be part of a name",
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(invalid(
            "control characters (including NUL, tab and newline) are not allowed",
        ));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(IsoError::NameTooLong {
            path: path.to_string(),
            len: name.len(),
        });
    }
    Ok(())
}

/// Checks the additional Joliet rules and returns the UTF-16 code units.
pub(crate) fn joliet_units(path: &str, name: &str) -> Result<Vec<u16>> {
    if let Some(c) = name.chars().find(|c| JOLIET_FORBIDDEN.contains(c)) {
        return Err(IsoError::InvalidName {
            path: path.to_string(),
            name: name.to_string(),
            reason: format!("character {c:?} is not allowed in Joliet names (* / : ; ? \\); rename the entry or disable Joliet"),
        });
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err(IsoError::InvalidName {
            path: path.to_string(),
            name: name.to_string(),
            reason: "Joliet names ending in '.' or ' ' cannot be opened on Windows (and 7-Zip strips the ending); rename the entry or disable Joliet".into(),
        });
    }
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.len() > MAX_JOLIET_UNITS {
        return Err(IsoError::JolietNameTooLong {
            path: path.to_string(),
            units: units.len(),
        });
    }
    Ok(units)
}

/// Joliet identifier bytes: the UCS-2 BE name, with no `;1` version suffix
/// for files either — what genisoimage and xorriso write, and so what
/// Windows Setup is fed by Packer and the Windows-template projects
/// (`isoinfo -J -f` lists `/autounattend.xml`, not `/autounattend.xml;1`).
pub(crate) fn joliet_identifier(units: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.len() * 2);
    for u in units {
        out.extend_from_slice(&u.to_be_bytes());
    }
    out
}

fn d_char(c: char) -> char {
    match c {
        'A'..='Z' | '0'..='9' | '_' => c,
        'a'..='z' => c.to_ascii_uppercase(),
        _ => '_',
    }
}

fn mapped(s: &str, max: usize) -> String {
    s.chars().map(d_char).take(max).collect()
}

/// A primary (level 1) name: base up to 8 d-characters, extension up to 3 (files only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PrimaryName {
    pub base: String,
    pub ext: String,
    pub is_file: bool,
}

impl PrimaryName {
    fn key(&self) -> String {
        if self.ext.is_empty() {
            self.base.clone()
        } else {
            format!("{}.{}", self.base, self.ext)
        }
    }

    /// The identifier as recorded: `BASE.EXT;1` for files, `BASE` for directories.
    pub(crate) fn identifier(&self) -> Vec<u8> {
        if self.is_file {
            format!("{}.{};1", self.base, self.ext).into_bytes()
        } else {
            self.base.clone().into_bytes()
        }
    }
}

fn primary_candidate(name: &str, is_file: bool) -> PrimaryName {
    let (base, ext) = if is_file {
        match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
            _ => (name, ""),
        }
    } else {
        (name, "")
    };
    let mut base = mapped(base, 8);
    if base.is_empty() {
        base.push('_');
    }
    PrimaryName {
        base,
        ext: mapped(ext, 3),
        is_file,
    }
}

/// Assigns unique primary names to the entries of one directory.
///
/// `entries` are `(name, is_file)` in a deterministic order (the caller passes
/// them sorted by their original name); the first entry that maps to a
/// candidate keeps it, later ones get `~1`, `~2`, ... spliced into the base.
pub(crate) fn assign_primary(entries: &[(&str, bool)]) -> Vec<PrimaryName> {
    let mut used: HashSet<String> = HashSet::with_capacity(entries.len());
    let mut out = Vec::with_capacity(entries.len());
    for &(name, is_file) in entries {
        let cand = primary_candidate(name, is_file);
        if used.insert(cand.key()) {
            out.push(cand);
            continue;
        }
        let mut n: u64 = 1;
        loop {
            let suffix = format!("~{n}");
            // A base of 8 characters leaves room for up to 7 suffix characters,
            // which is 10^6 - 1 variants per candidate; beyond that keep growing
            // into the base's characters (never reached in practice).
            let keep = 8usize.saturating_sub(suffix.len());
            let prefix: String = cand.base.chars().take(keep).collect();
            let try_name = PrimaryName {
                base: format!("{prefix}{suffix}"),
                ext: cand.ext.clone(),
                is_file,
            };
            if used.insert(try_name.key()) {
                out.push(try_name);
                break;
            }
            n += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_names_are_d_chars_and_unique() {
        let names = [
            ("Autounattend.xml", true),
            ("autounattend.xml", true),
            ("AutounattendX.xml", true),
            ("user-data", true),
            (".hidden", true),
            ("dir.with.dots", false),
            ("ümlaut file.tar.gz", true),
        ];
        let got = assign_primary(&names);
        let ids: Vec<String> = got
            .iter()
            .map(|p| String::from_utf8(p.identifier()).unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "AUTOUNAT.XML;1",
                "AUTOUN~1.XML;1",
                "AUTOUN~2.XML;1",
                "USER_DAT.;1",
                "_HIDDEN.;1",
                "DIR_WITH",
                "_MLAUT_F.GZ;1"
            ]
        );
    }

    #[test]
    fn directory_and_file_with_same_stem_do_not_collide_silently() {
        let got = assign_primary(&[("foo", false), ("FOO", true)]);
        assert_eq!(got[0].identifier(), b"FOO");
        assert_eq!(got[1].identifier(), b"FOO~1.;1");
    }

    #[test]
    fn joliet_rules() {
        assert!(joliet_units("/a", &"x".repeat(64)).is_ok());
        assert!(matches!(
            joliet_units("/a", &"x".repeat(65)),
            Err(IsoError::JolietNameTooLong { units: 65, .. })
        ));
        assert!(joliet_units("/a", "a:b").is_err());
        assert!(joliet_units("/a", "trailing.").is_err());
        assert!(joliet_units("/a", "trailing ").is_err());
        assert!(joliet_units("/a", " leading.ok").is_ok());
        // a non-BMP character takes two UTF-16 units
        assert_eq!(joliet_units("/a", "😀").unwrap().len(), 2);
        assert_eq!(joliet_identifier(&[0x41, 0x42]), vec![0, 0x41, 0, 0x42]);
    }

    #[test]
    fn basic_rules() {
        for bad in ["", ".", "..", "a/b", "a\0b", "tab\tname"] {
            assert!(check_basic("/x", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_basic("/x", &"y".repeat(256)).is_err());
        assert!(check_basic("/x", "normal name (1).txt").is_ok());
    }
}
