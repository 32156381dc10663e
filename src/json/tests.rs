use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Outer {
    name: String,
    size: u64,
    parts: Vec<Part>,
    #[serde(
        default,
        deserialize_with = "crate::api::uploads::map_without_duplicates"
    )]
    meta: BTreeMap<String, String>,
    inner: Option<Inner>,
    numbers: Vec<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Part {
    part_number: u32,
    etag: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    flag: bool,
    lists: Vec<Vec<u8>>,
}

fn path_of(document: &str) -> String {
    let error = from_slice::<Outer>(document.as_bytes()).unwrap_err();
    assert!(!error.syntax, "{error:?}");
    error.path
}

const VALID: &str = r#"{"name": "a", "size": 1, "parts": [{"partNumber": 1, "etag": "e"}],
    "numbers": [1, 2], "inner": {"flag": true, "lists": [[1], [2, 3]]}}"#;

#[test]
fn a_valid_document_is_read() {
    let outer: Outer = from_slice(VALID.as_bytes()).unwrap();
    assert_eq!(outer.parts[0].etag, "e");
}

#[test]
fn a_wrong_type_is_named_by_its_member() {
    let document = VALID.replace(r#""size": 1"#, r#""size": -5"#);
    assert_eq!(path_of(&document), "size");
    let document = VALID.replace(r#""size": 1"#, r#""size": {"a": [1]}"#);
    assert_eq!(path_of(&document), "size");
}

#[test]
fn members_of_array_elements_are_named_with_their_index() {
    let document = VALID.replace(r#""numbers": [1, 2]"#, r#""numbers": [1, "two"]"#);
    assert_eq!(path_of(&document), "numbers[1]");
    let document = VALID.replace(r#""etag": "e""#, r#""etag": 5"#);
    assert_eq!(path_of(&document), "parts[0].etag");
    let document = VALID.replace("[2, 3]", "[2, 300]");
    assert_eq!(path_of(&document), "inner.lists[1][1]");
}

#[test]
fn a_missing_member_is_named_itself() {
    let document = VALID.replace(r#", "etag": "e""#, "");
    assert_eq!(path_of(&document), "parts[0].etag");
    let document = VALID.replace(r#""name": "a", "#, "");
    assert_eq!(path_of(&document), "name");
}

#[test]
fn unknown_and_repeated_members_are_named() {
    let document = VALID.replace(r#""flag": true"#, r#""flag": true, "colour": 1"#);
    assert_eq!(path_of(&document), "inner.colour");
    let document = VALID.replace(r#""size": 1"#, r#""size": 1, "size": 2"#);
    assert_eq!(path_of(&document), "size");
}

#[test]
fn strings_with_escapes_and_brackets_do_not_confuse_the_walk() {
    let document = VALID
        .replace(r#""name": "a""#, r#""name": "a\"}],{[\\""#)
        .replace(
            r#""numbers": [1, 2]"#,
            r#""meta": {"k\"ey": "x"}, "numbers": [1, 2.5]"#,
        );
    assert_eq!(path_of(&document), "numbers[1]");
}

#[test]
fn positions_on_later_lines_are_found() {
    let document = VALID
        .replace(", ", ",\n  ")
        .replace(r#""etag": "e""#, r#""etag": false"#);
    assert_eq!(path_of(&document), "parts[0].etag");
}

#[test]
fn syntax_errors_are_told_apart_from_wrong_shapes() {
    let trailing = format!("{VALID} x");
    for document in [
        r#"{"name": "a""#,
        r#"{"name" "a"}"#,
        &trailing,
        "\u{feff}{}",
    ] {
        let error = from_slice::<Outer>(document.as_bytes()).unwrap_err();
        assert!(error.syntax, "{document}: {error:?}");
        assert!(!error.message.contains(" at line "), "{}", error.message);
    }
}

/// A JSON document as a tree that may repeat a member name, which `serde_json::Value`
/// cannot hold.
#[derive(Clone, Debug)]
enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Leaf(&'static str),
}

/// A small deterministic generator, so that each case is one `u64` seed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn part(random: &mut Random) -> Node {
    Node::Object(vec![
        ("partNumber".into(), Node::Leaf("7")),
        ("etag".into(), Node::Leaf(r#""\"e,t\"""#)),
    ])
    .shuffled(random)
}

fn valid_outer(random: &mut Random) -> Node {
    let parts = (0..random.below(4)).map(|_| part(random)).collect();
    let numbers = (0..random.below(4)).map(|_| Node::Leaf("3")).collect();
    let lists = (0..random.below(3))
        .map(|_| Node::Array((0..random.below(3)).map(|_| Node::Leaf("9")).collect()))
        .collect();
    let meta = (0..random.below(3))
        .map(|i| (format!("k{i}[\"]"), Node::Leaf(r#""v{""#)))
        .collect();
    Node::Object(vec![
        ("name".into(), Node::Leaf(r#""a b""#)),
        ("size".into(), Node::Leaf("12")),
        ("parts".into(), Node::Array(parts)),
        ("meta".into(), Node::Object(meta)),
        (
            "inner".into(),
            Node::Object(vec![
                ("flag".into(), Node::Leaf("false")),
                ("lists".into(), Node::Array(lists)),
            ]),
        ),
        ("numbers".into(), Node::Array(numbers)),
    ])
    .shuffled(random)
}

impl Node {
    fn shuffled(self, random: &mut Random) -> Self {
        match self {
            Node::Object(mut members) => {
                for i in (1..members.len()).rev() {
                    members.swap(i, random.below(i + 1));
                }
                Node::Object(members)
            }
            other => other,
        }
    }

    fn count(&self) -> usize {
        1 + match self {
            Node::Object(members) => members.iter().map(|(_, n)| n.count()).sum(),
            Node::Array(items) => items.iter().map(Node::count).sum(),
            Node::Leaf(_) => 0,
        }
    }

    /// Applies one of four faults to the `target`-th node (in document order), if it can
    /// take it: another value in its place, or, in an object, an unknown member, a
    /// missing member or a repeated one.
    fn break_at(&mut self, target: &mut usize, fault: usize, leaf: &'static str) -> bool {
        if *target == 0 {
            return match (self, fault) {
                (node, 0) => {
                    *node = Node::Leaf(leaf);
                    true
                }
                (Node::Object(members), 1) => {
                    members.insert(0, ("unknown\\u0041".into(), Node::Leaf("1")));
                    true
                }
                (Node::Object(members), 2) if !members.is_empty() => {
                    members.pop();
                    true
                }
                (Node::Object(members), _) if !members.is_empty() => {
                    let first = members[0].clone();
                    members.push(first);
                    true
                }
                _ => false,
            };
        }
        *target -= 1;
        match self {
            Node::Object(members) => members
                .iter_mut()
                .any(|(_, node)| node.break_at(target, fault, leaf)),
            Node::Array(items) => items
                .iter_mut()
                .any(|node| node.break_at(target, fault, leaf)),
            Node::Leaf(_) => false,
        }
    }

    fn render(&self, random: &mut Random, out: &mut String) {
        let space = |random: &mut Random, out: &mut String| {
            out.push_str(["", " ", "\n", "\n    ", "\t"][random.below(5)]);
        };
        match self {
            Node::Object(members) => {
                out.push('{');
                for (i, (name, node)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(random, out);
                    out.push_str(&serde_json::to_string(name).unwrap());
                    space(random, out);
                    out.push(':');
                    space(random, out);
                    node.render(random, out);
                }
                space(random, out);
                out.push('}');
            }
            Node::Array(items) => {
                out.push('[');
                for (i, node) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    space(random, out);
                    node.render(random, out);
                }
                out.push(']');
            }
            Node::Leaf(text) => out.push_str(text),
        }
    }
}

/// What `serde_path_to_error` says, with a missing or repeated member named itself.
fn reference_path(document: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(document);
    let error = serde_path_to_error::deserialize::<_, Outer>(&mut deserializer).err()?;
    let mut path = error.path().to_string();
    let message = error.inner().to_string();
    for prefix in ["missing field `", "duplicate field `"] {
        if let Some(name) = quoted_name(&message, prefix) {
            if path == "." {
                path = name.to_owned();
            } else if !path.ends_with(&format!(".{name}")) {
                path = format!("{path}.{name}");
            }
        }
    }
    Some(path)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// Whatever is wrong and wherever it is, the path names the member that
    /// `serde_path_to_error` names.
    #[test]
    fn paths_name_the_member_serde_path_to_error_names(seed in 1u64.., fault in 0usize..4) {
        let mut random = Random(seed);
        let mut document = valid_outer(&mut random);
        let mut target = random.below(document.count());
        let leaf = ["\"x\"", "-1", "true", "{}", "[1]", "null", "2.5", "1e400"][random.below(8)];
        document.break_at(&mut target, fault, leaf);
        let mut text = String::new();
        document.render(&mut random, &mut text);

        let ours = from_slice::<Outer>(text.as_bytes()).err();
        let reference = reference_path(text.as_bytes());
        proptest::prop_assert_eq!(ours.is_some(), reference.is_some(), "{}", text);
        // A number too large for any type is a syntax error to serde_json ("number out
        // of range"), reported without a member.
        if let (Some(ours), Some(reference)) = (ours, reference)
            && !(ours.syntax && ours.message == "number out of range")
        {
            proptest::prop_assert!(!ours.syntax, "{}", text);
            proptest::prop_assert_eq!(ours.path, reference, "{}", text);
        }
    }
}
