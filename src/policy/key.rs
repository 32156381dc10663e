//! Object keys: templates, the pieces that fill them, and the rules every key obeys.
//!
//! A profile's key template is fixed text with placeholders:
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{subject}` | the caller's owner segment (see [`owner_segment`]) |
//! | `{uuid}` | a random UUID (version 4), from the request's random bytes |
//! | `{filename}` | the client's file name, made safe (see [`sanitize_filename`]) |
//! | `{ext}` | the file name's extension, lowercase, without the dot (may be empty) |
//! | `{date}` | the request's UTC date, `YYYY-MM-DD` |
//! | `{year}`, `{month}`, `{day}` | parts of that date |
//!
//! `{subject}` must appear as a whole segment after literal text only
//! (`users/{subject}/...`), so that every key a subject can create starts with that
//! subject's own prefix. Nothing a client sends can move a key out of it: placeholders
//! never produce `/`, and the rendered key is checked again (no empty, `.` or `..`
//! segments, no control characters, at most 1024 bytes, S3's limit).

#![forbid(unsafe_code)]

use chrono::{DateTime, Datelike, Utc};

/// The longest key S3 and R2 accept, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest file name kept, in UTF-8 bytes (a common file system limit).
const MAX_FILENAME_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Subject,
    Uuid,
    Filename,
    Ext,
    Date,
    Year,
    Month,
    Day,
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    pieces: Vec<Piece>,
    /// The literal text before `{subject}`, such as `users/`.
    owner_prefix_literal: String,
}

/// The values a template is filled with for one request.
#[derive(Debug, Clone)]
pub struct KeyInputs<'a> {
    /// The caller's owner segment, from [`owner_segment`].
    pub owner: &'a str,
    /// The client's file name, as sent.
    pub filename: &'a str,
    /// Sixteen random bytes for `{uuid}`.
    pub random: [u8; 16],
    /// The request time.
    pub now: DateTime<Utc>,
}

/// Why a key could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key would be longer than [`MAX_KEY_BYTES`].
    TooLong,
    /// The key would break a rule (an empty or dot segment, a control character).
    Invalid(String),
}

impl KeyTemplate {
    /// Parses and checks a template.
    pub fn parse(text: &str) -> Result<Self, String> {
        let pieces = split_pieces(text)?;
        let subject_at = pieces
            .iter()
            .position(|p| *p == Piece::Subject)
            .ok_or("must contain {subject}, so that each caller writes under its own prefix")?;
        let before: Vec<&Piece> = pieces[..subject_at].iter().collect();
        let owner_prefix_literal = match before.as_slice() {
            [] => String::new(),
            [Piece::Literal(text)] if text.ends_with('/') => text.clone(),
            _ => return Err("{subject} must follow literal text that ends with `/`".to_owned()),
        };
        match pieces.get(subject_at + 1) {
            Some(Piece::Literal(text)) if text.starts_with('/') => {}
            _ => return Err("{subject} must be followed by `/`".to_owned()),
        }
        check_shape(&pieces)?;
        Ok(Self {
            pieces,
            owner_prefix_literal,
        })
    }

    /// The prefix under which every key of an owner lies, such as `users/alice/`.
    pub fn owner_prefix(&self, owner: &str) -> String {
        format!("{}{owner}/", self.owner_prefix_literal)
    }

    /// Fills the template and checks the resulting key.
    pub fn render(&self, inputs: &KeyInputs<'_>) -> Result<String, KeyError> {
        let filename = sanitize_filename(inputs.filename);
        let mut key = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => key.push_str(text),
                Piece::Subject => key.push_str(inputs.owner),
                Piece::Uuid => key.push_str(&uuid_v4(inputs.random)),
                Piece::Filename => key.push_str(&filename),
                Piece::Ext => key.push_str(&extension(&filename)),
                Piece::Date => key.push_str(&format!(
                    "{:04}-{:02}-{:02}",
                    inputs.now.year(),
                    inputs.now.month(),
                    inputs.now.day()
                )),
                Piece::Year => key.push_str(&format!("{:04}", inputs.now.year())),
                Piece::Month => key.push_str(&format!("{:02}", inputs.now.month())),
                Piece::Day => key.push_str(&format!("{:02}", inputs.now.day())),
            }
        }
        validate_key(&key)?;
        Ok(key)
    }
}

fn split_pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or("has a `{` without a matching `}`")?;
        let name = &rest[open + 1..open + close];
        pieces.push(match name {
            "subject" => Piece::Subject,
            "uuid" => Piece::Uuid,
            "filename" => Piece::Filename,
            "ext" => Piece::Ext,
            "date" => Piece::Date,
            "year" => Piece::Year,
            "month" => Piece::Month,
            "day" => Piece::Day,
            _ => {
                return Err(format!(
                    "has an unknown placeholder {{{name}}}; known: subject, uuid, \
                     filename, ext, date, year, month, day"
                ));
            }
        });
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err("has a `}` without a matching `{`".to_owned());
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_owned()));
    }
    Ok(pieces)
}

/// Checks the segments a template makes, with each placeholder standing for some text.
fn check_shape(pieces: &[Piece]) -> Result<(), String> {
    let shape: String = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Literal(text) => text.as_str(),
            _ => "x",
        })
        .collect();
    if shape.starts_with('/') || shape.ends_with('/') {
        return Err("must not start or end with `/`".to_owned());
    }
    if shape.split('/').any(|s| s.is_empty()) {
        return Err("must not contain an empty segment (`//`)".to_owned());
    }
    if shape.split('/').any(|s| s == "." || s == "..") {
        return Err("must not contain `.` or `..` segments".to_owned());
    }
    if shape.chars().any(is_unsafe_char) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// Checks a finished key: not empty, no leading `/`, no empty, `.` or `..` segment, no
/// control characters, at most [`MAX_KEY_BYTES`].
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    if key.is_empty() {
        return Err(KeyError::Invalid("the key is empty".to_owned()));
    }
    if key.starts_with('/') {
        return Err(KeyError::Invalid("the key starts with `/`".to_owned()));
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(KeyError::Invalid(
            "the key has an empty, `.` or `..` segment".to_owned(),
        ));
    }
    if key.chars().any(is_unsafe_char) {
        return Err(KeyError::Invalid(
            "the key contains a control or direction-changing character".to_owned(),
        ));
    }
    Ok(())
}

/// Control characters, the invisible marks that reorder text (used to disguise
/// `exe.png` as `gnp.exe`), and invisible spaces that make two names look alike. The
/// zero-width joiner and non-joiner stay: emoji sequences and several scripts need them.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{2060}' | '\u{FEFF}'
        )
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The path segment a caller owns: its subject escaped by [`subject_segment`], after
/// `~<namespace>-` when its credential has a namespace (API keys have `key`). An escaped
/// subject never has a `~` that is not followed by two uppercase hex digits, and a
/// namespace starts with a lowercase letter (the configuration checks it), so
/// `~key-backend` (the API key `backend`) can never be the segment of a JWT subject, and
/// two sources of subjects with different namespaces never share keys.
pub fn owner_segment(namespace: Option<&str>, subject: &str) -> String {
    match namespace {
        Some(namespace) => format!("~{namespace}-{}", subject_segment(subject)),
        None => subject_segment(subject),
    }
}

/// Escapes a subject into one path segment, reversibly: letters, digits and `-_.@+=`
/// stay; every other byte becomes `~XX` (uppercase hex). `~` itself is always escaped, so
/// two different subjects never share a segment. `.` and `..` are escaped whole.
pub fn subject_segment(subject: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-_.@+=".contains(&b);
    let whole_dots = subject == "." || subject == "..";
    let mut out = String::with_capacity(subject.len());
    for &byte in subject.as_bytes() {
        if keep(byte) && !whole_dots {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02X}"));
        }
    }
    out
}

/// Makes a client's file name safe to put in a key.
///
/// Keeps only the last path component (after `/` or `\`), drops control and
/// direction-changing characters, trims spaces and dots at both ends, and shortens it to
/// 255 bytes keeping the extension. What is left empty becomes `file`.
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !is_unsafe_char(*c)).collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return "file".to_owned();
    }
    if trimmed.len() <= MAX_FILENAME_BYTES {
        return trimmed.to_owned();
    }
    let ext = extension(trimmed);
    let keep_ext = !ext.is_empty() && ext.len() < 16;
    let room = if keep_ext {
        MAX_FILENAME_BYTES - ext.len() - 1
    } else {
        MAX_FILENAME_BYTES
    };
    let mut cut = room;
    while !trimmed.is_char_boundary(cut) {
        cut -= 1;
    }
    // The cut may fall after a space or a dot: trim again, so the name never ends in one.
    let stem = trimmed[..cut].trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if keep_ext {
        format!("{stem}.{}", &trimmed[trimmed.len() - ext.len()..])
    } else {
        stem.to_owned()
    }
}

/// The extension of a (sanitised) file name, lowercase, without the dot.
fn extension(filename: &str) -> String {
    match filename.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Formats 16 random bytes as an RFC 9562 version 4 UUID.
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests;
