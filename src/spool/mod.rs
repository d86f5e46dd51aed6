//! The local spool: where acknowledged events wait, fsync'd, while PostgreSQL cannot take
//! them. Writers append a whole batch as frames to the current segment file and fsync once
//! (group commit) before answering 200; the replayer (`replay.rs`) seals the current segment,
//! writes sealed ones to PostgreSQL oldest first, and deletes each only once its events are
//! committed. One process per directory, held by a lock on its `LOCK` file.

pub mod frame;
pub mod replay;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;

use crate::config::SpoolSettings;
use crate::store::events::NewEvent;

/// A segment grows to about this size before a new one starts; the replayer reads one at a
/// time into memory.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const SEGMENT_SUFFIX: &str = ".spool";

/// Why a batch could not be spooled: the client is told to retry (503).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full ({0} bytes)")]
    Full(u64),
    #[error("could not write to the spool: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Held for the life of the process: a second one on this directory is refused.
    _lock: File,
    current: Mutex<Current>,
    bytes: AtomicU64,
    events: AtomicU64,
    /// Set when a write to PostgreSQL failed for want of the database: writers then spool
    /// straight away, until the replayer finds it back and the spool empty.
    database_down: AtomicBool,
    /// The last batch did not fit; cleared once one fits or a segment is replayed.
    refused_for_size: AtomicBool,
    pub(crate) wake_replayer: tokio::sync::Notify,
    /// Held by a replay: the replayer task's and a stopping server's never run at once.
    pub(crate) replaying: tokio::sync::Mutex<()>,
}

/// The segment being appended to.
struct Current {
    next_sequence: u64,
    file: Option<(PathBuf, File, u64)>,
}

impl Spool {
    /// Opens (creating) the directory and locks it; counts what an earlier process left.
    pub fn open(settings: &SpoolSettings) -> anyhow::Result<Spool> {
        let dir = settings.spool_dir.clone();
        fs::create_dir_all(&dir)
            .with_context(|| format!("could not create the spool directory {}", dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .with_context(|| format!("could not open {}", dir.join("LOCK").display()))?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "another Faultline process is using the spool directory {} \
                 (FAULTLINE_SPOOL_DIR); give each process its own",
                dir.display()
            );
        }
        let segments = segments_in(&dir)?;
        let (mut bytes, mut events) = (0, 0);
        for (_, path) in &segments {
            let contents = fs::read(path)?;
            bytes += contents.len() as u64;
            events += count_frames(&contents);
        }
        let next_sequence = segments.last().map_or(1, |(n, _)| n + 1);
        if events > 0 {
            tracing::warn!(
                spool.events = events,
                spool.bytes = bytes,
                "the spool holds events from an earlier run; they are replayed into PostgreSQL"
            );
        }
        Ok(Spool {
            dir,
            max_bytes: settings.spool_max_bytes,
            _lock: lock,
            current: Mutex::new(Current {
                next_sequence,
                file: None,
            }),
            bytes: AtomicU64::new(bytes),
            events: AtomicU64::new(events),
            database_down: AtomicBool::new(false),
            refused_for_size: AtomicBool::new(false),
            wake_replayer: tokio::sync::Notify::new(),
            replaying: tokio::sync::Mutex::new(()),
        })
    }

    /// Appends the events and fsyncs them: once this returns `Ok`, they survive a crash.
    /// Blocking file I/O: call it from a blocking thread.
    pub fn append(&self, events: &[&NewEvent]) -> Result<(), SpoolError> {
        self.append_frames(&encode_all(events), events.len() as u64)
    }

    /// Appends `count` events already encoded (`encode_all`) and fsyncs them, once for all.
    pub fn append_frames(&self, frames: &[u8], count: u64) -> Result<(), SpoolError> {
        let size = frames.len() as u64;
        let mut current = self.current.lock().expect("spool lock");
        if self.bytes.load(Ordering::SeqCst) + size > self.max_bytes {
            self.refused_for_size.store(true, Ordering::SeqCst);
            return Err(SpoolError::Full(self.max_bytes));
        }
        self.refused_for_size.store(false, Ordering::SeqCst);
        let (_, file, written) = self.current_file(&mut current)?;
        if let Err(e) = file.write_all(frames).and_then(|()| file.sync_data()) {
            // What was written is unknown: this segment ends here (its tail, if torn, is
            // cut off when it is replayed) and the next batch starts a new one.
            current.file = None;
            return Err(e.into());
        }
        *written += size;
        self.bytes.fetch_add(size, Ordering::SeqCst);
        self.events.fetch_add(count, Ordering::SeqCst);
        self.wake_replayer.notify_one();
        Ok(())
    }

    fn current_file<'a>(
        &self,
        current: &'a mut Current,
    ) -> std::io::Result<&'a mut (PathBuf, File, u64)> {
        if matches!(&current.file, Some((_, _, written)) if *written >= SEGMENT_BYTES) {
            current.file = None;
        }
        if current.file.is_none() {
            let path = self.segment_path(current.next_sequence);
            current.next_sequence += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            // The new file's directory entry must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            current.file = Some((path, file, 0));
        }
        Ok(current.file.as_mut().expect("just opened"))
    }

    fn segment_path(&self, sequence: u64) -> PathBuf {
        self.dir
            .join(format!("segment-{sequence:020}{SEGMENT_SUFFIX}"))
    }

    /// Closes the current segment, so everything spooled so far is in sealed segments,
    /// returned oldest first.
    pub fn seal(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut current = self.current.lock().expect("spool lock");
        current.file = None;
        Ok(segments_in(&self.dir)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Whether no segment file is left: the counts can be off after damage or a failed write;
    /// the directory cannot.
    pub fn holds_no_segment(&self) -> bool {
        segments_in(&self.dir).is_ok_and(|left| left.is_empty())
    }

    /// Sets the counts of waiting events and bytes to zero when no segment is left: what was
    /// counted at append and what a replay subtracts can differ after damage or a failed
    /// write, and a count stuck above zero kept the replayer checking the database every
    /// second for good. Under the segment lock, so no append runs meanwhile.
    pub fn settle_counts_if_empty(&self) {
        let current = self.current.lock().expect("spool lock");
        if current.file.is_none() && self.holds_no_segment() {
            self.events.store(0, Ordering::SeqCst);
            self.bytes.store(0, Ordering::SeqCst);
        }
    }

    /// A replayed segment: its events are committed, so it goes.
    pub fn remove_segment(&self, path: &Path, bytes: u64, events: u64) -> std::io::Result<()> {
        fs::remove_file(path)?;
        self.refused_for_size.store(false, Ordering::SeqCst);
        self.bytes.fetch_sub(
            bytes.min(self.bytes.load(Ordering::SeqCst)),
            Ordering::SeqCst,
        );
        self.events.fetch_sub(
            events.min(self.events.load(Ordering::SeqCst)),
            Ordering::SeqCst,
        );
        Ok(())
    }

    /// Keeps bytes that cannot be replayed (a damaged record, an event PostgreSQL refuses)
    /// in `quarantine`, for an operator to look at.
    pub fn quarantine(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("quarantine"))?;
        file.write_all(bytes)?;
        file.sync_data()
    }

    pub fn events(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub fn is_database_down(&self) -> bool {
        self.database_down.load(Ordering::SeqCst)
    }

    pub fn mark_database_down(&self) {
        if !self.database_down.swap(true, Ordering::SeqCst) {
            tracing::error!("PostgreSQL is unavailable: events are spooled until it is back");
        }
        self.wake_replayer.notify_one();
    }

    fn mark_database_up(&self) {
        if self.database_down.swap(false, Ordering::SeqCst) {
            tracing::warn!("PostgreSQL is back and the spool is replayed");
        }
    }

    /// Whether the spool can take more events: not full, and the last batch fitted.
    pub fn has_room(&self) -> bool {
        self.bytes() < self.max_bytes && !self.refused_for_size.load(Ordering::SeqCst)
    }
}

/// The events as spool frames, one after another.
pub fn encode_all(events: &[&NewEvent]) -> Vec<u8> {
    let mut frames = Vec::new();
    for event in events {
        frame::encode(event, &mut frames);
    }
    frames
}

/// The directory's segments, `(sequence, path)`, oldest first.
fn segments_in(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let sequence = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("segment-"))
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(sequence) = sequence {
            segments.push((sequence, path));
        }
    }
    segments.sort();
    Ok(segments)
}

fn count_frames(bytes: &[u8]) -> u64 {
    frame::records(bytes)
        .filter(|record| !matches!(record, frame::Record::TornTail(_)))
        .count() as u64
}
