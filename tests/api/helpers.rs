//! One real Faultline per test: a fresh PostgreSQL database with migrations, the server on a
//! random port, a project with a DSN key, and typed helpers to send and inspect events.

use std::io::Write;
use std::net::SocketAddr;

use faultline::config::{
    DashboardSettings, DatabaseSettings, Limits, PipelineSettings, PublicSettings, Settings,
};
use faultline::startup::Application;
use faultline::store::projects;
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where tests create their databases; the test command points it at a running server.
pub fn server_url() -> String {
    std::env::var("FAULTLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApp {
    pub address: String,
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub database_url: String,
    pub project_id: i64,
    pub key: String,
    pub client: reqwest::Client,
}

pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        database: DatabaseSettings {
            database_url: database_url.to_owned(),
            db_pool_size: 5,
        },
        public: PublicSettings {
            base_url: "http://localhost:8000".into(),
        },
        bind: "127.0.0.1:0".parse().expect("valid address"),
        workers: 2,
        limits: Limits::default(),
        pipeline: PipelineSettings::default(),
        dashboard: DashboardSettings::default(),
    }
}

pub fn new_database_url() -> String {
    format!(
        "{}/faultline_test_{}",
        server_url(),
        uuid::Uuid::new_v4().simple()
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&new_database_url());
    adjust(&mut settings);
    let app = start(settings).await;
    let key = faultline::cli::new_public_key();
    let project_id = projects::create(&app.pool, "checkout-api", &key)
        .await
        .expect("project created");
    TestApp {
        project_id,
        key,
        ..app
    }
}

/// Starts a server on an existing settings' database without creating a project.
pub async fn start(settings: Settings) -> TestApp {
    let database_url = settings.database.database_url.clone();
    let application = Application::build(settings)
        .await
        .expect("application starts");
    let port = application.port();
    tokio::spawn(application.run_until_stopped());
    let pool = PgPool::connect(&database_url)
        .await
        .expect("test pool connects");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pool,
        database_url,
        project_id: 0,
        key: String::new(),
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    pub fn dsn(&self) -> String {
        format!(
            "http://{}@127.0.0.1:{}/{}",
            self.key,
            self.addr.port(),
            self.project_id
        )
    }

    pub fn envelope_url(&self) -> String {
        format!("{}/api/{}/envelope/", self.address, self.project_id)
    }

    pub fn store_url(&self) -> String {
        format!("{}/api/{}/store/", self.address, self.project_id)
    }

    pub fn auth_header(&self) -> String {
        format!(
            "Sentry sentry_key={}, sentry_version=7, sentry_client=faultline-tests/1.0",
            self.key
        )
    }

    /// POSTs an envelope authenticated with `X-Sentry-Auth`.
    pub async fn post_envelope(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.envelope_url())
            .header("X-Sentry-Auth", self.auth_header())
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs one event as JSON to the store endpoint.
    pub async fn store(&self, event: &Value) -> reqwest::Response {
        self.client
            .post(self.store_url())
            .header("X-Sentry-Auth", self.auth_header())
            .json(event)
            .send()
            .await
            .expect("request sent")
    }

    /// Stores the event and insists it was accepted.
    pub async fn store_ok(&self, event: &Value) -> String {
        let response = self.store(event).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json answer");
        assert_eq!(status, 200, "event refused: {body}");
        body["id"].as_str().expect("id in answer").to_owned()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    pub async fn issue_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM issues")
            .fetch_one(&self.pool)
            .await
            .expect("count issues")
    }

    /// `(title, event_count)` of every issue, by title.
    pub async fn issues(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT title, event_count FROM issues ORDER BY title")
            .fetch_all(&self.pool)
            .await
            .expect("list issues")
    }

    /// The stored, normalised event.
    pub async fn stored_event(&self, event_id: &str) -> Value {
        let id = uuid::Uuid::parse_str(event_id).expect("event id is a uuid");
        let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE event_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("event is stored");
        faultline::ingest::process::decompress(&body).expect("body decodes")
    }

    /// Sends raw bytes as one HTTP/1.1 request and returns `(status, head, body)`.
    pub async fn raw_request(&self, request: &[u8]) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        let text = String::from_utf8_lossy(&response).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_owned(), body.to_owned())
    }
}

/// An envelope with one event item, with or without the `length` header.
pub fn envelope(event: &Value, with_length: bool) -> Vec<u8> {
    let payload = serde_json::to_vec(event).expect("json");
    let event_id = event.get("event_id").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("{{\"event_id\":\"{event_id}\",\"sent_at\":\"2026-01-01T00:00:00Z\"}}\n")
        .into_bytes();
    if with_length {
        out.extend_from_slice(
            format!("{{\"type\":\"event\",\"length\":{}}}\n", payload.len()).as_bytes(),
        );
    } else {
        out.extend_from_slice(b"{\"type\":\"event\"}\n");
    }
    out.extend_from_slice(&payload);
    out.push(b'\n');
    out
}

pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A Python-like error event raised at `line` of `module.function`.
pub fn error_event(exception_type: &str, value: &str, function: &str, line: i64) -> Value {
    serde_json::json!({
        "event_id": new_event_id(),
        "platform": "python",
        "level": "error",
        "exception": {"values": [{
            "type": exception_type,
            "value": value,
            "mechanism": {"type": "generic", "handled": true},
            "stacktrace": {"frames": [
                {"module": "app.main", "function": "main", "filename": "app/main.py", "lineno": 3, "in_app": true},
                {"module": "app.orders", "function": function, "filename": "app/orders.py", "lineno": line,
                 "context_line": "    total = int(raw)", "in_app": true}
            ]}
        }]}
    })
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}
