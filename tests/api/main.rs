//! End-to-end tests: a real server over real HTTP against a real PostgreSQL.

mod cli;
mod concurrency;
mod fixtures;
mod grouping;
mod health;
mod helpers;
mod hostile;
mod outage;
mod protocol;
mod python_sdk;
mod scrubbing;
