//! Settings read from the environment (or the matching command-line flags), validated once at
//! start-up. Every variable is documented here and in `faultline --help`.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// Where the database is; shared by every command.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// PostgreSQL connection URL. The database is created if it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@localhost:5432/faultline",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Maximum number of pooled connections to PostgreSQL.
    #[arg(long, env = "FAULTLINE_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,
}

/// The public address of this server, used to build DSNs and links.
#[derive(Debug, Clone, Args)]
pub struct PublicSettings {
    /// Base URL users and SDKs reach Faultline at; the host part of every DSN.
    #[arg(
        long,
        env = "FAULTLINE_BASE_URL",
        default_value = "http://localhost:8000"
    )]
    pub base_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Everything `faultline serve` needs.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub public: PublicSettings,

    /// Address and port to listen on.
    #[arg(long, env = "FAULTLINE_BIND", default_value = "0.0.0.0:8000")]
    pub bind: SocketAddr,

    /// Number of HTTP worker threads (0: one per CPU core).
    #[arg(long, env = "FAULTLINE_WORKERS", default_value_t = 0)]
    pub workers: usize,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub pipeline: PipelineSettings,

    #[command(flatten)]
    pub dashboard: DashboardSettings,

    #[command(flatten)]
    pub retention: RetentionSettings,
}

/// How long events are kept.
#[derive(Debug, Clone, Args)]
pub struct RetentionSettings {
    /// Events received longer ago than this many days are removed (issues keep their totals).
    #[arg(long, env = "FAULTLINE_RETENTION_DAYS", default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..))]
    pub retention_days: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { retention_days: 90 }
    }
}

/// Operators' access to the dashboard and the API.
#[derive(Debug, Clone, Args)]
pub struct DashboardSettings {
    /// A session unused for this many minutes ends.
    #[arg(long, env = "FAULTLINE_SESSION_IDLE_MINUTES", default_value_t = 12 * 60)]
    pub session_idle_minutes: i64,

    /// A session ends this many hours after login, however active.
    #[arg(long, env = "FAULTLINE_SESSION_MAX_HOURS", default_value_t = 7 * 24)]
    pub session_max_hours: i64,

    /// With FAULTLINE_ADMIN_PASSWORD: the first admin, created at start-up when no user exists.
    #[arg(long, env = "FAULTLINE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of FAULTLINE_ADMIN_EMAIL.
    #[arg(long, env = "FAULTLINE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// The organisation slug of the Sentry-shaped API (`/api/0/projects/{org}/…`).
    #[arg(long, env = "FAULTLINE_ORG", default_value = "faultline")]
    pub org: String,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            session_idle_minutes: 12 * 60,
            session_max_hours: 7 * 24,
            admin_email: None,
            admin_password: None,
            org: "faultline".into(),
        }
    }
}

/// Size limits applied to every ingest request. Bodies over a byte limit are refused with 413;
/// fields over a length limit are trimmed and the event kept, as Sentry does.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest request body accepted as sent (compressed), in bytes.
    #[arg(long, env = "FAULTLINE_MAX_BODY_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest request body after decompression, in bytes (guards against gzip bombs).
    #[arg(long, env = "FAULTLINE_MAX_DECOMPRESSED_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_decompressed_bytes: usize,

    /// Largest single event (an envelope `event` item or a store body), in bytes.
    #[arg(long, env = "FAULTLINE_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,

    /// Longest string kept in an event, in characters; longer ones are cut and end in "…".
    #[arg(long, env = "FAULTLINE_MAX_STRING_CHARS", default_value_t = 8192)]
    pub max_string_chars: usize,

    /// Most breadcrumbs kept per event (the newest are kept).
    #[arg(long, env = "FAULTLINE_MAX_BREADCRUMBS", default_value_t = 100)]
    pub max_breadcrumbs: usize,

    /// Most frames kept per stack trace (trimmed from the middle, as Sentry does).
    #[arg(long, env = "FAULTLINE_MAX_FRAMES", default_value_t = 250)]
    pub max_frames: usize,

    /// Deepest nesting kept inside free-form data (extra, contexts, frame vars…); deeper values
    /// are replaced by a marker. JSON nested deeper than 128 levels is refused with 400.
    #[arg(long, env = "FAULTLINE_MAX_JSON_DEPTH", default_value_t = 16)]
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 20 * 1024 * 1024,
            max_decompressed_bytes: 50 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
            max_string_chars: 8192,
            max_breadcrumbs: 100,
            max_frames: 250,
            max_json_depth: 16,
        }
    }
}

/// Tuning of the batching writer.
#[derive(Debug, Clone, Args)]
pub struct PipelineSettings {
    /// Events waiting for the writer before new ones are refused with 429.
    #[arg(long, env = "FAULTLINE_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub queue_capacity: usize,

    /// Most events written in one transaction.
    #[arg(long, env = "FAULTLINE_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,

    /// Longest a batch waits for more events before it is written, in milliseconds.
    #[arg(long, env = "FAULTLINE_BATCH_WAIT_MS", default_value_t = 5)]
    pub batch_wait_ms: u64,

    /// Writer tasks, each with its own database connection: while one commits, the next
    /// batch is being written.
    #[arg(long, env = "FAULTLINE_WRITERS", default_value_t = 2)]
    pub writers: usize,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            queue_capacity: 10_000,
            batch_size: 500,
            batch_wait_ms: 5,
            writers: 2,
        }
    }
}
