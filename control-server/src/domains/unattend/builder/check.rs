//! The structure every answer file must have, as a library function: the
//! builder runs it on each file it writes ([`super::build_answer_file`]
//! refuses to return a file that fails it), and the tests run it on the
//! files they get back over HTTP (the ISO payload, the preview).
//!
//! Checked: well-formed XML (parsed with roxmltree); the root is
//! `unattend` in the namespace `urn:schemas-microsoft-com:unattend`; its
//! children are `settings` elements whose `pass` is one of
//! [`passes::PASSES`], each pass at most once; their children are `component` elements with a
//! `name` and the identity attributes `processorArchitecture="amd64"`,
//! `publicKeyToken="31bf3856ad364e35"`, `language="neutral"`,
//! `versionScope="nonSxS"`; and each component may appear in its pass
//! according to [`passes::COMPONENT_PASSES`]. [`UNATTEND_XSD`] states the
//! same outer structure for `xmllint --schema`.

use super::passes;
use super::NS;

/// The XSD of the outer structure (`builder/unattend.xsd`), for
/// `xmllint --noout --schema`.
pub const UNATTEND_XSD: &str = include_str!("unattend.xsd");

/// The identity attributes every `component` carries, with their values.
pub const COMPONENT_ATTRIBUTES: [(&str, &str); 4] = [
    ("processorArchitecture", "amd64"),
    ("publicKeyToken", "31bf3856ad364e35"),
    ("language", "neutral"),
    ("versionScope", "nonSxS"),
];

/// Check an answer file's structure; on success the `(pass, component)`
/// pairs in document order, on failure the first problem found.
pub fn check_answer_file(xml: &str) -> Result<Vec<(String, String)>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "unattend" || root.tag_name().namespace() != Some(NS) {
        return Err(format!(
            "the root element is {{{}}}{}, not {{{NS}}}unattend",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        ));
    }
    let mut seen = vec![];
    let mut passes_seen = std::collections::HashSet::new();
    for settings in root.children().filter(|n| n.is_element()) {
        if settings.tag_name().name() != "settings" || settings.tag_name().namespace() != Some(NS) {
            return Err(format!(
                "unexpected element {} under unattend (only settings)",
                settings.tag_name().name()
            ));
        }
        let pass = settings
            .attribute("pass")
            .ok_or("a settings element has no pass")?;
        if !passes::PASSES.contains(&pass) {
            return Err(format!("illegal pass {pass:?}"));
        }
        if !passes_seen.insert(pass) {
            return Err(format!("two settings elements for pass {pass}"));
        }
        for comp in settings.children().filter(|n| n.is_element()) {
            if comp.tag_name().name() != "component" || comp.tag_name().namespace() != Some(NS) {
                return Err(format!(
                    "unexpected element {} in settings {pass} (only component)",
                    comp.tag_name().name()
                ));
            }
            let name = comp
                .attribute("name")
                .ok_or_else(|| format!("a component in {pass} has no name"))?;
            for (attr, want) in COMPONENT_ATTRIBUTES {
                if comp.attribute(attr) != Some(want) {
                    return Err(format!(
                        "{name} in {pass}: {attr} is {:?}, not {want:?}",
                        comp.attribute(attr)
                    ));
                }
            }
            match passes::allowed(name, pass) {
                Some(true) => {}
                Some(false) => {
                    return Err(format!(
                        "{name} may not appear in {pass} (see passes::COMPONENT_PASSES)"
                    ))
                }
                None => return Err(format!("{name} is not in passes::COMPONENT_PASSES")),
            }
            seen.push((pass.to_string(), name.to_string()));
        }
    }
    Ok(seen)
}
