//! Faultline: a self-hosted error-monitoring server for the official Sentry SDKs.

pub mod cli;
pub mod config;
pub mod error;
pub mod ingest;
pub mod startup;
pub mod store;
pub mod telemetry;
