//! Faultline: a self-hosted error-monitoring server for the official Sentry SDKs.

pub mod alerts;
pub mod api;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod rate_limit;
pub mod self_report;
pub mod source_maps;
pub mod spool;
pub mod startup;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod upkeep;
pub mod web;
