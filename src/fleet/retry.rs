//! When to try an `az` call again, and how long to wait first.
//!
//! Only throttling and transient conflicts are retried: ARM's 429
//! `TooManyRequests`, the CLI's `RetryableError`, and the conflicts of an
//! operation still running on the same resource. A quota error, a missing
//! resource or a script that failed is never retried.

use std::time::Duration;

use super::secret::Jitter;

/// Error codes and phrases ARM and the CLI use for a request worth retrying
/// after a pause. Matched case-insensitively against stderr or the
/// extension's `error_message`.
const TRANSIENT_MARKERS: &[&str] = &[
    "toomanyrequests",
    "too many requests",
    "(429)",
    "status code 429",
    "retryableerror",
    "anotheroperationinprogress",
    "operationpreempted",
    "conflictingoperation",
    "execution is in progress",
    "serverbusy",
    "internalexecutionerror",
];

/// Errors that look like a conflict but never clear by waiting.
const PERMANENT_MARKERS: &[&str] = &[
    "quota",
    "operationnotallowed",
    "resourcenotfound",
    "could not be found",
    "authorizationfailed",
    "invalidparameter",
];

/// Whether an error text describes a transient condition.
pub fn is_transient(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if PERMANENT_MARKERS.iter().any(|m| lower.contains(m)) {
        return false;
    }
    TRANSIENT_MARKERS.iter().any(|m| lower.contains(m))
}

/// Exponential backoff with jitter, bounded in attempts and in delay.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all (the first one included).
    pub attempts: u32,
    /// The pause after the first failure, before jitter.
    pub base: Duration,
    /// No pause is longer than this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The pause before try `attempt + 1` (after `attempt` failures, from 1):
    /// "equal jitter", half fixed and half random, so many workers throttled
    /// at once do not retry in lockstep.
    pub fn delay(&self, attempt: u32, jitter: &mut Jitter) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let full = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.cap)
            .as_millis() as u64;
        let half = full / 2;
        Duration::from_millis(half + jitter.below(half + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_conflicts_are_transient_quota_is_not() {
        assert!(is_transient(
            "ERROR: (TooManyRequests) The request is being throttled."
        ));
        assert!(is_transient("Code: RetryableError\nMessage: try later"));
        assert!(is_transient(
            "(Conflict) Run command extension execution is in progress. Please wait for completion"
        ));
        assert!(is_transient("(AnotherOperationInProgress) Another operation on this or dependent resource is in progress."));
        assert!(!is_transient("(OperationNotAllowed) Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota."));
        assert!(!is_transient(
            "(ResourceNotFound) The Resource 'x' was not found"
        ));
        assert!(!is_transient("script failed"));
    }

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let mut jitter = Jitter::new();
        for attempt in 1..12 {
            let d = policy.delay(attempt, &mut jitter);
            let full = (100u64 << (attempt - 1).min(20)).min(1000);
            assert!(d.as_millis() as u64 >= full / 2, "{attempt}: {d:?}");
            assert!(d.as_millis() as u64 <= full, "{attempt}: {d:?}");
        }
    }
}
