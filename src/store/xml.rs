//! Reading the store's XML answers with `roxmltree`.
//!
//! S3 answers in a default namespace (`http://s3.amazonaws.com/doc/2006-03-01/`) that some
//! compatible stores leave out, so elements are matched by local name only.

use roxmltree::{Document, Node};

/// A parsed answer.
pub struct Answer<'a> {
    doc: Document<'a>,
}

impl<'a> Answer<'a> {
    /// Parses a body; `None` if it is not XML.
    pub fn parse(text: &'a str) -> Option<Self> {
        Document::parse(text).ok().map(|doc| Self { doc })
    }

    /// The root element's local name (`Error`, `ListPartsResult`, ...).
    pub fn root_name(&self) -> &str {
        self.doc.root_element().tag_name().name()
    }

    /// The text of the first child of the root with this name.
    pub fn text(&self, name: &str) -> Option<String> {
        child_text(self.doc.root_element(), name)
    }

    /// The children of the root with this name.
    pub fn children(&self, name: &'a str) -> impl Iterator<Item = Node<'_, 'a>> + '_ {
        self.doc
            .root_element()
            .children()
            .filter(move |n| n.is_element() && n.tag_name().name() == name)
    }
}

/// The text of the first child element of `node` with this name.
pub fn child_text(node: Node<'_, '_>, name: &str) -> Option<String> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .map(|n| n.text().unwrap_or_default().to_owned())
}

/// Escapes text for an XML element.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}
