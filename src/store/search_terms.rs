//! The stack-trace search terms of each issue (`issue_search_terms`), written by the event
//! writer's transaction. Most events of an issue bring the terms it already has (the same
//! types, functions, modules and files): a writer remembers which it has stored, so a batch
//! sends PostgreSQL only the terms it may not have.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Mutex;

use sqlx::{Postgres, Transaction};

use super::events::NewEvent;

/// The most search terms an issue keeps. Types, functions, modules and files are the same in
/// every event of an issue; values and messages may differ in each, and past this bound only
/// the first ones seen stay searchable.
pub const MAX_SEARCH_TERMS_PER_ISSUE: i32 = 500;

/// How many `(issue, term)` pairs a writer remembers (~8 bytes each); past it, it starts over.
const REMEMBERED: usize = 200_000;

/// `(issue, term)` pairs known to be stored: per issue, its terms' 64-bit hashes. A collision
/// only means a term is not sent; forgetting only means it is sent again (and costs an index
/// probe). Kept per issue rather than in one set of pairs: an event's ~40 terms then probe one
/// small set instead of missing the cache ~40 times in one large one (70 % of this step's time
/// was those misses).
#[derive(Default)]
pub struct KnownTerms(Mutex<Known>);

#[derive(Default)]
struct Known {
    by_issue: HashMap<i64, TermSet, foldhash::fast::RandomState>,
    pairs: usize,
}

/// An issue and one of its terms' hash: what a batch stored, to remember once committed.
pub type TermKey = (i64, u64);

/// The hashes are of a process-random seed (`known::key_hasher`).
type TermSet = HashSet<u64, foldhash::fast::RandomState>;

/// A term's key within its issue's set.
fn term_key(term: &str) -> u64 {
    let mut hasher = super::known::key_hasher();
    hasher.write(term.as_bytes());
    hasher.finish()
}

impl KnownTerms {
    /// Called after the commit that stored them.
    pub fn remember(&self, keys: Vec<TermKey>) {
        if keys.is_empty() {
            return;
        }
        let mut known = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.pairs + keys.len() > REMEMBERED {
            *known = Known::default();
        }
        for (issue_id, key) in keys {
            if known.by_issue.entry(issue_id).or_default().insert(key) {
                known.pairs += 1;
            }
        }
    }
}

/// Stores the terms the issues may not have yet, up to [`MAX_SEARCH_TERMS_PER_ISSUE`] each.
/// Returns, per issue, how many were new, and the keys to remember once committed.
pub async fn add(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&NewEvent, i64)],
    term_counts: &HashMap<i64, i32>,
    known: &KnownTerms,
) -> sqlx::Result<(HashMap<i64, i64>, Vec<TermKey>)> {
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
) -> (BTreeMap<i64, Vec<&'a str>>, Vec<TermKey>) {
    let mut terms: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut seen: HashSet<TermKey, foldhash::fast::RandomState> =
        HashSet::with_capacity_and_hasher(events.len() * 8, Default::default());
    let no_terms = TermSet::default();
    let known = known
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (event, issue_id) in events {
        let room = MAX_SEARCH_TERMS_PER_ISSUE - term_counts.get(issue_id).copied().unwrap_or(0);
        if room <= 0 {
            continue;
        }
        let stored = known.by_issue.get(issue_id).unwrap_or(&no_terms);
        let kept = terms.entry(*issue_id).or_default();
        for term in &event.search_terms {
            let key = term_key(term);
            if (kept.len() as i32) < room && !stored.contains(&key) && seen.insert((*issue_id, key))
            {
                kept.push(term);
                keys.push((*issue_id, key));
            }
        }
    }
    (terms, keys)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::level::Level;

    fn event(terms: &[&str]) -> NewEvent {
        NewEvent {
            project_id: 1,
            event_id: Uuid::new_v4(),
            hash: "h".into(),
            grouping: json!({}),
            title: "t".into(),
            culprit: "c".into(),
            metadata: json!({}),
            level: Level::Error,
            occurred_at: Utc::now(),
            received_at: Utc::now(),
            environment: None,
            release: None,
            user_key: None,
            tags: Vec::new(),
            search_terms: terms.iter().map(|t| t.to_string()).collect(),
            body: Vec::new(),
        }
    }

    fn sent(batch: &[(&NewEvent, i64)], known: &KnownTerms) -> BTreeMap<i64, Vec<String>> {
        let (terms, keys) = unknown_terms(batch, &HashMap::new(), known);
        known.remember(keys);
        terms
            .into_iter()
            .map(|(issue, kept)| (issue, kept.into_iter().map(str::to_owned).collect()))
            .filter(|(_, kept): &(i64, Vec<String>)| !kept.is_empty())
            .collect()
    }

    #[test]
    fn a_term_is_sent_once_per_issue_until_forgotten() {
        let known = KnownTerms::default();
        let (a, b) = (
            event(&["KeyError", "lookup"]),
            event(&["lookup", "orders.py"]),
        );
        let first = sent(&[(&a, 1), (&b, 1), (&a, 2)], &known);
        assert_eq!(first[&1], ["KeyError", "lookup", "orders.py"]);
        assert_eq!(first[&2], ["KeyError", "lookup"]);
        // The same terms again: known for issues 1 and 2, new for issue 3.
        let again = sent(&[(&b, 1), (&a, 2), (&b, 3)], &known);
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[&3], ["lookup", "orders.py"]);
    }

    #[test]
    fn remembering_past_the_bound_starts_over() {
        let known = KnownTerms::default();
        let a = event(&["KeyError"]);
        assert!(!sent(&[(&a, 1)], &known).is_empty());
        assert!(sent(&[(&a, 1)], &known).is_empty());
        let filler: Vec<TermKey> = (0..REMEMBERED as u64).map(|k| (2, k)).collect();
        known.remember(filler);
        assert_eq!(sent(&[(&a, 1)], &known)[&1], ["KeyError"]);
    }

    #[test]
    fn an_issue_without_room_gets_no_terms() {
        let known = KnownTerms::default();
        let a = event(&["KeyError", "lookup"]);
        let full = HashMap::from([
            (1, MAX_SEARCH_TERMS_PER_ISSUE),
            (2, MAX_SEARCH_TERMS_PER_ISSUE - 1),
        ]);
        let (terms, keys) = unknown_terms(&[(&a, 1), (&a, 2)], &full, &known);
        assert!(terms.get(&1).is_none_or(Vec::is_empty));
        assert_eq!(terms[&2], ["KeyError"]);
        assert_eq!(keys.len(), 1);
    }
}
