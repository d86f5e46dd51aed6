//! Watching the server process while the load runs (Linux `/proc`): resident memory and CPU.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Debug, Default, Clone, Copy)]
pub struct ServerUsage {
    pub rss_start_kb: u64,
    pub rss_max_kb: u64,
    pub rss_end_kb: u64,
    /// User + system CPU the server used during the run, in seconds.
    pub cpu_seconds: f64,
}

/// Samples `pid` every 50 ms until `stop` changes; returns what it saw.
pub async fn watch_process(pid: u32, mut stop: watch::Receiver<bool>) -> ServerUsage {
    let cpu_start = cpu_seconds(pid).unwrap_or(0.0);
    let rss_start_kb = rss_kb(pid).unwrap_or(0);
    let mut usage = ServerUsage {
        rss_start_kb,
        rss_max_kb: rss_start_kb,
        ..Default::default()
    };
    loop {
        let rss = rss_kb(pid).unwrap_or(0);
        usage.rss_max_kb = usage.rss_max_kb.max(rss);
        usage.rss_end_kb = rss;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => break,
        }
    }
    usage.cpu_seconds = cpu_seconds(pid).unwrap_or(0.0) - cpu_start;
    usage
}

/// `VmRSS` of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of a process so far, in seconds (`"self"` for this one).
pub fn cpu_seconds(pid: impl std::fmt::Display) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
