//! Test support: PowerShell syntax checking with a real parser (Airbus
//! CERT's tree-sitter grammar for PowerShell, from crates.io). No PowerShell
//! runs here; this is what can be checked without one: every script we ship
//! or generate parses, with no error or missing node.

use tree_sitter::{Node, Parser};

/// The syntax errors of `script`, each as `line:column: what`; empty when
/// it parses cleanly.
pub fn syntax_errors(script: &str) -> Vec<String> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("load the PowerShell grammar");
    let tree = parser.parse(script, None).expect("parse");
    let mut out = Vec::new();
    collect(tree.root_node(), script, &mut out);
    out
}

fn collect(node: Node, src: &str, out: &mut Vec<String>) {
    if node.is_error() || node.is_missing() {
        let p = node.start_position();
        let text: String = src[node.byte_range()].chars().take(60).collect();
        let what = if node.is_missing() {
            format!("missing {}", node.kind())
        } else {
            format!("cannot parse {text:?}")
        };
        out.push(format!("{}:{}: {what}", p.row + 1, p.column + 1));
        return;
    }
    if !node.has_error() {
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect(child, src, out);
    }
}

/// Panics with every syntax error of `script` (named `name`).
pub fn assert_parses(name: &str, script: &str) {
    let errors = syntax_errors(script);
    assert!(
        errors.is_empty(),
        "{name} is not valid PowerShell:\n{}",
        errors.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_finds_errors() {
        assert!(syntax_errors("$a = 1\nif ($a -eq 1) { Write-Host 'one' }\n").is_empty());
        for broken in [
            "if ($a -eq 1) { Write-Host 'one'\n",
            "$x = @(1, 2\n",
            "function f { param([string]$p) \n",
            "Write-Host 'unterminated\n",
            "try { 1 } catch { 2 } finally {\n",
        ] {
            assert!(
                !syntax_errors(broken).is_empty(),
                "{broken:?} should not parse"
            );
        }
    }
}
