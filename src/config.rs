//! Settings read from the environment (or the matching command-line flags), validated once at
//! start-up. Every variable is documented here and in `faultline --help`.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// Each default written once, for both the command line and `Default` (tests, tools).
mod defaults {
    pub const RETENTION_DAYS: i64 = 90;
    pub const SESSION_IDLE_MINUTES: i64 = 12 * 60;
    pub const SESSION_MAX_HOURS: i64 = 7 * 24;
    pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
    pub const MAX_DECOMPRESSED_BYTES: usize = 50 * 1024 * 1024;
    pub const MAX_IN_FLIGHT_BYTES: usize = 256 * 1024 * 1024;
    pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
    pub const MAX_STRING_CHARS: usize = 8192;
    pub const MAX_BREADCRUMBS: usize = 100;
    pub const MAX_FRAMES: usize = 250;
    pub const MAX_JSON_DEPTH: usize = 16;
    pub const SOURCE_MAP_CACHE_MB: u64 = 64;
    pub const QUEUE_CAPACITY: usize = 10_000;
    pub const QUEUE_MAX_BYTES: usize = 128 * 1024 * 1024;
    pub const BATCH_SIZE: usize = 500;
    pub const BATCH_WAIT_MS: u64 = 5;
    pub const WRITERS: usize = 2;
    pub const AGGREGATE_WINDOW_MS: u64 = 5000;
    pub const ORG: &str = "faultline";
    pub const ALERT_RETRY_SECONDS: i64 = 30;
    pub const ALERT_MAX_ATTEMPTS: i32 = 10;
    pub const ALERT_CAP: i64 = 20;
    pub const ALERT_CAP_WINDOW_SECONDS: i64 = 600;
    pub const ALERT_LEASE_SECONDS: i64 = 60;
    pub const SHUTDOWN_TIMEOUT_SECS: u64 = 20;
    pub const SPOOL_DIR: &str = "./data/spool";
    pub const SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
    pub const SPOOL_AFTER_MS: u64 = 2000;
}

/// The longest a session may last, idle or in all: a year. Past it the time arithmetic of a
/// login could overflow; settings outside a range are refused when read, with the range.
const MAX_SESSION_MINUTES: i64 = 366 * 24 * 60;

/// Where the database is; shared by every command.
#[derive(Clone, Args)]
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
    #[arg(long, env = "FAULTLINE_DB_POOL_SIZE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
}

// Secrets never reach `Debug` output (a settings dump in a log or a panic message).
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("database_url", &without_password(&self.database_url))
            .field("db_pool_size", &self.db_pool_size)
            .finish()
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:[redacted]@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".into();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
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

    /// Where Prometheus scrapes `GET /metrics`, e.g. 127.0.0.1:9464; off when unset. Its own
    /// listener, so it is never public by accident.
    #[arg(long, env = "FAULTLINE_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// On SIGTERM or SIGINT: seconds to finish the requests in flight (each waits until its
    /// event is committed or spooled) before exiting.
    #[arg(long, env = "FAULTLINE_SHUTDOWN_TIMEOUT", default_value_t = defaults::SHUTDOWN_TIMEOUT_SECS)]
    pub shutdown_timeout: u64,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub pipeline: PipelineSettings,

    #[command(flatten)]
    pub spool: SpoolSettings,

    #[command(flatten)]
    pub dashboard: DashboardSettings,

    #[command(flatten)]
    pub retention: RetentionSettings,

    #[command(flatten)]
    pub alerts: AlertSettings,
}

/// How alerts are delivered and retried.
#[derive(Clone, Args)]
pub struct AlertSettings {
    /// Seconds before the first retry of a failed alert; each later retry waits twice as long
    /// (at most an hour), and never less than the receiver's Retry-After.
    #[arg(long, env = "FAULTLINE_ALERT_RETRY_SECONDS", default_value_t = defaults::ALERT_RETRY_SECONDS)]
    pub alert_retry_seconds: i64,

    /// Attempts before a delivery is abandoned (and shown as failed on its channel).
    #[arg(long, env = "FAULTLINE_ALERT_MAX_ATTEMPTS", default_value_t = defaults::ALERT_MAX_ATTEMPTS)]
    pub alert_max_attempts: i32,

    /// Storm control: at most this many notifications per channel per window; the rest are
    /// held and sent as one digest when the window ends.
    #[arg(long, env = "FAULTLINE_ALERT_CAP", default_value_t = defaults::ALERT_CAP)]
    pub alert_cap: i64,

    /// The cap's window, in seconds.
    #[arg(long, env = "FAULTLINE_ALERT_CAP_WINDOW_SECONDS", default_value_t = defaults::ALERT_CAP_WINDOW_SECONDS)]
    pub alert_cap_window_seconds: i64,

    /// Seconds an instance holds a delivery it is sending; one that dies meanwhile leaves it to
    /// another instance (or to itself, restarted) after this long. Keep it well above the
    /// 10 s a post may take, or a slow post may be sent twice.
    #[arg(long, env = "FAULTLINE_ALERT_LEASE_SECONDS", default_value_t = defaults::ALERT_LEASE_SECONDS, value_parser = clap::value_parser!(i64).range(1..))]
    pub alert_lease_seconds: i64,

    /// SMTP server for e-mail alerts: smtp://user:pass@host:587?tls=required (STARTTLS),
    /// smtps://host:465 (implicit TLS) or smtp://127.0.0.1:25 (a local relay, no TLS).
    #[arg(long, env = "FAULTLINE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The From of alert e-mails, e.g. "Faultline <alerts@example.com>".
    #[arg(long, env = "FAULTLINE_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// Allow webhooks on loopback, private and link-local addresses (receivers inside your own
    /// network). Off by default: such a URL is refused when saved and when sent.
    #[arg(
        long,
        env = "FAULTLINE_ALLOW_PRIVATE_WEBHOOKS",
        default_value_t = false
    )]
    pub allow_private_webhooks: bool,
}

impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSettings")
            .field("alert_retry_seconds", &self.alert_retry_seconds)
            .field("alert_max_attempts", &self.alert_max_attempts)
            .field("smtp_url", &self.smtp_url.as_deref().map(without_password))
            .field("smtp_from", &self.smtp_from)
            .field("alert_cap", &self.alert_cap)
            .field("alert_cap_window_seconds", &self.alert_cap_window_seconds)
            .field("alert_lease_seconds", &self.alert_lease_seconds)
            .field("allow_private_webhooks", &self.allow_private_webhooks)
            .finish()
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            alert_retry_seconds: defaults::ALERT_RETRY_SECONDS,
            alert_max_attempts: defaults::ALERT_MAX_ATTEMPTS,
            smtp_url: None,
            smtp_from: None,
            alert_cap: defaults::ALERT_CAP,
            alert_cap_window_seconds: defaults::ALERT_CAP_WINDOW_SECONDS,
            alert_lease_seconds: defaults::ALERT_LEASE_SECONDS,
            allow_private_webhooks: false,
        }
    }
}

/// How long events are kept.
#[derive(Debug, Clone, Args)]
pub struct RetentionSettings {
    /// Events received longer ago than this many days are removed (issues keep their totals).
    #[arg(long, env = "FAULTLINE_RETENTION_DAYS", default_value_t = defaults::RETENTION_DAYS, value_parser = clap::value_parser!(i64).range(1..))]
    pub retention_days: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            retention_days: defaults::RETENTION_DAYS,
        }
    }
}

/// Operators' access to the dashboard and the API.
#[derive(Clone, Args)]
pub struct DashboardSettings {
    /// A session unused for this many minutes ends.
    #[arg(long, env = "FAULTLINE_SESSION_IDLE_MINUTES", default_value_t = defaults::SESSION_IDLE_MINUTES,
          value_parser = clap::value_parser!(i64).range(1..=MAX_SESSION_MINUTES))]
    pub session_idle_minutes: i64,

    /// A session ends this many hours after login, however active.
    #[arg(long, env = "FAULTLINE_SESSION_MAX_HOURS", default_value_t = defaults::SESSION_MAX_HOURS,
          value_parser = clap::value_parser!(i64).range(1..=MAX_SESSION_MINUTES / 60))]
    pub session_max_hours: i64,

    /// With FAULTLINE_ADMIN_PASSWORD: the first admin, created at start-up when no user exists.
    #[arg(long, env = "FAULTLINE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of FAULTLINE_ADMIN_EMAIL.
    #[arg(long, env = "FAULTLINE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// The organisation slug of the Sentry-shaped API (`/api/0/projects/{org}/…`).
    #[arg(long, env = "FAULTLINE_ORG", default_value = defaults::ORG)]
    pub org: String,
}

impl std::fmt::Debug for DashboardSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardSettings")
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("session_max_hours", &self.session_max_hours)
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "[redacted]"),
            )
            .field("org", &self.org)
            .finish()
    }
}

impl Default for DashboardSettings {
    fn default() -> Self {
        DashboardSettings {
            session_idle_minutes: defaults::SESSION_IDLE_MINUTES,
            session_max_hours: defaults::SESSION_MAX_HOURS,
            admin_email: None,
            admin_password: None,
            org: defaults::ORG.into(),
        }
    }
}

/// Size limits applied to every ingest request. Bodies over a byte limit are refused with 413;
/// fields over a length limit are trimmed and the event kept, as Sentry does.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest request body accepted as sent (compressed), in bytes.
    #[arg(long, env = "FAULTLINE_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Largest request body after decompression, in bytes (guards against gzip bombs).
    #[arg(long, env = "FAULTLINE_MAX_DECOMPRESSED_BYTES", default_value_t = defaults::MAX_DECOMPRESSED_BYTES)]
    pub max_decompressed_bytes: usize,

    /// Memory the ingest requests being answered may hold in their bodies at once (as sent,
    /// and decompressed), in bytes; past it new ones get 429 with Retry-After. Without it,
    /// many large uploads at once could take more memory than the machine has.
    #[arg(long, env = "FAULTLINE_MAX_IN_FLIGHT_BYTES", default_value_t = defaults::MAX_IN_FLIGHT_BYTES)]
    pub max_in_flight_bytes: usize,

    /// Largest single event (an envelope `event` item or a store body), in bytes.
    #[arg(long, env = "FAULTLINE_MAX_EVENT_BYTES", default_value_t = defaults::MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,

    /// Longest string kept in an event, in characters; longer ones are cut and end in "…".
    #[arg(long, env = "FAULTLINE_MAX_STRING_CHARS", default_value_t = defaults::MAX_STRING_CHARS)]
    pub max_string_chars: usize,

    /// Most breadcrumbs kept per event (the newest are kept).
    #[arg(long, env = "FAULTLINE_MAX_BREADCRUMBS", default_value_t = defaults::MAX_BREADCRUMBS)]
    pub max_breadcrumbs: usize,

    /// Most frames kept per stack trace (trimmed from the middle, as Sentry does).
    #[arg(long, env = "FAULTLINE_MAX_FRAMES", default_value_t = defaults::MAX_FRAMES)]
    pub max_frames: usize,

    /// Deepest nesting kept inside free-form data (extra, contexts, frame vars…); deeper values
    /// are replaced by a marker. JSON nested deeper than 128 levels is refused with 400.
    #[arg(long, env = "FAULTLINE_MAX_JSON_DEPTH", default_value_t = defaults::MAX_JSON_DEPTH)]
    pub max_json_depth: usize,

    /// Memory for parsed source maps, in MiB (estimated; least used maps go first).
    #[arg(long, env = "FAULTLINE_SOURCE_MAP_CACHE_MB", default_value_t = defaults::SOURCE_MAP_CACHE_MB,
          value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    pub source_map_cache_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_decompressed_bytes: defaults::MAX_DECOMPRESSED_BYTES,
            max_in_flight_bytes: defaults::MAX_IN_FLIGHT_BYTES,
            max_event_bytes: defaults::MAX_EVENT_BYTES,
            max_string_chars: defaults::MAX_STRING_CHARS,
            max_breadcrumbs: defaults::MAX_BREADCRUMBS,
            max_frames: defaults::MAX_FRAMES,
            max_json_depth: defaults::MAX_JSON_DEPTH,
            source_map_cache_mb: defaults::SOURCE_MAP_CACHE_MB,
        }
    }
}

/// The local spool that keeps acknowledged events while PostgreSQL cannot take them.
#[derive(Debug, Clone, Args)]
pub struct SpoolSettings {
    /// Where events wait, fsync'd, while PostgreSQL is unreachable or slow. One Faultline
    /// process per directory; keep it on a disk that survives a restart (a volume).
    #[arg(long, env = "FAULTLINE_SPOOL_DIR", default_value = defaults::SPOOL_DIR)]
    pub spool_dir: std::path::PathBuf,

    /// Most bytes the spool holds; when full, new events get 503 and Retry-After.
    #[arg(long, env = "FAULTLINE_SPOOL_MAX_BYTES", default_value_t = defaults::SPOOL_MAX_BYTES)]
    pub spool_max_bytes: u64,

    /// A batch whose commit has not completed within this many milliseconds is spooled.
    #[arg(long, env = "FAULTLINE_SPOOL_AFTER_MS", default_value_t = defaults::SPOOL_AFTER_MS,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub spool_after_ms: u64,
}

impl SpoolSettings {
    /// Defaults, in `dir`.
    pub fn in_dir(dir: std::path::PathBuf) -> Self {
        SpoolSettings {
            spool_dir: dir,
            spool_max_bytes: defaults::SPOOL_MAX_BYTES,
            spool_after_ms: defaults::SPOOL_AFTER_MS,
        }
    }
}

/// Tuning of the batching writer.
#[derive(Debug, Clone, Args)]
pub struct PipelineSettings {
    /// Events waiting for the writer before new ones are refused with 429.
    #[arg(long, env = "FAULTLINE_QUEUE_CAPACITY", default_value_t = defaults::QUEUE_CAPACITY)]
    pub queue_capacity: usize,

    /// Memory the events waiting for the writer (or being written) may hold, in bytes, before
    /// new ones are refused with 429: ten thousand large events would otherwise hold
    /// gigabytes. One event is always let in when none waits, however large.
    #[arg(long, env = "FAULTLINE_QUEUE_MAX_BYTES", default_value_t = defaults::QUEUE_MAX_BYTES)]
    pub queue_max_bytes: usize,

    /// Most events written in one transaction.
    #[arg(long, env = "FAULTLINE_BATCH_SIZE", default_value_t = defaults::BATCH_SIZE)]
    pub batch_size: usize,

    /// Longest a batch waits for more events before it is written, in milliseconds.
    #[arg(long, env = "FAULTLINE_BATCH_WAIT_MS", default_value_t = defaults::BATCH_WAIT_MS)]
    pub batch_wait_ms: u64,

    /// Writer tasks, each with its own database connection: while one commits, the next
    /// batch is being written.
    #[arg(long, env = "FAULTLINE_WRITERS", default_value_t = defaults::WRITERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=32))]
    pub writers: usize,

    /// Under load (events waiting when a batch starts), batches defer their aggregates (tag
    /// values, events per hour, endpoints) and they are folded in together after this many
    /// milliseconds, or as soon as the queue runs dry. 0: every batch adds its own at once.
    #[arg(long, env = "FAULTLINE_AGGREGATE_WINDOW_MS", default_value_t = defaults::AGGREGATE_WINDOW_MS)]
    pub aggregate_window_ms: u64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            queue_capacity: defaults::QUEUE_CAPACITY,
            queue_max_bytes: defaults::QUEUE_MAX_BYTES,
            batch_size: defaults::BATCH_SIZE,
            batch_wait_ms: defaults::BATCH_WAIT_MS,
            writers: defaults::WRITERS,
            aggregate_window_ms: defaults::AGGREGATE_WINDOW_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_database_and_admin_passwords() {
        let database = DatabaseSettings {
            database_url: "postgres://faultline:s3cret@db:5432/faultline".into(),
            db_pool_size: 10,
        };
        let dashboard = DashboardSettings {
            admin_password: Some("hunter22".into()),
            ..DashboardSettings::default()
        };
        let text = format!("{database:?} {dashboard:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("hunter22"),
            "{text}"
        );
        assert!(text.contains("postgres://faultline:[redacted]@db:5432/faultline"));
    }
}
