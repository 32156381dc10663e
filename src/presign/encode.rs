//! URI encoding as SigV4 for S3 wants it.
//!
//! S3 signs the path exactly as it is sent, encoded once: every byte except the unreserved
//! characters `A-Z a-z 0-9 - _ . ~` becomes `%XY` with uppercase hex, and `/` between key
//! segments stays as it is. A space must become `%20`, never `+`: S3 reads a `+` in a path
//! as a literal plus sign, so a key with a space signed as `+` names another object.
//! Query names and values follow the same rule, with `/` encoded too.
//!
//! See <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>
//! ("URI-encode each path segment", "UriEncode()").

#![forbid(unsafe_code)]

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

fn encode_into(out: &mut String, input: &str, keep_slash: bool) {
    for &byte in input.as_bytes() {
        if is_unreserved(byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0F)]));
        }
    }
}

/// Encodes an object key for the path of a URL: each segment once, `/` kept.
///
/// No normalisation happens: `a//b`, `./` and `../` stay as they are, because S3 keys
/// may contain them and the store signs the path it receives.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + key.len() / 2);
    encode_into(&mut out, key, true);
    out
}

/// Encodes a query parameter name or value: everything but unreserved bytes.
pub fn encode_query_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / 2);
    encode_into(&mut out, value, false);
    out
}

/// Appends `name=value` to a query string, both encoded, with `&` when needed.
pub fn push_query_pair(query: &mut String, name: &str, value: &str) {
    if !query.is_empty() {
        query.push('&');
    }
    encode_into(query, name, false);
    query.push('=');
    encode_into(query, value, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_is_percent_20_and_plus_is_percent_2b() {
        assert_eq!(encode_key("a b+c.txt"), "a%20b%2Bc.txt");
    }

    #[test]
    fn slashes_between_segments_are_kept() {
        assert_eq!(encode_key("dir/sub/file.txt"), "dir/sub/file.txt");
    }

    #[test]
    fn a_literal_percent_sequence_is_encoded_again() {
        assert_eq!(encode_key("a%20b.txt"), "a%2520b.txt");
    }

    #[test]
    fn reserved_and_unicode_bytes_use_uppercase_hex() {
        assert_eq!(
            encode_key("~user/it's (1)!*=@é.txt"),
            "~user/it%27s%20%281%29%21%2A%3D%40%C3%A9.txt"
        );
    }

    #[test]
    fn dot_segments_and_empty_segments_are_not_normalised() {
        assert_eq!(encode_key("a/../b//./c"), "a/../b//./c");
    }

    #[test]
    fn query_components_encode_slash() {
        assert_eq!(encode_query_component("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn query_pairs_are_joined_with_ampersands() {
        let mut query = String::new();
        push_query_pair(&mut query, "partNumber", "3");
        push_query_pair(&mut query, "uploadId", "x+y");
        assert_eq!(query, "partNumber=3&uploadId=x%2By");
    }

    proptest::proptest! {
        /// The law of the encoder: its output never holds a byte that a store could read
        /// two ways, and decoding it gives the input back.
        #[test]
        fn encoding_round_trips_and_never_emits_plus_or_space(key in "\\PC*") {
            let encoded = encode_key(&key);
            proptest::prop_assert!(!encoded.contains('+') && !encoded.contains(' '));
            proptest::prop_assert_eq!(percent_decode(&encoded), key);
        }
    }

    fn percent_decode(input: &str) -> String {
        let bytes = input.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
