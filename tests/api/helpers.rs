//! One real Faultline per test: a fresh PostgreSQL database with migrations, the server on a
//! random port, a project with a DSN key, and typed helpers to send and inspect events.

use std::io::Write;
use std::net::SocketAddr;

use faultline::config::{
    AlertSettings, DashboardSettings, DatabaseSettings, Limits, PipelineSettings, PublicSettings,
    RetentionSettings, Settings, SpoolSettings,
};
use faultline::startup::Application;
use faultline::store::projects;
use serde_json::Value;
use sha2::Digest;
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
    /// Shared by copies of this app (`..app`); the last one drops the database.
    pub _database: std::sync::Arc<DropDatabase>,
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
        shutdown_timeout: 5,
        metrics_bind: None,
        limits: Limits::default(),
        pipeline: PipelineSettings::default(),
        spool: SpoolSettings {
            // A batch held up by locks on a loaded machine is still committed, not spooled
            // (and then missing when the test reads the database). Tests of outages set the
            // server's default back (`outage::proxied_app`).
            spool_after_ms: SLOW_COMMIT_MS,
            ..SpoolSettings::in_dir(new_spool_dir())
        },
        dashboard: DashboardSettings::default(),
        retention: RetentionSettings::default(),
        alerts: AlertSettings {
            alert_retry_seconds: 1,
            // The tests' receivers listen on 127.0.0.1.
            allow_private_webhooks: true,
            ..AlertSettings::default()
        },
    }
}

/// How many sessions of the test's database wait for a lock (a writer stalled on a table or
/// row the test holds).
pub async fn lock_waiters(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Has `app` check its DSN key once, so a burst finds it cached instead of every request
/// looking it up at once (each lookup may take at most 2 s, on a pool of five connections).
pub async fn warm_key_cache(app: &TestApp) {
    // A transaction is authorised, then dropped: nothing is stored.
    let answer = app
        .store(&serde_json::json!({"type": "transaction", "transaction": "/warm-up", "spans": []}))
        .await;
    assert_eq!(answer.status(), 200, "the key is looked up once");
}

/// Polls until `check` holds, for up to twenty seconds.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

/// Holds the `issues` table as a slow database would: every writer's batch waits for it
/// (each writes its issues) until the returned transaction ends.
pub async fn hold_issues_table(pool: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE issues IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    hold
}

/// Sends SIGTERM to a `faultline serve` process.
pub fn send_sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits, off the runtime's threads, for a process to exit.
pub async fn exit_status(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// How long the tests' servers wait for a commit before spooling its events.
pub const SLOW_COMMIT_MS: u64 = 30_000;

/// A spool directory of its own (each process locks its spool).
pub fn new_spool_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "faultline-test-spool-{}",
        uuid::Uuid::new_v4().simple()
    ))
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
    create_from_template(&settings.database.database_url).await;
    let app = start(settings).await;
    let key = faultline::domain::keys::new_public_key();
    let project_id = projects::create(&app.pool, "checkout-api", &key)
        .await
        .expect("project created");
    TestApp {
        project_id,
        key,
        ..app
    }
}

/// A database with every migration applied, made once per set of migrations and copied for
/// each test: `CREATE DATABASE … TEMPLATE` takes a few milliseconds, migrating takes far longer.
async fn create_from_template(database_url: &str) {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let template = TEMPLATE.get_or_init(migrated_template).await;
    let name = database_url.rsplit('/').next().expect("a database name");
    let mut admin = admin_connection().await;
    sqlx::query(&format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    ))
    .execute(&mut admin)
    .await
    .expect("test database created from the template");
}

/// The template's name carries a digest of the migrations, so a new migration gets a new
/// template; it is built under a temporary name and renamed once complete.
async fn migrated_template() -> String {
    let mut digest = String::new();
    for migration in faultline::store::MIGRATOR.iter() {
        digest.push_str(&hex::encode(&migration.checksum[..4]));
    }
    let name = format!(
        "faultline_template_{}",
        &hex::encode(sha2::Sha256::digest(digest.as_bytes()))[..16]
    );
    let mut admin = admin_connection().await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("look up the template");
    if !exists {
        let building = format!("faultline_test_building_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{building}", server_url());
        let pool = faultline::store::connect(&faultline::config::DatabaseSettings {
            database_url: url,
            db_pool_size: 1,
        })
        .await
        .expect("template database created");
        faultline::store::migrate(&pool)
            .await
            .expect("template migrated");
        // Renaming needs every connection to it gone; a closed connection's server process
        // may take a moment to exit.
        pool.close().await;
        let rename = format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"");
        let mut renamed = sqlx::query(&rename).execute(&mut admin).await;
        for _ in 0..50 {
            match &renamed {
                Err(e) if e.to_string().contains("being accessed by other users") => {
                    // Nothing of ours uses it any more: end whatever server process lingers.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    )
                    .bind(&building)
                    .execute(&mut admin)
                    .await;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    renamed = sqlx::query(&rename).execute(&mut admin).await;
                }
                _ => break,
            }
        }
        if let Err(e) = renamed {
            // A concurrent run may have finished first; its template is as good as ours.
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{building}\""))
                .execute(&mut admin)
                .await;
            assert!(
                e.to_string().contains("already exists"),
                "could not put the template in place: {e}"
            );
        }
    }
    name
}

async fn admin_connection() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("connect to the test server's postgres database")
}

/// Drops its test's database when the test ends, so runs leave nothing behind.
pub struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        // Drop runs inside the test's runtime, which cannot block on itself: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut admin = admin_connection().await;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("could not drop test database {}", self.0);
        }
    }
}

/// Starts a server on an existing settings' database without creating a project.
pub async fn start(settings: Settings) -> TestApp {
    let database_url = settings.database.database_url.clone();
    let database_name = database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
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
        _database: std::sync::Arc::new(DropDatabase(database_name)),
    }
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

impl TestApp {
    /// This app's project and database, served by another process or instance on `port`.
    pub fn at_port(&self, port: u16) -> TestApp {
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pool: self.pool.clone(),
            database_url: self.database_url.clone(),
            project_id: self.project_id,
            key: self.key.clone(),
            client: self.client.clone(),
            _database: self._database.clone(),
        }
    }

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

    /// GETs an API URL with a bearer token; returns the status and the JSON body.
    pub async fn api_get(&self, token: &str, url: &str) -> (u16, Value) {
        let answer = self
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
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
        faultline::store::event_body::decompress(&body).expect("body decodes")
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

/// A logged-in operator's browser: keeps cookies, does not follow redirects, and knows the
/// CSRF token of its session.
pub struct Browser {
    pub client: reqwest::Client,
    pub address: String,
    pub csrf: String,
}

pub struct Page {
    pub status: u16,
    pub location: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn csrf_in(html: &str) -> Option<String> {
    let re = regex::Regex::new(r#"name="csrf_token" value="([0-9a-f]+)""#).expect("regex");
    re.captures(html).map(|c| c[1].to_owned())
}

async fn page(response: reqwest::Response) -> Page {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    Page {
        status,
        location,
        headers,
        body,
    }
}

impl Browser {
    pub async fn get(&self, path: &str) -> Page {
        page(
            self.client
                .get(format!("{}{path}", self.address))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    /// POSTs a form with this session's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &self.csrf));
        self.post_raw(path, &form).await
    }

    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        page(
            self.client
                .post(format!("{}{path}", self.address))
                .form(fields)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub async fn create_user(&self, email: &str, admin: bool) {
        let hash = faultline::domain::credentials::hash_password(PASSWORD).expect("hash");
        faultline::store::users::create(&self.pool, email, &hash, admin)
            .await
            .expect("user created");
    }

    /// Logs in through the login form, as a person would.
    pub async fn try_login(&self, email: &str, password: &str, next: &str) -> (Browser, Page) {
        let client = browser_client();
        let form = page(
            client
                .get(format!("{}/login", self.address))
                .send()
                .await
                .expect("GET /login"),
        )
        .await;
        let csrf = csrf_in(&form.body).expect("login form has a CSRF token");
        let fields = [
            ("email", email),
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("next", next),
        ];
        let answer = page(
            client
                .post(format!("{}/login", self.address))
                .form(&fields)
                .send()
                .await
                .expect("POST /login"),
        )
        .await;
        let mut browser = Browser {
            client,
            address: self.address.clone(),
            csrf: String::new(),
        };
        if answer.status == 303 {
            let home = browser.get("/projects").await;
            browser.csrf = csrf_in(&home.body).unwrap_or_default();
        }
        (browser, answer)
    }

    /// An operator with an API token; returns the token.
    pub async fn create_token(&self, email: &str) -> String {
        self.create_user(email, false).await;
        let user = faultline::store::users::find_by_email(&self.pool, email)
            .await
            .unwrap()
            .expect("user exists");
        let token = faultline::domain::credentials::random_token();
        let hash = faultline::domain::credentials::token_hash(&token);
        faultline::store::users::create_token(&self.pool, user.id, &hash, "tests")
            .await
            .expect("token created");
        token
    }

    /// An admin, logged in.
    pub async fn admin_browser(&self) -> Browser {
        self.create_user("admin@example.com", true).await;
        let (browser, answer) = self.try_login("admin@example.com", PASSWORD, "/").await;
        assert_eq!(answer.status, 303, "login failed: {}", answer.body);
        assert!(!browser.csrf.is_empty());
        browser
    }
}

/// `event` as ingest prepares it for the writer (normalised, grouped, compressed), for tests
/// that drive the pipeline or the store directly.
pub fn prepared_event(project_id: i64, event: &Value) -> faultline::store::events::NewEvent {
    faultline::ingest::process::prepare(
        &serde_json::to_vec(event).expect("JSON"),
        project_id,
        &faultline::ingest::normalize::EnvelopeContext::default(),
        chrono::Utc::now(),
        &faultline::config::Limits::default(),
    )
    .expect("a valid event")
}
