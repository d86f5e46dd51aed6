//! The issues of a writer's batch: locked, and the missing ones created, in `(project_id,
//! hash)` order at the start of the transaction, then rewritten once at its end with their new
//! totals and their newest event's title, culprit, level and metadata (unless the issue has
//! seen a later event: a late one is counted, not shown).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use super::aggregates::TagCount;
use super::events::NewEvent;

pub(super) type IssueKey<'a> = (i64, &'a str);

/// How many issues a writer remembers as existing (~16 bytes each); past it, it starts over.
const REMEMBERED_ISSUES: usize = 100_000;

/// Issues known to exist, by a hash of their key. A batch of only known issues locks them in
/// one statement; a batch that may create one takes the slower way that never deadlocks
/// ([`lock_or_create`]). A known issue deleted since (with its project, or from the database)
/// is created again all the same, though then out of order: the quick lock already holds the
/// batch's other issues. That rare case can deadlock, and the batch's retry resolves it.
#[derive(Default)]
pub struct KnownIssues(Mutex<HashSet<u64, foldhash::fast::RandomState>>);

impl KnownIssues {
    fn key((project_id, hash): IssueKey<'_>) -> u64 {
        let mut hasher = super::known::key_hasher();
        hasher.write_i64(project_id);
        hasher.write(hash.as_bytes());
        hasher.finish()
    }

    fn all_known(&self, keys: &[IssueKey<'_>]) -> bool {
        let known = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.iter().all(|&key| known.contains(&Self::key(key)))
    }

    /// Called after the commit that locked or created them.
    pub(super) fn remember<'a>(&self, keys: impl ExactSizeIterator<Item = IssueKey<'a>>) {
        let mut known = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() + keys.len() > REMEMBERED_ISSUES {
            known.clear();
        }
        known.extend(keys.map(Self::key));
    }
}

/// The batch's issues: every one's id, the ids of those it created, how many search terms
/// each has, and the newest event of each (it sets the issue's title, culprit, level and
/// metadata when the counts are added).
pub(super) struct BatchIssues<'a> {
    pub(super) ids: HashMap<IssueKey<'a>, i64>,
    pub(super) created: HashSet<i64>,
    pub(super) term_counts: HashMap<i64, i32>,
    pub(super) newest: HashMap<i64, &'a NewEvent>,
}

/// Locks the batch's issues and creates the missing ones, all in `(project_id, hash)` order.
/// Writers (of this process or another) that take their issues in one ascending order never
/// deadlock: none holds an issue while waiting for an earlier one. When every issue is known
/// to exist, one `SELECT … FOR UPDATE` does; otherwise [`lock_or_create`]. (Locking the
/// existing ones first and then inserting the rest waits for earlier keys while holding later
/// ones: three writers around new issues deadlocked, costing a second and a retry.)
/// An existing issue is only locked here and rewritten once, with its counts: rewriting it
/// here too cost PostgreSQL a second row version (and its index entries) per issue per batch.
pub(super) async fn upsert_issues<'a>(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&'a NewEvent],
    known: &KnownIssues,
) -> sqlx::Result<BatchIssues<'a>> {
    let newest = newest_of_each_issue(events);
    // In key order: a position in `keys` is also its issue's place in the lock order.
    let keys: Vec<IssueKey<'a>> = newest.keys().copied().collect();
    let mut created = HashSet::new();
    let mut found = if known.all_known(&keys) {
        lock_issues(tx, &keys).await?
    } else {
        vec![None; keys.len()]
    };
    if found.iter().any(Option::is_none) {
        let describing: Vec<&NewEvent> = keys.iter().map(|key| newest[key]).collect();
        created = lock_or_create(tx, &describing).await?;
        found = lock_issues(tx, &keys).await?;
    }
    let mut batch = BatchIssues {
        ids: HashMap::with_capacity(keys.len()),
        created,
        term_counts: HashMap::with_capacity(keys.len()),
        newest: HashMap::with_capacity(keys.len()),
    };
    for (key, found) in keys.into_iter().zip(found) {
        if let Some((id, terms)) = found {
            batch.ids.insert(key, id);
            batch.term_counts.insert(id, terms);
            batch.newest.insert(id, newest[&key]);
        }
    }
    Ok(batch)
}

/// Each issue's newest event, by key.
fn newest_of_each_issue<'a>(events: &[&'a NewEvent]) -> BTreeMap<IssueKey<'a>, &'a NewEvent> {
    let mut newest: BTreeMap<IssueKey<'a>, &'a NewEvent> = BTreeMap::new();
    for event in events {
        let entry = newest
            .entry((event.project_id, event.hash.as_str()))
            .or_insert(event);
        if event.occurred_at >= entry.occurred_at {
            *entry = event;
        }
    }
    newest
}

/// Locks the issues of `keys` (sorted) in that order; returns `(id, search terms)` of each
/// key's issue, by the key's position, `None` where there is none.
async fn lock_issues(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[IssueKey<'_>],
) -> sqlx::Result<Vec<Option<(i64, i32)>>> {
    let (projects, hashes): (Vec<i64>, Vec<&str>) = keys.iter().copied().unzip();
    let existing: Vec<(i64, i64, i32)> = sqlx::query_as(
        "SELECT k.n, i.id, i.search_terms
           FROM issues i
           JOIN UNNEST($1::int8[], $2::text[]) WITH ORDINALITY AS k(p, h, n)
             ON i.project_id = k.p AND i.hash = k.h
          ORDER BY i.project_id, i.hash
            FOR UPDATE OF i",
    )
    .bind(&projects)
    .bind(&hashes)
    .fetch_all(&mut **tx)
    .await?;
    let mut found = vec![None; keys.len()];
    for (n, id, terms) in existing {
        if let Some(slot) = usize::try_from(n - 1).ok().and_then(|at| found.get_mut(at)) {
            *slot = Some((id, terms));
        }
    }
    Ok(found)
}

/// Inserts the issues of `events` (the newest event of each, in key order), in key order; one
/// that exists (or that another writer creates meanwhile) is locked instead, not rewritten:
/// `DO UPDATE … WHERE false` locks the row it meets and leaves it. Returns the ids this
/// statement created.
async fn lock_or_create(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
) -> sqlx::Result<HashSet<i64>> {
    let mut columns = IssueColumns::default();
    for event in events {
        columns.push(event);
    }
    sqlx::query_scalar(
        "INSERT INTO issues (project_id, hash, title, culprit, level, first_seen, last_seen, grouping, metadata)
         SELECT p, h, t, c, l, s, s, g::jsonb, m::jsonb
           FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                       $7::text[], $8::text[]) AS u(p, h, t, c, l, s, g, m)
          ORDER BY p, h
         ON CONFLICT (project_id, hash) DO UPDATE
            SET title = issues.title
          WHERE false
         RETURNING id",
    )
    .bind(&columns.project_ids)
    .bind(&columns.hashes)
    .bind(&columns.titles)
    .bind(&columns.culprits)
    .bind(&columns.levels)
    .bind(&columns.seen)
    .bind(&columns.groupings)
    .bind(&columns.metadata)
    .fetch_all(&mut **tx)
    .await
    .map(|ids| ids.into_iter().collect())
}

#[derive(Default)]
struct IssueColumns {
    project_ids: Vec<i64>,
    hashes: Vec<String>,
    titles: Vec<String>,
    culprits: Vec<String>,
    levels: Vec<String>,
    seen: Vec<DateTime<Utc>>,
    groupings: Vec<String>,
    metadata: Vec<String>,
}

impl IssueColumns {
    fn push(&mut self, event: &NewEvent) {
        self.project_ids.push(event.project_id);
        self.hashes.push(event.hash.clone());
        self.titles.push(event.title.clone());
        self.culprits.push(event.culprit.clone());
        self.levels.push(event.level.as_str().to_owned());
        self.seen.push(event.occurred_at);
        self.groupings.push(json_text(&event.grouping));
        self.metadata.push(json_text(&event.metadata));
    }
}

/// What a batch added to each issue besides events: new distinct users and search terms.
pub(super) struct Added {
    pub(super) users: HashMap<i64, i64>,
    pub(super) search_terms: HashMap<i64, i64>,
}

/// Adds the new events to their issues' totals, and sets each issue's title, culprit, level
/// and metadata from its newest event in the batch, unless the issue has already seen a later
/// one (events arrive late from SDKs' offline caches and the spool). A resolved issue that
/// receives an event is open again, marked as a regression; returns the ids of those.
pub(super) async fn update_issues(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&NewEvent, i64)],
    newest: &HashMap<i64, &NewEvent>,
    added: &Added,
) -> sqlx::Result<HashSet<i64>> {
    let mut per_issue: BTreeMap<i64, TagCount> = BTreeMap::new();
    for (event, issue_id) in events {
        let t = event.occurred_at;
        per_issue
            .entry(*issue_id)
            .or_insert_with(|| TagCount::new(t))
            .add(t);
    }
    let ids: Vec<i64> = per_issue.keys().copied().collect();
    let counts: Vec<i64> = per_issue.values().map(|t| t.count).collect();
    let added_to = |counts: &HashMap<i64, i64>| -> Vec<i64> {
        ids.iter()
            .map(|id| counts.get(id).copied().unwrap_or(0))
            .collect()
    };
    let users = added_to(&added.users);
    let terms = added_to(&added.search_terms);
    let firsts: Vec<DateTime<Utc>> = per_issue.values().map(|t| t.first_seen).collect();
    let lasts: Vec<DateTime<Utc>> = per_issue.values().map(|t| t.last_seen).collect();
    let describing: Vec<&NewEvent> = ids.iter().map(|id| newest[id]).collect();
    let titles: Vec<&str> = describing.iter().map(|e| e.title.as_str()).collect();
    let culprits: Vec<&str> = describing.iter().map(|e| e.culprit.as_str()).collect();
    let levels: Vec<&str> = describing.iter().map(|e| e.level.as_str()).collect();
    let metadata: Vec<String> = describing.iter().map(|e| json_text(&e.metadata)).collect();
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        "UPDATE issues
            SET event_count = issues.event_count + u.n,
                user_count = issues.user_count + u.new_users,
                search_terms = issues.search_terms + u.new_terms,
                first_seen = LEAST(issues.first_seen, u.first_seen),
                last_seen = GREATEST(issues.last_seen, u.last_seen),
                title = CASE WHEN u.last_seen >= issues.last_seen THEN u.title ELSE issues.title END,
                culprit = CASE WHEN u.last_seen >= issues.last_seen THEN u.culprit ELSE issues.culprit END,
                level = CASE WHEN u.last_seen >= issues.last_seen THEN u.level ELSE issues.level END,
                metadata = CASE WHEN u.last_seen >= issues.last_seen THEN u.metadata::jsonb
                                ELSE issues.metadata END,
                regressed_at = CASE WHEN issues.status = 'resolved' THEN now() ELSE issues.regressed_at END,
                status = CASE WHEN issues.status = 'resolved' THEN 'unresolved'::issue_status ELSE issues.status END
           FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::timestamptz[], $5::timestamptz[],
                       $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[])
                AS u(id, n, new_users, first_seen, last_seen, new_terms, title, culprit, level, metadata)
          WHERE issues.id = u.id
         RETURNING issues.id, issues.regressed_at IS NOT DISTINCT FROM now()",
    )
    .bind(&ids)
    .bind(&counts)
    .bind(&users)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&terms)
    .bind(&titles)
    .bind(&culprits)
    .bind(&levels)
    .bind(&metadata)
    .fetch_all(&mut **tx)
    .await?;
    // `now()` is the transaction's start: only this statement can have set it.
    Ok(rows
        .into_iter()
        .filter(|(_, regressed)| *regressed)
        .map(|(id, _)| id)
        .collect())
}

/// `value` as JSON text: what `to_string()` gives, without going through `fmt::Display`.
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_are_known_once_remembered_until_the_bound_starts_over() {
        let known = KnownIssues::default();
        let (a, b) = ((1, "aaaa"), (1, "bbbb"));
        assert!(!known.all_known(&[a]));
        known.remember([a].into_iter());
        assert!(known.all_known(&[a]));
        assert!(!known.all_known(&[a, b]), "one unknown issue is enough");
        assert!(
            !known.all_known(&[(2, "aaaa")]),
            "the project is part of the key"
        );
        let filler: Vec<String> = (0..REMEMBERED_ISSUES).map(|n| n.to_string()).collect();
        known.remember(filler.iter().map(|hash| (3, hash.as_str())));
        assert!(
            !known.all_known(&[a]),
            "forgotten once the bound was passed"
        );
    }
}
