//! Reading the store's XML answers, with `quick-xml`.
//!
//! S3's answers are two levels deep at most where this signer reads them: a root
//! (`ListPartsResult`, `Error`, ...), its children (`UploadId`, `Part`, `Code`), and their
//! children (a `Part`'s `PartNumber`, `ETag` and `Size`). An [`Answer`] keeps those three
//! levels and skips anything deeper, so no answer, however nested, makes a deep tree.
//!
//! S3 answers in a default namespace (`http://s3.amazonaws.com/doc/2006-03-01/`) that some
//! compatible stores leave out, so elements are matched by local name only.

use quick_xml::Reader;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};

/// The levels of elements an [`Answer`] keeps: the root, its children and theirs.
const KEPT_LEVELS: usize = 3;

/// An element: its local name, its text (entities resolved) and its child elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn named(start: &BytesStart<'_>) -> Self {
        Self {
            name: start.local_name().into_inner().to_owned(),
            ..Self::default()
        }
    }
}

/// A parsed answer.
#[derive(Debug)]
pub struct Answer {
    root: Element,
}

impl Answer {
    /// Parses a body; `None` if it is not well-formed XML with one root element.
    pub fn parse(text: &str) -> Option<Self> {
        let mut reader = Reader::from_str(text);
        // The open elements, outermost first; those past KEPT_LEVELS are only counted.
        let mut open: Vec<Element> = Vec::new();
        let mut skipped = 0usize;
        let mut root = None;

        loop {
            match reader.read_event().ok()? {
                Event::Start(start) => {
                    if root.is_some() && open.is_empty() {
                        return None; // a second root
                    } else if skipped > 0 || open.len() == KEPT_LEVELS {
                        skipped += 1;
                    } else {
                        open.push(Element::named(&start));
                    }
                }
                Event::End(_) if skipped > 0 => skipped -= 1,
                Event::End(_) => {
                    let element = open.pop()?;
                    match open.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => root = Some(element),
                    }
                }
                Event::Empty(start) => {
                    if root.is_some() && open.is_empty() {
                        return None;
                    } else if skipped > 0 || open.len() == KEPT_LEVELS {
                        // deeper than kept
                    } else if let Some(parent) = open.last_mut() {
                        parent.children.push(Element::named(&start));
                    } else {
                        root = Some(Element::named(&start));
                    }
                }
                Event::Text(text) if skipped == 0 => push_text(&mut open, &text.xml10_content())?,
                Event::CData(data) if skipped == 0 => push_text(&mut open, &data.xml10_content())?,
                Event::GeneralRef(reference) if skipped == 0 => {
                    let resolved = match reference.resolve_char_ref().ok()? {
                        Some(c) => c.to_string(),
                        None => resolve_xml_entity(&reference.into_inner())?.to_owned(),
                    };
                    push_text(&mut open, &resolved)?;
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !open.is_empty() || skipped > 0 {
            return None;
        }
        root.map(|root| Self { root })
    }

    /// The root element's local name (`Error`, `ListPartsResult`, ...).
    pub fn root_name(&self) -> &str {
        &self.root.name
    }

    /// The text of the first child of the root with this name.
    pub fn text(&self, name: &str) -> Option<String> {
        child_text(&self.root, name)
    }

    /// The children of the root with this name.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.root.children.iter().filter(move |n| n.name == name)
    }
}

/// Adds text to the innermost open element. Text outside the root may only be
/// whitespace.
fn push_text(open: &mut [Element], text: &str) -> Option<()> {
    match open.last_mut() {
        Some(element) => element.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return None,
    }
    Some(())
}

/// The text of the first child element of `node` with this name.
pub fn child_text(node: &Element, name: &str) -> Option<String> {
    node.children
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.text.clone())
}

/// Escapes text for an XML element.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_character_references_are_resolved() {
        let answer = Answer::parse(
            "<ListPartsResult><Part><ETag>&quot;a&amp;b&#65;&#x42;&quot;</ETag></Part>\
             </ListPartsResult>",
        )
        .unwrap();
        let part = answer.children("Part").next().unwrap();
        assert_eq!(child_text(part, "ETag").as_deref(), Some("\"a&bAB\""));
    }

    #[test]
    fn names_are_matched_without_their_namespace_prefix() {
        let answer = Answer::parse(
            r#"<?xml version="1.0"?><s3:Error xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">
            <s3:Code>NoSuchUpload</s3:Code><!-- a comment --><Message><![CDATA[gone <now>]]></Message>
            </s3:Error>"#,
        )
        .unwrap();
        assert_eq!(answer.root_name(), "Error");
        assert_eq!(answer.text("Code").as_deref(), Some("NoSuchUpload"));
        assert_eq!(answer.text("Message").as_deref(), Some("gone <now>"));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for text in [
            "",
            "not xml",
            "<a><b></a>",
            "<a>",
            "<a></a><b></b>",
            "<a/><b/>",
            "<a>&unknown;</a>",
            "text<a></a>",
            "</a>",
        ] {
            assert!(Answer::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn elements_deeper_than_three_levels_are_skipped() {
        let deep = format!(
            "<Root><Part><ETag>e</ETag><More>{}</More></Part></Root>",
            "<x>".repeat(100_000) + &"</x>".repeat(100_000)
        );
        let answer = Answer::parse(&deep).unwrap();
        let part = answer.children("Part").next().unwrap();
        assert_eq!(child_text(part, "ETag").as_deref(), Some("e"));
        assert_eq!(child_text(part, "More").as_deref(), Some(""));
    }

    #[test]
    fn escape_covers_the_five_special_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}
