//! Which component may appear in which configuration pass, from
//! Microsoft's "Unattended Windows Setup Reference"
//! (<https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/>):
//! each component's page lists its "Applies to" passes. Every generated
//! answer file is checked against this table in the tests.

/// The configuration passes a `settings` element may name ("Windows Setup
/// Configuration Passes",
/// <https://learn.microsoft.com/windows-hardware/manufacture/desktop/windows-setup-configuration-passes>,
/// and the `pass` enumeration of the answer-file schema WSIM uses). The
/// issue speaks of eight; Microsoft documents these seven.
pub const PASSES: [&str; 7] = [
    "windowsPE",
    "offlineServicing",
    "generalize",
    "specialize",
    "auditSystem",
    "auditUser",
    "oobeSystem",
];

/// `(component, passes it may appear in, reference page)`.
pub const COMPONENT_PASSES: &[(&str, &[&str], &str)] = &[
    (
        "Microsoft-Windows-International-Core-WinPE",
        &["windowsPE"],
        "https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/microsoft-windows-international-core-winpe",
    ),
    (
        "Microsoft-Windows-Setup",
        &["windowsPE"],
        "https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/microsoft-windows-setup",
    ),
    (
        "Microsoft-Windows-Shell-Setup",
        &["offlineServicing", "generalize", "specialize", "auditSystem", "auditUser", "oobeSystem"],
        "https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/microsoft-windows-shell-setup",
    ),
    (
        "Microsoft-Windows-International-Core",
        &["specialize", "oobeSystem"],
        "https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/microsoft-windows-international-core",
    ),
    (
        "Microsoft-Windows-Deployment",
        &["generalize", "specialize", "auditSystem", "auditUser", "oobeSystem"],
        "https://learn.microsoft.com/windows-hardware/customize/desktop/unattend/microsoft-windows-deployment",
    ),
];

/// Whether `component` may appear in `pass`; `None` for a component the
/// table does not know (a builder change must add it here first).
pub fn allowed(component: &str, pass: &str) -> Option<bool> {
    COMPONENT_PASSES
        .iter()
        .find(|(c, _, _)| *c == component)
        .map(|(_, passes, _)| passes.contains(&pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let legal = PASSES;
        for (c, passes, page) in COMPONENT_PASSES {
            assert!(!passes.is_empty(), "{c}");
            assert!(passes.iter().all(|p| legal.contains(p)), "{c}: {passes:?}");
            assert!(page.starts_with("https://learn.microsoft.com/"), "{c}");
            assert!(page.ends_with(&c.to_ascii_lowercase()), "{c}: {page}");
        }
        assert_eq!(allowed("Microsoft-Windows-Setup", "windowsPE"), Some(true));
        assert_eq!(
            allowed("Microsoft-Windows-Setup", "specialize"),
            Some(false)
        );
        assert_eq!(
            allowed("Microsoft-Windows-Shell-Setup", "windowsPE"),
            Some(false)
        );
        assert_eq!(allowed("Microsoft-Windows-Unknown", "windowsPE"), None);
    }
}
