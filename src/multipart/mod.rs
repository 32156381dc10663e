//! Multipart uploads: the part plan, the upload token, and the checks made before the
//! store is asked to complete an upload.
//!
//! A large file goes up in parts, each to its own presigned URL, several at once; a part
//! that fails is sent again alone. The signer creates the upload in the store, hands out
//! a token that binds it, signs part URLs on demand, and completes or aborts it.

#![forbid(unsafe_code)]

pub mod plan;
pub mod token;

use md5::{Digest, Md5};

use plan::{MAX_PARTS, PartPlan};

/// A part as the client lists it for completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPart {
    /// The part number.
    pub part_number: u32,
    /// The ETag the store gave for it, quoted or not; `None` when the client has none.
    pub etag: Option<String>,
}

/// Why a part list cannot be completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartsError {
    /// No parts.
    Empty,
    /// A part number twice.
    Duplicate(u32),
    /// A part without ETag.
    MissingEtag(u32),
    /// An ETag that is not one a store gives.
    MalformedEtag(u32),
    /// A part number outside the plan (or outside 1 to 10,000).
    OutsidePlan(u32),
    /// A planned part that is not in the list.
    Missing(u32),
}

impl std::fmt::Display for PartsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("the part list is empty"),
            Self::Duplicate(n) => write!(f, "part {n} is listed twice"),
            Self::MissingEtag(n) => write!(
                f,
                "part {n} has no ETag; if the browser could not read it, the bucket's CORS \
                 rule must expose the ETag header"
            ),
            Self::MalformedEtag(n) => write!(f, "part {n} has a malformed ETag"),
            Self::OutsidePlan(n) => write!(f, "part {n} is not part of this upload's plan"),
            Self::Missing(n) => write!(f, "part {n} is missing from the list"),
        }
    }
}

/// Checks a part list against the plan and gives it sorted, each ETag quoted once.
///
/// With a plan, every planned part must be there exactly once. Without one (the client
/// cut the parts itself), part numbers must be 1 to 10,000, each once.
pub fn check_parts(
    parts: &[ClientPart],
    plan: Option<&PartPlan>,
) -> Result<Vec<(u32, String)>, PartsError> {
    if parts.is_empty() {
        return Err(PartsError::Empty);
    }
    let last = plan.map_or(MAX_PARTS, |p| p.part_count);
    // Each part's ETag in the slot of its number: a part given twice finds its slot
    // taken, and reading the slots in order gives the list sorted, with no sort.
    let mut etags: Vec<Option<String>> = vec![None; last as usize + 1];
    for part in parts {
        let number = part.part_number;
        if number == 0 || number > last {
            return Err(PartsError::OutsidePlan(number));
        }
        let etag = part
            .etag
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or(PartsError::MissingEtag(number))?;
        let bare = bare_etag(etag).ok_or(PartsError::MalformedEtag(number))?;
        let slot = &mut etags[number as usize];
        if slot.is_some() {
            return Err(PartsError::Duplicate(number));
        }
        *slot = Some(format!("\"{bare}\""));
    }
    if plan.is_some()
        && let Some(missing) = (1..=last).find(|n| etags[*n as usize].is_none())
    {
        return Err(PartsError::Missing(missing));
    }
    Ok(etags
        .into_iter()
        .enumerate()
        .filter_map(|(number, etag)| Some((u32::try_from(number).ok()?, etag?)))
        .collect())
}

/// An ETag without quotes; `None` unless it is 1 to 1024 letters, digits and
/// `-._~+/=`. S3 gives hex MD5s; the local R2 store of `wrangler dev` gives 171
/// characters of base64url.
pub fn bare_etag(etag: &str) -> Option<&str> {
    let bare = etag.trim().trim_matches('"');
    let ok = !bare.is_empty()
        && bare.len() <= 1024
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    ok.then_some(bare)
}

/// The ETag S3 gives an object completed from these parts: the MD5 of the parts' binary
/// MD5s, then `-` and the number of parts. `None` when a part's ETag is not an MD5 (some
/// stores use other ETags), so nothing can be predicted.
pub fn multipart_etag(parts: &[(u32, String)]) -> Option<String> {
    let mut hasher = Md5::new();
    for (_, etag) in parts {
        let digest = hex::decode(bare_etag(etag)?).ok()?;
        if digest.len() != 16 {
            return None;
        }
        hasher.update(&digest);
    }
    Some(format!(
        "{}-{}",
        hex::encode(hasher.finalize()),
        parts.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, etag: Option<&str>) -> ClientPart {
        ClientPart {
            part_number: n,
            etag: etag.map(str::to_owned),
        }
    }

    fn plan3() -> PartPlan {
        PartPlan::new(12 << 20, 5 << 20).unwrap()
    }

    #[test]
    fn complete_list_is_sorted_and_quoted_once() {
        let parts = [
            part(3, Some("c")),
            part(1, Some("\"a\"")),
            part(2, Some("b")),
        ];
        assert_eq!(
            check_parts(&parts, Some(&plan3())).unwrap(),
            vec![
                (1, "\"a\"".to_owned()),
                (2, "\"b\"".to_owned()),
                (3, "\"c\"".to_owned())
            ]
        );
    }

    #[test]
    fn each_broken_list_names_the_part() {
        let plan = plan3();
        let cases = [
            (vec![], PartsError::Empty),
            (
                vec![part(1, Some("a")), part(1, Some("a")), part(2, Some("b"))],
                PartsError::Duplicate(1),
            ),
            (
                vec![part(1, Some("a")), part(2, None), part(3, Some("c"))],
                PartsError::MissingEtag(2),
            ),
            (
                vec![part(1, Some("a")), part(2, Some("")), part(3, Some("c"))],
                PartsError::MissingEtag(2),
            ),
            (
                vec![part(1, Some("a")), part(4, Some("d"))],
                PartsError::OutsidePlan(4),
            ),
            (
                vec![part(1, Some("a")), part(3, Some("c"))],
                PartsError::Missing(2),
            ),
            (
                vec![part(1, Some("a")), part(2, Some("b"))],
                PartsError::Missing(3),
            ),
            (
                vec![
                    part(1, Some("a<b>")),
                    part(2, Some("b")),
                    part(3, Some("c")),
                ],
                PartsError::MalformedEtag(1),
            ),
        ];
        for (parts, error) in cases {
            assert_eq!(
                check_parts(&parts, Some(&plan)),
                Err(error.clone()),
                "{error}"
            );
        }
    }

    #[test]
    fn missing_etag_message_points_at_the_bucket_cors_rule() {
        assert!(PartsError::MissingEtag(2).to_string().contains("CORS"));
    }

    #[test]
    fn without_a_plan_any_numbers_up_to_ten_thousand_go() {
        assert!(check_parts(&[part(7, Some("a"))], None).is_ok());
        assert_eq!(
            check_parts(&[part(10_001, Some("a"))], None),
            Err(PartsError::OutsidePlan(10_001))
        );
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s() {
        // Two parts whose MD5s are those of "a" and "b".
        let parts = vec![
            (1, "\"0cc175b9c0f1b6a831c399e269772661\"".to_owned()),
            (2, "\"92eb5ffee6ae2fec3ad71c777531578f\"".to_owned()),
        ];
        let expected = format!(
            "{}-2",
            hex::encode(Md5::digest(
                hex::decode("0cc175b9c0f1b6a831c399e26977266192eb5ffee6ae2fec3ad71c777531578f")
                    .unwrap()
            ))
        );
        assert_eq!(multipart_etag(&parts), Some(expected));
        assert_eq!(multipart_etag(&[(1, "\"not-md5\"".to_owned())]), None);
    }
}
