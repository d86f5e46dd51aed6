//! The stack-trace search terms of each issue (`issue_search_terms`), written by the event
//! writer's transaction. Most events of an issue bring the terms it already has (the same
//! types, functions, modules and files): a writer remembers which it has stored, so a batch
//! sends PostgreSQL only the terms it may not have.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{LazyLock, Mutex};

use sqlx::{Postgres, Transaction};

use super::events::NewEvent;

/// The most search terms an issue keeps. Types, functions, modules and files are the same in
/// every event of an issue; values and messages may differ in each, and past this bound only
/// the first ones seen stay searchable.
pub const MAX_SEARCH_TERMS_PER_ISSUE: i32 = 500;

/// How many `(issue, term)` pairs a writer remembers (8 bytes each); past it, it starts over.
const REMEMBERED: usize = 200_000;

/// `(issue, term)` pairs known to be stored, by a 64-bit hash. A collision only means a term
/// is not sent; forgetting only means it is sent again (and costs an index probe).
#[derive(Default)]
pub struct KnownTerms(Mutex<KeySet>);

/// The keys are hashes of a process-random seed, so senders cannot aim collisions.
type KeySet = HashSet<u64, foldhash::fast::RandomState>;

/// foldhash: several times faster than the standard SipHash on these short strings.
static KEY_SEED: LazyLock<foldhash::quality::RandomState> =
    LazyLock::new(foldhash::quality::RandomState::default);

impl KnownTerms {
    fn key(issue_id: i64, term: &str) -> u64 {
        let mut hasher = KEY_SEED.build_hasher();
        hasher.write_i64(issue_id);
        hasher.write(term.as_bytes());
        hasher.finish()
    }

    /// Called after the commit that stored them.
    pub fn remember(&self, keys: Vec<u64>) {
        if keys.is_empty() {
            return;
        }
        let mut set = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if set.len() + keys.len() > REMEMBERED {
            set.clear();
        }
        set.extend(keys);
    }
}

/// Stores the terms the issues may not have yet, up to [`MAX_SEARCH_TERMS_PER_ISSUE`] each.
/// Returns, per issue, how many were new, and the keys to remember once committed.
pub async fn add(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&NewEvent, i64)],
    term_counts: &HashMap<i64, i32>,
    known: &KnownTerms,
) -> sqlx::Result<(HashMap<i64, i64>, Vec<u64>)> {
    let (terms, keys) = unknown_terms(events, term_counts, known);
    let (mut issue_ids, mut values) = (Vec::new(), Vec::new());
    for (issue_id, kept) in terms {
        for term in kept {
            issue_ids.push(issue_id);
            values.push(term);
        }
    }
    if values.is_empty() {
        return Ok((HashMap::new(), keys));
    }
    let rows: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO issue_search_terms (issue_id, term)
         SELECT * FROM UNNEST($1::int8[], $2::text[]) ORDER BY 1, 2
         ON CONFLICT DO NOTHING
         RETURNING issue_id",
    )
    .bind(&issue_ids)
    .bind(&values)
    .fetch_all(&mut **tx)
    .await?;
    let mut added: HashMap<i64, i64> = HashMap::new();
    for (issue_id,) in rows {
        *added.entry(issue_id).or_default() += 1;
    }
    Ok((added, keys))
}

/// Per issue, the events' terms that `known` has not seen, within each issue's room under the
/// bound; and their keys.
fn unknown_terms<'a>(
    events: &[(&'a NewEvent, i64)],
    term_counts: &HashMap<i64, i32>,
    known: &KnownTerms,
) -> (BTreeMap<i64, Vec<&'a str>>, Vec<u64>) {
    let mut terms: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut seen = KeySet::default();
    let stored = known
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (event, issue_id) in events {
        let room = MAX_SEARCH_TERMS_PER_ISSUE - term_counts.get(issue_id).copied().unwrap_or(0);
        if room <= 0 {
            continue;
        }
        let kept = terms.entry(*issue_id).or_default();
        for term in &event.search_terms {
            let key = KnownTerms::key(*issue_id, term);
            if (kept.len() as i32) < room && !stored.contains(&key) && seen.insert(key) {
                kept.push(term);
                keys.push(key);
            }
        }
    }
    (terms, keys)
}
