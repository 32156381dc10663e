//! When a call to the store is tried again, and after how long.
//!
//! A `503` (S3's `SlowDown`) means the store did not act on the request, so any request
//! may be retried after it. A network error or another 5xx may come after the store
//! acted, so only requests that are safe to repeat are retried then. A `501` (S3's
//! `NotImplemented`, e.g. local R2's ListParts) will not change, and is never retried.
//! Waits grow exponentially with jitter, as AWS recommends.
//!
//! An attempt that ran out of time is not tried again: a store that slow is likely to be
//! as slow the next time, and the caller would wait two or three time limits for the same
//! `503`. So one call to the store takes at most about one time limit plus the quick
//! failures before it.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-design-patterns.html>

/// How many times a request is sent at most.
pub const MAX_ATTEMPTS: u32 = 3;

/// How long the store may take to begin its answer, and then to send each next piece of
/// the answer's body, in milliseconds. A limit between pieces rather than on the whole
/// lets a store that sends an answer slowly but steadily finish it.
pub const ATTEMPT_TIMEOUT_MS: u64 = 10_000;

/// What happened to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No answer: the connection was refused or closed.
    NoAnswer,
    /// No answer, or not all of it, within [`ATTEMPT_TIMEOUT_MS`].
    TimedOut,
    /// The store answered with this status.
    Answered(u16),
}

/// Whether to send the request again after `attempt` (counted from 1).
pub fn should_retry(attempt: u32, idempotent: bool, outcome: Attempt) -> bool {
    if attempt >= MAX_ATTEMPTS {
        return false;
    }
    match outcome {
        Attempt::Answered(503) => true,
        Attempt::Answered(501) => false,
        Attempt::Answered(status) => idempotent && status >= 500,
        Attempt::NoAnswer => idempotent,
        Attempt::TimedOut => false,
    }
}

/// How long to wait before attempt `attempt + 1`, in milliseconds: 100 ms doubled per
/// attempt, plus up to 50 % jitter from `random` (any byte).
pub fn backoff_ms(attempt: u32, random: u8) -> u64 {
    let base = 100u64 << attempt.saturating_sub(1).min(6);
    base + base * u64::from(random) / 510
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_is_retried_even_for_unsafe_requests() {
        assert!(should_retry(1, false, Attempt::Answered(503)));
    }

    #[test]
    fn network_errors_and_5xx_are_retried_only_when_safe() {
        assert!(should_retry(1, true, Attempt::NoAnswer));
        assert!(should_retry(2, true, Attempt::Answered(500)));
        assert!(!should_retry(1, false, Attempt::NoAnswer));
        assert!(!should_retry(1, false, Attempt::Answered(500)));
    }

    #[test]
    fn an_attempt_that_ran_out_of_time_is_not_tried_again() {
        assert!(!should_retry(1, true, Attempt::TimedOut));
        assert!(!should_retry(1, false, Attempt::TimedOut));
    }

    #[test]
    fn not_implemented_is_not_retried() {
        assert!(!should_retry(1, true, Attempt::Answered(501)));
    }

    #[test]
    fn client_errors_and_the_last_attempt_are_not_retried() {
        assert!(!should_retry(1, true, Attempt::Answered(403)));
        assert!(!should_retry(MAX_ATTEMPTS, true, Attempt::Answered(503)));
    }

    #[test]
    fn backoff_grows_and_jitter_stays_under_half() {
        assert_eq!(backoff_ms(1, 0), 100);
        assert_eq!(backoff_ms(2, 0), 200);
        assert!(backoff_ms(2, 255) <= 300);
    }
}
