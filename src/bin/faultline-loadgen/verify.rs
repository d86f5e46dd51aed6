//! After the run: is every acknowledged event stored, exactly once, in the expected issues?
//! The counts come from `faultline::store::load_check`; this module judges them.

use faultline::store::load_check::{self, ProjectCounts};
use sqlx::PgPool;
use uuid::Uuid;

pub struct Verdict {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// Compares what the server acknowledged with what PostgreSQL holds.
pub async fn verify(
    pool: &PgPool,
    project_id: i64,
    before: ProjectCounts,
    acknowledged: &[Uuid],
    expected_issues: usize,
) -> sqlx::Result<Verdict> {
    let after = load_check::project_counts(pool, project_id).await?;
    let load_check::StoredCounts {
        rows,
        events: stored,
        issues,
    } = load_check::stored_counts(pool, project_id, acknowledged).await?;
    let acked = acknowledged.len() as i64;
    let new_rows = after.events - before.events;
    let new_counted = after.counted - before.counted;
    let expected_issues = expected_issues.min(acknowledged.len()) as i64;
    let mut verdict = Verdict {
        lines: Vec::new(),
        ok: true,
    };
    verdict.check(
        stored == acked,
        format!("acknowledged {acked}, of which stored {stored}"),
    );
    verdict.check(
        rows == stored,
        format!(
            "rows holding acknowledged events {rows} (duplicates: {})",
            rows - stored
        ),
    );
    verdict.check(
        new_counted == new_rows,
        format!("new event rows {new_rows}, counted in issues {new_counted}"),
    );
    verdict.check(
        new_rows >= acked,
        format!(
            "stored but not acknowledged (answer lost or timed out): {}",
            new_rows - acked
        ),
    );
    verdict.check(
        issues == expected_issues,
        format!("distinct issues of acknowledged events {issues}, expected {expected_issues}"),
    );
    Ok(verdict)
}

impl Verdict {
    fn check(&mut self, passed: bool, line: String) {
        self.ok &= passed;
        let mark = if passed { "ok  " } else { "FAIL" };
        self.lines.push(format!("{mark} {line}"));
    }
}
