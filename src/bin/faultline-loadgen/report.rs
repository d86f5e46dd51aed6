//! The run's figures: rate, latency percentiles, status counts, sizes and CPU, as text for
//! people and as one JSON object for scripts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::run::Tally;
use crate::server::ServerUsage;

pub struct Summary {
    pub json: Value,
    pub text: String,
}

pub struct RunFacts<'a> {
    pub tally: &'a mut Tally,
    pub elapsed: Duration,
    pub events: u64,
    pub plain_bytes_per_event: usize,
    pub loadgen_cpu_seconds: f64,
    pub server: Option<ServerUsage>,
}

pub fn summarise(facts: RunFacts) -> Summary {
    let tally = facts.tally;
    tally.latencies_us.sort_unstable();
    let secs = facts.elapsed.as_secs_f64();
    let acked = tally.acknowledged.len() as u64;
    let ms = |q: f64| percentile_ms(&tally.latencies_us, q);
    let statuses: serde_json::Map<String, Value> = tally
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), json!(count)))
        .collect();
    let json = json!({
        "events": facts.events,
        "seconds": round(secs, 3),
        "acknowledged": acked,
        "accepted_per_second": round(acked as f64 / secs, 1),
        "latency_ms": {"p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99), "max": ms(1.0)},
        "statuses": statuses,
        "timeouts": tally.timeouts,
        "connection_errors": tally.connection_errors,
        "first_connection_error": tally.first_connection_error,
        "too_many_without_retry_after": tally.too_many_without_retry_after,
        "max_schedule_lag_ms": round(tally.max_lag.as_secs_f64() * 1000.0, 1),
        "plain_bytes_per_event": facts.plain_bytes_per_event,
        "sent_bytes_per_event": tally.bytes_sent / facts.events.max(1),
        "loadgen_cpu_seconds": round(facts.loadgen_cpu_seconds, 2),
        "server": facts.server.map(server_json),
    });
    let text = text(&json);
    Summary { json, text }
}

fn server_json(usage: ServerUsage) -> Value {
    json!({
        "rss_start_mb": round(usage.rss_start_kb as f64 / 1024.0, 1),
        "rss_max_mb": round(usage.rss_max_kb as f64 / 1024.0, 1),
        "rss_end_mb": round(usage.rss_end_kb as f64 / 1024.0, 1),
        "cpu_seconds": round(usage.cpu_seconds, 2),
    })
}

fn text(j: &Value) -> String {
    let mut out = format!(
        "sent {} events in {} s: {} acknowledged, {} events/s accepted\n\
         latency ms: p50 {} p95 {} p99 {} max {}\n\
         statuses: {}; timeouts {}; connection errors {}; 429 without Retry-After {}\n\
         body: {} bytes of JSON, {} bytes sent; loadgen CPU {} s; max schedule lag {} ms\n",
        j["events"],
        j["seconds"],
        j["acknowledged"],
        j["accepted_per_second"],
        j["latency_ms"]["p50"],
        j["latency_ms"]["p95"],
        j["latency_ms"]["p99"],
        j["latency_ms"]["max"],
        j["statuses"],
        j["timeouts"],
        j["connection_errors"],
        j["too_many_without_retry_after"],
        j["plain_bytes_per_event"],
        j["sent_bytes_per_event"],
        j["loadgen_cpu_seconds"],
        j["max_schedule_lag_ms"],
    );
    if let Some(error) = j["first_connection_error"].as_str() {
        out.push_str(&format!("first connection error: {error}\n"));
    }
    if let Some(server) = j["server"].as_object() {
        out.push_str(&format!(
            "server: RSS {} MB at start, {} MB max, {} MB at end; CPU {} s\n",
            server["rss_start_mb"],
            server["rss_max_mb"],
            server["rss_end_mb"],
            server["cpu_seconds"]
        ));
    }
    out
}

/// The `q` quantile of sorted microsecond samples, in milliseconds (nearest rank).
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    round(sorted_us[rank - 1] as f64 / 1000.0, 2)
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&samples, 0.50), 50.0);
        assert_eq!(percentile_ms(&samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&samples, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
