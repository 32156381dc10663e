//! Reading JSON into typed values, with errors that name the member at fault
//! (`parts[2].etag`), for request bodies and for the configuration.
//!
//! `serde_json` does the reading. When it refuses a document for what it holds (a wrong
//! type, an unknown, missing or repeated member) rather than for its syntax, it says
//! where it stopped, as a line and a column. [`path_at`] walks the document up to that
//! point and names the member it is in. The usual way, wrapping every deserializer as
//! `serde_path_to_error` does, made 11 KB of the Worker's 240 KB (compressed): each
//! type read got a second, tracking copy of its reading code. Walking the text once,
//! only when there is an error, costs one small function.
//!
//! The paths have the form `serde_path_to_error` gives (members joined by `.`, array
//! indices as `[i]`, `.` for the document itself); a property test checks that both
//! name the same member for the same error.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use serde::de::DeserializeOwned;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// The document is not JSON (or ends too soon), as opposed to JSON of the wrong shape.
    pub syntax: bool,
    /// `serde_json`'s message, without its "at line 1 column 9" suffix.
    pub message: String,
    /// The member at fault; `.` for the document as a whole. A missing member is named
    /// itself (`parts[0].etag`), not by the object that lacks it.
    pub path: String,
}

/// Reads a whole document (nothing but whitespace may follow it) into `T`.
pub fn from_slice<T: DeserializeOwned>(document: &[u8]) -> Result<T, JsonError> {
    serde_json::from_slice(document).map_err(|error| describe(document, &error))
}

fn describe(document: &[u8], error: &serde_json::Error) -> JsonError {
    let full = error.to_string();
    let message = full
        .rfind(" at line ")
        .map_or(full.as_str(), |at| &full[..at])
        .to_owned();
    if !error.is_data() {
        return JsonError {
            syntax: true,
            message,
            path: ".".to_owned(),
        };
    }

    let mut path = path_at(document, offset_of(document, error.line(), error.column()));
    // serde reports a missing member where its object ends: name the member itself.
    if let Some(name) = quoted_name(&message, "missing field `") {
        push_key(&mut path, name);
    }
    JsonError {
        syntax: false,
        message,
        path: if path.is_empty() {
            ".".to_owned()
        } else {
            path
        },
    }
}

/// The byte offset of `serde_json`'s line (from 1) and column (bytes into the line).
fn offset_of(document: &[u8], line: usize, column: usize) -> usize {
    let line_start = document
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| i + 1);
    if line <= 1 {
        column
    } else {
        line_start + column
    }
    .min(document.len())
}

/// Where the walk stands in one open object or array.
enum Frame {
    /// An object, and the name of the member whose name has been read, if one has.
    Object { member: Option<String> },
    /// An array, and the index of the element being read.
    Array { index: usize },
}

/// The path of the member that the first `offset` bytes of `document` end in.
///
/// Only called for documents that `serde_json` has read as far as `offset` without a
/// syntax error, so it needs no checks of its own: it only tracks which objects and
/// arrays are open, which member each object is at, and each array's index.
pub fn path_at(document: &[u8], offset: usize) -> String {
    let text = &document[..offset.min(document.len())];
    let mut frames: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => frames.push(Frame::Object { member: None }),
            b'[' => frames.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Object { member }) => *member = None,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let end = string_end(text, i);
                if let Some(Frame::Object {
                    member: member @ None,
                }) = frames.last_mut()
                {
                    // A string where a member name is due is the name. It is read with
                    // serde_json, which knows its escapes.
                    *member = serde_json::from_slice(&text[i..end]).ok();
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }

    let mut path = String::new();
    for frame in &frames {
        match frame {
            Frame::Object {
                member: Some(member),
            } => push_key(&mut path, member),
            Frame::Object { member: None } => {}
            Frame::Array { index } => {
                let _ = write!(path, "[{index}]");
            }
        }
    }
    path
}

/// The index just past the string that starts at `start` (or the end of `text`).
fn string_end(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// The name in a serde message such as "missing field `size`".
fn quoted_name<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

#[cfg(test)]
mod tests;
