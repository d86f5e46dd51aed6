//! The Sentry ingest protocol: from an HTTP request to an event queued for storage.

pub mod aggregate_flush;
pub mod auth;
pub mod body;
pub mod envelope;
pub mod error;
pub mod facets;
pub mod feedback;
pub mod grouping;
pub mod keys;
pub mod lenient_json;
pub mod normalize;
pub mod pipeline;
pub mod process;
pub mod report_dialog;
pub mod routes;
pub mod scrub;
pub mod search_terms;
