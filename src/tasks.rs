//! Background tasks that outlive a bug: a task that panics is started again, so one bad
//! batch or one hostile answer never silently ends the event writers or the alert sender.

/// Runs the task `start` makes, and starts a new one whenever it panics (logged, naming
/// `what`). Returns when the task ends normally.
pub async fn supervise<F, Fut>(what: &'static str, start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(start()).await {
            Err(e) if e.is_panic() => {
                tracing::error!(task = what, error = %e, "a background task panicked; starting a new one")
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_task_that_panics_is_started_again() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        supervise("a test task", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("a bug in round {n}");
                }
            }
        })
        .await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "two panics, then a normal end"
        );
    }
}
