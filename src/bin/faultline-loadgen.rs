//! `faultline-loadgen`: sends realistic Sentry envelopes to a Faultline (or any Sentry-compatible)
//! server, reports the accepted rate, latency percentiles and status counts, and — given the
//! database — checks that every acknowledged event was stored exactly once.
//!
//! Bodies come from pre-built, pre-compressed templates (see `template.rs`), so the generator
//! spends a few microseconds per request and is not what limits the measurement.

#[path = "faultline-loadgen/breakdown.rs"]
mod breakdown;
#[path = "faultline-loadgen/event.rs"]
mod event;
#[path = "faultline-loadgen/report.rs"]
mod report;
#[path = "faultline-loadgen/run.rs"]
mod run;
#[path = "faultline-loadgen/server.rs"]
mod server;
#[path = "faultline-loadgen/symbolication.rs"]
mod symbolication;
#[path = "faultline-loadgen/template.rs"]
mod template;
#[path = "faultline-loadgen/verify.rs"]
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use faultline::store::load_check;
use reqwest::header::{HeaderMap, HeaderValue};
use sqlx::PgPool;

use event::EventShape;

/// The server's allocator, so `--breakdown` and `--symbolication` time what the server does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use template::{Encoding, Template};

/// Load generator and correctness check for Faultline's ingest.
#[derive(Debug, Parser)]
#[command(name = "faultline-loadgen")]
struct Args {
    /// The project's DSN, e.g. http://KEY@127.0.0.1:8000/1.
    #[arg(long, required_unless_present_any = ["breakdown", "symbolication"])]
    dsn: Option<String>,

    /// How many events to send.
    #[arg(long, default_value_t = 10_000)]
    events: u64,

    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,

    /// Target events per second; without it, events are sent as fast as answers come back.
    #[arg(long)]
    rate: Option<f64>,

    /// Distinct issues the events are spread over (evenly).
    #[arg(long, default_value_t = 500)]
    issues: usize,

    /// Content-Encoding of the request bodies.
    #[arg(long, value_enum, default_value_t = Encoding::Gzip)]
    compression: Encoding,

    /// Seconds before a request counts as timed out.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,

    /// PostgreSQL URL of the server's database: when given, every acknowledged event is
    /// checked to be stored exactly once, and the run fails otherwise.
    #[arg(long)]
    database_url: Option<String>,

    /// Process id of the server, to report its memory (VmRSS) and CPU during the run.
    #[arg(long)]
    server_pid: Option<u32>,

    /// Threads of the load generator's own runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Also print the figures as one JSON object on the last line.
    #[arg(long)]
    json: bool,

    /// Send nothing: time each step of the server's ingest on `--events` generated bodies, in
    /// this process, and print the average per step.
    #[arg(long)]
    breakdown: bool,

    /// Send nothing: time `--events` JavaScript events through ingest with and without a
    /// ~1 MB source map held in memory (as the server's cache holds it), and print p50/p99.
    #[arg(long)]
    symbolication: bool,
}

/// What a DSN says: where to send and with which key.
struct Dsn {
    envelope_url: String,
    key: String,
    project_id: i64,
}

fn parse_dsn(dsn: &str) -> anyhow::Result<Dsn> {
    let rest = dsn
        .strip_prefix("http://")
        .context("the DSN must start with http:// (the load generator speaks plain HTTP)")?;
    let (key, rest) = rest.split_once('@').context("the DSN has no key@")?;
    let key = key.split(':').next().unwrap_or(key);
    let (host, project) = rest
        .rsplit_once('/')
        .context("the DSN has no /project_id")?;
    let project_id: i64 = project
        .parse()
        .context("the DSN's project id is not a number")?;
    Ok(Dsn {
        envelope_url: format!("http://{host}/api/{project_id}/envelope/"),
        key: key.to_owned(),
        project_id,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run_and_check(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("faultline-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the load, prints the report; `Ok(false)` when the verification failed.
async fn run_and_check(args: Args) -> anyhow::Result<bool> {
    if args.issues == 0 || args.concurrency == 0 || args.rate.is_some_and(|r| r <= 0.0) {
        bail!("--issues, --concurrency and --rate must be positive");
    }
    if args.symbolication {
        print!("{}", symbolication::run(args.events));
        return Ok(true);
    }
    if args.breakdown {
        let templates = build_templates(args.issues, args.compression);
        print!(
            "{}",
            breakdown::run(&templates, args.compression, args.events)
        );
        return Ok(true);
    }
    let dsn = parse_dsn(args.dsn.as_deref().unwrap_or_default())?;
    let pool = match &args.database_url {
        Some(url) => Some(
            PgPool::connect(url)
                .await
                .context("connecting to PostgreSQL")?,
        ),
        None => None,
    };
    let before = match &pool {
        Some(pool) => Some(load_check::project_counts(pool, dsn.project_id).await?),
        None => None,
    };
    let templates = build_templates(args.issues, args.compression);
    let plain_bytes_per_event =
        templates.iter().map(Template::plain_len).sum::<usize>() / templates.len();
    let plan = run::Plan {
        url: dsn.envelope_url.clone(),
        headers: request_headers(&dsn.key, args.compression)?,
        templates,
        issues: args.issues,
        events: args.events,
        concurrency: args.concurrency,
        rate: args.rate,
        timeout: Duration::from_secs(args.timeout_secs),
    };

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = args
        .server_pid
        .map(|pid| tokio::spawn(server::watch_process(pid, stopped)));
    let cpu_before = server::cpu_seconds("self").unwrap_or(0.0);
    let (mut tally, elapsed) = run::run(plan).await;
    let loadgen_cpu_seconds = server::cpu_seconds("self").unwrap_or(0.0) - cpu_before;
    let _ = stop.send(true);
    let server = match watcher {
        Some(task) => Some(task.await?),
        None => None,
    };

    let summary = report::summarise(report::RunFacts {
        tally: &mut tally,
        elapsed,
        events: args.events,
        plain_bytes_per_event,
        loadgen_cpu_seconds,
        server,
    });
    print!("{}", summary.text);
    let mut ok = true;
    if let (Some(pool), Some(before)) = (&pool, before) {
        let ids: Vec<uuid::Uuid> = tally
            .acknowledged
            .iter()
            .map(|id| run::as_uuid(*id))
            .collect();
        let verdict = verify::verify(pool, dsn.project_id, before, &ids, args.issues).await?;
        for line in &verdict.lines {
            println!("verify: {line}");
        }
        ok = verdict.ok;
    }
    let failures = tally.answers_that_lose_events();
    if failures > 0 {
        println!("FAIL {failures} answers an SDK would drop the event for (5xx, other 4xx, 429 without Retry-After, timeouts, connection errors)");
        ok = false;
    }
    if args.json {
        let mut json = summary.json;
        json["verified"] = serde_json::json!(pool.as_ref().map(|_| ok));
        println!("{json}");
    }
    Ok(ok)
}

/// A few variants per issue (different release, environment, breadcrumbs…), at most ~2,000
/// templates in all.
fn build_templates(issues: usize, encoding: Encoding) -> Vec<Template> {
    let variants = (2000 / issues).clamp(1, 4);
    (0..issues)
        .flat_map(|issue| (0..variants).map(move |variant| EventShape { issue, variant }))
        .map(|shape| Template::envelope(&event::event_json(&shape), encoding))
        .collect()
}

fn request_headers(key: &str, encoding: Encoding) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    let auth =
        format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=faultline-loadgen/0.1");
    headers.insert("x-sentry-auth", HeaderValue::from_str(&auth)?);
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-sentry-envelope"),
    );
    if let Some(name) = encoding.header() {
        headers.insert("content-encoding", HeaderValue::from_static(name));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_gives_the_envelope_url_key_and_project() {
        let dsn = parse_dsn("http://abc123@127.0.0.1:8000/7").unwrap();
        assert_eq!(dsn.envelope_url, "http://127.0.0.1:8000/api/7/envelope/");
        assert_eq!(dsn.key, "abc123");
        assert_eq!(dsn.project_id, 7);
        assert!(parse_dsn("https://abc@host/1").is_err());
    }

    #[test]
    fn events_are_realistic_in_size_and_decode_as_json() {
        let templates = build_templates(50, Encoding::Identity);
        for template in &templates {
            let len = template.plain_len();
            assert!((7_000..=11_000).contains(&len), "envelope of {len} bytes");
        }
        let json = event::event_json(&EventShape {
            issue: 3,
            variant: 1,
        });
        let event: serde_json::Value = serde_json::from_str(&json).unwrap();
        let frames = event["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .unwrap();
        assert!((15..=30).contains(&frames.len()));
        let crumbs = event["breadcrumbs"]["values"].as_array().unwrap();
        assert!((20..=50).contains(&crumbs.len()));
    }
}
