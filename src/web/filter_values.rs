//! The values offered in the issue list's environment and release drop-downs. Reading them
//! sums over every issue, so they are kept for a short while instead of read per page view;
//! a value that appears meanwhile can still be typed into the URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::store::issues::{self, FilterKey};

const FRESH_FOR: Duration = Duration::from_secs(30);
const MAX_VALUES: i64 = 50;

#[derive(Default)]
pub struct FilterValues {
    cached: Mutex<HashMap<FilterKey, (Instant, Vec<String>)>>,
}

impl FilterValues {
    pub async fn get(&self, pool: &PgPool, key: FilterKey) -> sqlx::Result<Vec<String>> {
        if let Some(values) = self.fresh(key) {
            return Ok(values);
        }
        let values = issues::known_values(pool, key, MAX_VALUES).await?;
        if let Ok(mut cached) = self.cached.lock() {
            cached.insert(key, (Instant::now(), values.clone()));
        }
        Ok(values)
    }

    fn fresh(&self, key: FilterKey) -> Option<Vec<String>> {
        let cached = self.cached.lock().ok()?;
        let (at, values) = cached.get(&key)?;
        (at.elapsed() < FRESH_FOR).then(|| values.clone())
    }
}
