//! The part plan: how a file is cut into parts.
//!
//! S3's limits: a part is 5 MiB to 5 GiB, except the last, which may be smaller; an
//! upload has at most 10,000 parts; an object is at most 5 TiB. R2 also wants every part
//! but the last to be the same size. The plan therefore uses one part size for all parts,
//! the profile's preferred size or, for large files, the smallest whole number of MiB
//! that fits the file in 10,000 parts.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>
//! <https://developers.cloudflare.com/r2/objects/multipart-objects/>

use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// The most parts one upload may have.
pub const MAX_PARTS: u32 = 10_000;
/// The largest object S3 stores.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB;

/// How an object of a known size is cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    /// The object's size in bytes.
    pub size: u64,
    /// The size of every part but the last.
    pub part_size: u64,
    /// How many parts.
    pub part_count: u32,
}

/// Why no plan fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A multipart upload of 0 bytes.
    Empty,
    /// Larger than a store can hold.
    TooLarge {
        /// The limit, in bytes.
        max: u64,
    },
}

impl PartPlan {
    /// Plans `size` bytes in parts of about `preferred` bytes.
    pub fn new(size: u64, preferred: u64) -> Result<Self, PlanError> {
        if size == 0 {
            return Err(PlanError::Empty);
        }
        if size > MAX_OBJECT_SIZE {
            return Err(PlanError::TooLarge {
                max: MAX_OBJECT_SIZE,
            });
        }
        let smallest_that_fits = size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB;
        let part_size = preferred
            .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
            .max(smallest_that_fits);
        let part_count = u32::try_from(size.div_ceil(part_size)).unwrap_or(MAX_PARTS);
        Ok(Self {
            size,
            part_size,
            part_count,
        })
    }

    /// The size of part `number` (1-based), or `None` outside the plan.
    pub fn part_length(&self, number: u32) -> Option<u64> {
        if number == 0 || number > self.part_count {
            return None;
        }
        if number < self.part_count {
            Some(self.part_size)
        } else {
            Some(self.size - self.part_size * u64::from(self.part_count - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_file_has_one_part_of_its_size() {
        let plan = PartPlan::new(1000, 8 * MIB).unwrap();
        assert_eq!((plan.part_count, plan.part_length(1)), (1, Some(1000)));
    }

    #[test]
    fn parts_are_equal_but_the_last() {
        let plan = PartPlan::new(64 * MIB + 1, 8 * MIB).unwrap();
        assert_eq!(plan.part_count, 9);
        assert_eq!(plan.part_length(8), Some(8 * MIB));
        assert_eq!(plan.part_length(9), Some(1));
        assert_eq!(plan.part_length(10), None);
        assert_eq!(plan.part_length(0), None);
    }

    #[test]
    fn preferred_size_is_raised_to_five_mib() {
        let plan = PartPlan::new(20 * MIB, MIB).unwrap();
        assert_eq!(plan.part_size, 5 * MIB);
        assert_eq!(plan.part_count, 4);
    }

    #[test]
    fn huge_files_fit_in_ten_thousand_parts() {
        let plan = PartPlan::new(MAX_OBJECT_SIZE, 8 * MIB).unwrap();
        assert!(plan.part_count <= MAX_PARTS);
        assert!(plan.part_size <= MAX_PART_SIZE);
        assert_eq!(plan.part_size % MIB, 0);
        let total: u64 = (1..=plan.part_count)
            .map(|n| plan.part_length(n).unwrap())
            .sum();
        assert_eq!(total, MAX_OBJECT_SIZE);
    }

    #[test]
    fn empty_and_oversized_uploads_are_refused() {
        assert_eq!(PartPlan::new(0, 8 * MIB), Err(PlanError::Empty));
        assert_eq!(
            PartPlan::new(MAX_OBJECT_SIZE + 1, 8 * MIB),
            Err(PlanError::TooLarge {
                max: MAX_OBJECT_SIZE
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn every_plan_obeys_the_store_limits(size in 1u64..=MAX_OBJECT_SIZE, preferred in 0u64..=u64::MAX / 2) {
            let plan = PartPlan::new(size, preferred).unwrap();
            proptest::prop_assert!(plan.part_count >= 1 && plan.part_count <= MAX_PARTS);
            proptest::prop_assert!(plan.part_size >= MIN_PART_SIZE && plan.part_size <= MAX_PART_SIZE);
            let last = plan.part_length(plan.part_count).unwrap();
            proptest::prop_assert!(last >= 1 && last <= plan.part_size);
            proptest::prop_assert_eq!(plan.part_size * u64::from(plan.part_count - 1) + last, size);
        }
    }
}
