//! What a writer remembers PostgreSQL already holds, across its batches, so that a batch sends
//! or checks only what may be new: each issue's search terms ([`KnownTerms`]) and which issues
//! exist ([`KnownIssues`]). Forgetting only costs work; remembering wrongly never loses data.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use super::batch_issues::KnownIssues;
use super::search_terms::KnownTerms;

/// A writer's memory (the writers of a process share one; the spool's replay has one per
/// replay).
#[derive(Default)]
pub struct Known {
    pub(super) terms: KnownTerms,
    pub(super) issues: KnownIssues,
}

/// The remembered keys are hashes of a process-random seed, so senders cannot aim collisions.
/// foldhash: several times faster than the standard SipHash on these short strings.
static KEY_SEED: LazyLock<foldhash::quality::RandomState> =
    LazyLock::new(foldhash::quality::RandomState::default);

/// A hasher for a remembered key, of the process's seed.
pub(super) fn key_hasher() -> impl std::hash::Hasher {
    KEY_SEED.build_hasher()
}
