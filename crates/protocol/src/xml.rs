//! Writing the XML the query and rest-xml protocols answer with.

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Builds an XML document element by element.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    open: Vec<String>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            open: Vec::new(),
        }
    }

    /// Opens `<name xmlns="...">` (no namespace if `xmlns` is empty).
    pub fn open_ns(&mut self, name: &str, xmlns: &str) -> &mut Writer {
        if xmlns.is_empty() {
            self.out.push_str(&format!("<{name}>"));
        } else {
            self.out
                .push_str(&format!("<{name} xmlns=\"{}\">", escape(xmlns)));
        }
        self.open.push(name.to_owned());
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Writer {
        self.open_ns(name, "")
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Writer {
        self.out
            .push_str(&format!("<{name}>{}</{name}>", escape(text)));
        self
    }

    pub fn close(&mut self) -> &mut Writer {
        if let Some(name) = self.open.pop() {
            self.out.push_str(&format!("</{name}>"));
        }
        self
    }

    /// The document, every open element closed.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_escaped_elements() {
        let mut w = Writer::new();
        w.open_ns("R", "https://x/")
            .open("A")
            .leaf("B", "1 < 2 & \"q\"")
            .close()
            .leaf("C", "");
        assert_eq!(
            w.finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"https://x/\"><A><B>1 &lt; 2 &amp; &quot;q&quot;</B></A><C></C></R>"
        );
    }
}
