//! End-to-end tests: a real server over real HTTP against a real PostgreSQL.

mod access;
mod alert_durability;
mod alert_receiver;
mod alerts;
mod api_tokens;
mod cli;
mod concurrency;
mod dashboard;
mod faults;
mod fixtures;
mod grouping;
mod health;
mod helpers;
mod hostile;
mod metrics;
mod odd_input;
mod outage;
mod protocol;
mod python_sdk;
mod real_clients;
mod retention;
mod scrubbing;
mod shutdown;
mod smtp_sink;
mod spool;
mod upkeep;
