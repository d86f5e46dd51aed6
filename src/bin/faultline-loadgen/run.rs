//! The load itself: `concurrency` tasks, each with its own keep-alive connection, take the next
//! event number, wait for its slot when a target rate is set, render its body from a template
//! and send it. Each task keeps its own tallies; they are merged once at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderMap;

use crate::template::{SlotValues, Template};

/// How long an unused connection stays in the pool.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// What to send and how fast.
pub struct Plan {
    pub url: String,
    pub headers: HeaderMap,
    pub templates: Vec<Template>,
    pub issues: usize,
    pub events: u64,
    pub concurrency: usize,
    /// Events per second; `None` sends as fast as the answers come back.
    pub rate: Option<f64>,
    pub timeout: Duration,
}

/// Everything observed during a run.
#[derive(Default)]
pub struct Tally {
    /// Response time of every answered request, in microseconds.
    pub latencies_us: Vec<u32>,
    pub statuses: BTreeMap<u16, u64>,
    pub too_many_without_retry_after: u64,
    pub timeouts: u64,
    pub connection_errors: u64,
    /// What the first connection error was (with its causes), so a run that has some says why.
    pub first_connection_error: Option<String>,
    /// Event ids the server acknowledged with 200.
    pub acknowledged: Vec<u128>,
    /// How far the slowest request started behind its schedule (rate mode).
    pub max_lag: Duration,
    pub bytes_sent: u64,
}

impl Tally {
    /// Answers after which an SDK gives the event up: anything but 200 and a 429 that says
    /// when to come back.
    pub fn answers_that_lose_events(&self) -> u64 {
        let refused: u64 = self
            .statuses
            .iter()
            .filter(|(status, _)| !matches!(status, 200 | 429))
            .map(|(_, count)| count)
            .sum();
        refused + self.too_many_without_retry_after + self.timeouts + self.connection_errors
    }

    fn connection_error(&mut self, error: &reqwest::Error) {
        self.connection_errors += 1;
        if self.first_connection_error.is_none() {
            self.first_connection_error = Some(error_chain(error));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.too_many_without_retry_after += other.too_many_without_retry_after;
        self.timeouts += other.timeouts;
        self.connection_errors += other.connection_errors;
        if self.first_connection_error.is_none() {
            self.first_connection_error = other.first_connection_error;
        }
        self.acknowledged.extend(other.acknowledged);
        self.max_lag = self.max_lag.max(other.max_lag);
        self.bytes_sent += other.bytes_sent;
    }
}

/// Runs the plan to the end and returns the merged tallies and the wall-clock time.
pub async fn run(plan: Plan) -> (Tally, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        // Below the server's keep-alive (actix's 5 s): a connection the server closes as it
        // is reused fails its request ("connection closed before message completed"). At
        // --rate, most pooled connections sit idle that long, and 1-7 events a run were lost
        // to the race, not to the server.
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .timeout(plan.timeout)
        .build()
        .expect("HTTP client");
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|worker| {
            let sender = Sender {
                plan: plan.clone(),
                client: client.clone(),
                next: next.clone(),
                rng: StdRng::from_entropy(),
                started,
            };
            tokio::spawn(sender.run(worker))
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        total.merge(worker.await.expect("a sender task panicked"));
    }
    (total, started.elapsed())
}

struct Sender {
    plan: Arc<Plan>,
    client: reqwest::Client,
    next: Arc<AtomicU64>,
    rng: StdRng,
    started: Instant,
}

impl Sender {
    async fn run(mut self, _worker: usize) -> Tally {
        let mut tally = Tally::default();
        let (mut body, mut scratch) = (Vec::new(), Vec::new());
        loop {
            let seq = self.next.fetch_add(1, Ordering::Relaxed);
            if seq >= self.plan.events {
                return tally;
            }
            self.wait_for_turn(seq, &mut tally).await;
            let event_id: u128 = self.rng.gen();
            self.render(seq, event_id, &mut body, &mut scratch);
            tally.bytes_sent += body.len() as u64;
            self.send(body.clone(), event_id, &mut tally).await;
        }
    }

    async fn wait_for_turn(&self, seq: u64, tally: &mut Tally) {
        let Some(rate) = self.plan.rate else { return };
        let due = self.started + Duration::from_secs_f64(seq as f64 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due.into()).await;
        } else {
            tally.max_lag = tally.max_lag.max(now - due);
        }
    }

    /// Event `seq` belongs to issue `seq % issues`, in one of that issue's variants.
    fn render(&mut self, seq: u64, event_id: u128, body: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        let issues = self.plan.issues as u64;
        let variants = self.plan.templates.len() as u64 / issues;
        let issue = seq % issues;
        let variant = (seq / issues) % variants;
        let template = &self.plan.templates[(issue * variants + variant) as usize];
        let id = hex32(event_id);
        let time = timestamp_now();
        let number = six_digits(self.rng.gen_range(0..10_000));
        let values = SlotValues {
            event_id: &id,
            timestamp: &time,
            number: &number,
        };
        template.render(&values, body, scratch);
    }

    async fn send(&self, body: Vec<u8>, event_id: u128, tally: &mut Tally) {
        let sent = Instant::now();
        let result = self
            .client
            .post(&self.plan.url)
            .headers(self.plan.headers.clone())
            .body(body)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return tally.timeouts += 1,
            Err(e) => return tally.connection_error(&e),
        };
        let status = response.status().as_u16();
        let has_retry_after = response.headers().contains_key("retry-after");
        // Read the answer to the end so the connection can be reused.
        if let Err(e) = response.bytes().await {
            return if e.is_timeout() {
                tally.timeouts += 1
            } else {
                tally.connection_error(&e)
            };
        }
        tally.latencies_us.push(sent.elapsed().as_micros() as u32);
        *tally.statuses.entry(status).or_default() += 1;
        match status {
            200 => tally.acknowledged.push(event_id),
            429 if !has_retry_after => tally.too_many_without_retry_after += 1,
            _ => {}
        }
    }
}

/// The error and each of its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn hex32(value: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (124 - 4 * i)) & 0xf) as usize];
    }
    out
}

fn six_digits(value: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut rest = value;
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out
}

fn timestamp_now() -> [u8; 24] {
    let text = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    text.as_bytes().try_into().expect("24-byte timestamp")
}

/// Only for the acknowledged ids' verification.
pub fn as_uuid(id: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_numbers_have_their_fixed_width() {
        assert_eq!(&hex32(0xab), b"000000000000000000000000000000ab");
        assert_eq!(
            uuid::Uuid::parse_str(std::str::from_utf8(&hex32(u128::MAX - 1)).unwrap())
                .unwrap()
                .as_u128(),
            u128::MAX - 1
        );
        assert_eq!(&six_digits(4217), b"004217");
        assert_eq!(timestamp_now().len(), 24);
    }
}
