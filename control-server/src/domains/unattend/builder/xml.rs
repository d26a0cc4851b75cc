//! A small XML writer: elements, attributes and text, every value escaped
//! (`& < > " '`), characters XML 1.0 cannot carry refused. Output is
//! indented with two spaces, one element per line.

use super::BuildError;

/// Escape text or an attribute value. Tab, LF and CR become character
/// references (so attribute normalisation keeps them); other characters
/// XML 1.0 forbids are an error.
pub fn escape(value: &str, context: &str) -> Result<String, BuildError> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if xml_char(c) => out.push(c),
            c => {
                return Err(BuildError::UnrepresentableCharacter {
                    context: context.to_string(),
                    codepoint: c as u32,
                })
            }
        }
    }
    Ok(out)
}

/// Characters XML 1.0 allows (besides tab, LF, CR handled above).
fn xml_char(c: char) -> bool {
    matches!(c as u32, 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

pub struct Writer {
    out: String,
    stack: Vec<&'static str>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            out: String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"),
            stack: vec![],
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.out.push_str("  ");
        }
    }

    fn open_tag(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> Result<(), BuildError> {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v, name)?);
            self.out.push('"');
        }
        Ok(())
    }

    /// `<name attrs…>` and descend.
    pub fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> Result<(), BuildError> {
        self.open_tag(name, attrs)?;
        self.out.push_str(">\n");
        self.stack.push(name);
        Ok(())
    }

    pub fn close(&mut self) {
        let name = self.stack.pop().expect("close matches an open");
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// `<name attrs…>text</name>` on one line.
    pub fn leaf(
        &mut self,
        name: &'static str,
        attrs: &[(&str, &str)],
        text: &str,
    ) -> Result<(), BuildError> {
        self.open_tag(name, attrs)?;
        self.out.push('>');
        self.out.push_str(&escape(text, name)?);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        Ok(())
    }

    pub fn text(&mut self, name: &'static str, text: &str) -> Result<(), BuildError> {
        self.leaf(name, &[], text)
    }

    pub fn finish(self) -> String {
        assert!(self.stack.is_empty(), "unclosed {:?}", self.stack);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            escape("a<b>&\"c'", "x").unwrap(),
            "a&lt;b&gt;&amp;&quot;c&apos;"
        );
        assert_eq!(escape("tab\there\n", "x").unwrap(), "tab&#x9;here&#xA;");
        assert_eq!(escape("Jürgen 日本 🚀", "x").unwrap(), "Jürgen 日本 🚀");
        assert!(matches!(
            escape("bell\u{7}", "Name"),
            Err(BuildError::UnrepresentableCharacter { codepoint: 7, .. })
        ));
        assert!(escape("\u{FFFE}", "x").is_err());
    }
}
