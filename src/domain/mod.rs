//! Rules of Faultline's own domain that several layers share (the CLI, start-up, the dashboard,
//! the API, ingest): each has one home here. Pure: no I/O.

pub mod artifact_bundle;
pub mod credentials;
pub mod cursor;
pub mod event_shape;
pub mod keys;
pub mod level;
pub mod minified_source;
pub mod period;
pub mod project_name;
pub mod search;
pub mod symbolicate;
pub mod text;
