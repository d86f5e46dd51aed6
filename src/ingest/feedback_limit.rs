//! How much user feedback a project takes through its public DSN (envelope items and the
//! DSN-authenticated API): a browser DSN is public, and every report is a row kept for the
//! retention period. The crash-report dialog has its own limit per client address
//! (`report_dialog::ReportLimiter`); operators posting with a token are not limited.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Reports per project per minute (a burst of as many, then one every half second). Far above
/// what people type, far below what a script can send.
pub const REPORTS_PER_PROJECT_PER_MINUTE: u32 = 120;

/// Feedback items one envelope may carry (SDKs send one).
pub const MAX_ITEMS_PER_ENVELOPE: usize = 10;

pub struct FeedbackLimiter(DefaultKeyedRateLimiter<i64>);

impl Default for FeedbackLimiter {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(REPORTS_PER_PROJECT_PER_MINUTE).expect("a positive quota");
        FeedbackLimiter(RateLimiter::keyed(Quota::per_minute(per_minute)))
    }
}

impl FeedbackLimiter {
    /// Whether `project_id` may store `reports` more now (taking them from its quota if so).
    pub fn allows(&self, project_id: i64, reports: usize) -> bool {
        let Some(reports) = NonZeroU32::new(reports.min(u32::MAX as usize) as u32) else {
            return true;
        };
        matches!(self.0.check_key_n(&project_id, reports), Ok(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_gets_its_quota_and_no_more_and_others_keep_theirs() {
        let limiter = FeedbackLimiter::default();
        assert!(limiter.allows(1, 0));
        assert!(limiter.allows(1, 100));
        assert!(limiter.allows(1, 20));
        assert!(!limiter.allows(1, 1), "the minute's quota is used");
        assert!(limiter.allows(2, 1), "another project's is not");
        assert!(
            !limiter.allows(3, 121),
            "more than a minute's worth at once"
        );
    }
}
