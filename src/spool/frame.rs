//! The spool's record format, pure: each prepared event is one frame,
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, and the payload is
//! `[header length: u32 LE][header: JSON of every field but the body][body: the stored,
//! compressed event]`. Reading a file's frames tells a clean end, a torn tail (a crash in
//! the middle of a write) and a damaged record apart.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::level::Level;
use crate::store::events::NewEvent;

/// Length and checksum.
pub const FRAME_HEADER: usize = 8;
/// No prepared event comes near this; a larger length can only be damage.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Header {
    project_id: i64,
    event_id: Uuid,
    hash: String,
    grouping: Value,
    title: String,
    culprit: String,
    metadata: Value,
    level: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    environment: Option<String>,
    release: Option<String>,
    user_key: Option<String>,
    tags: Vec<(String, String)>,
    /// Absent from records spooled before stack-trace search existed.
    #[serde(default)]
    search_terms: Vec<String>,
}

/// Appends `event` to `out` as one frame.
pub fn encode(event: &NewEvent, out: &mut Vec<u8>) {
    let header = Header {
        project_id: event.project_id,
        event_id: event.event_id,
        hash: event.hash.clone(),
        grouping: event.grouping.clone(),
        title: event.title.clone(),
        culprit: event.culprit.clone(),
        metadata: event.metadata.clone(),
        level: event.level.as_str().to_owned(),
        occurred_at: event.occurred_at,
        received_at: event.received_at,
        environment: event.environment.clone(),
        release: event.release.clone(),
        user_key: event.user_key.clone(),
        tags: event.tags.clone(),
        search_terms: event.search_terms.clone(),
    };
    let header = serde_json::to_vec(&header).expect("a header serialises");
    let mut payload = Vec::with_capacity(4 + header.len() + event.body.len());
    payload.extend_from_slice(&(header.len() as u32).to_le_bytes());
    payload.extend_from_slice(&header);
    payload.extend_from_slice(&event.body);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// What one step through a file's bytes found at `offset`.
#[derive(Debug, PartialEq)]
pub enum Read<'a> {
    /// A whole, intact frame's payload, and where the next frame starts.
    Frame(&'a [u8], usize),
    /// The file ends cleanly here.
    End,
    /// The file ends inside a frame (a write the process did not finish), or what follows is
    /// no frame at all (zeros, or a damaged length): nothing further can be read.
    TornTail,
    /// A whole frame whose checksum fails, and where the next one starts.
    Damaged(usize),
}

/// The frame at `offset` of `bytes`.
pub fn read_at(bytes: &[u8], offset: usize) -> Read<'_> {
    let rest = &bytes[offset.min(bytes.len())..];
    if rest.is_empty() {
        return Read::End;
    }
    if rest.len() < FRAME_HEADER {
        return Read::TornTail;
    }
    let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let checksum = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    // No frame is empty (its payload starts with the header's length), so a zero length is
    // a zero-filled tail a crash left, not an endless run of empty records.
    if length == 0 || length > MAX_PAYLOAD || rest.len() < FRAME_HEADER + length {
        return Read::TornTail;
    }
    let payload = &rest[FRAME_HEADER..FRAME_HEADER + length];
    let next = offset + FRAME_HEADER + length;
    if crc32fast::hash(payload) == checksum {
        Read::Frame(payload, next)
    } else {
        Read::Damaged(next)
    }
}

/// The event a frame's payload holds; `None` if it does not parse (damage the checksum missed,
/// or a record from a future version).
pub fn decode(payload: &[u8]) -> Option<NewEvent> {
    let header_length = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let header: Header = serde_json::from_slice(payload.get(4..4 + header_length)?).ok()?;
    let body = payload.get(4 + header_length..)?.to_vec();
    Some(NewEvent {
        project_id: header.project_id,
        event_id: header.event_id,
        hash: header.hash,
        grouping: header.grouping,
        title: header.title,
        culprit: header.culprit,
        metadata: header.metadata,
        level: Level::parse(&header.level)?,
        occurred_at: header.occurred_at,
        received_at: header.received_at,
        environment: header.environment,
        release: header.release,
        user_key: header.user_key,
        tags: header.tags,
        search_terms: header.search_terms,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: u8) -> NewEvent {
        NewEvent {
            project_id: 7,
            event_id: Uuid::new_v4(),
            hash: format!("hash{n}"),
            grouping: json!({"kind": "exception"}),
            title: "KeyError: 'sku' — ünïcode".into(),
            culprit: "app.orders in lookup".into(),
            metadata: json!({"type": "KeyError"}),
            level: Level::Warning,
            occurred_at: Utc::now(),
            received_at: Utc::now(),
            environment: Some("production".into()),
            release: None,
            user_key: Some("id:42".into()),
            tags: vec![("handled".into(), "no".into())],
            search_terms: vec!["KeyError".into(), "lookup".into()],
            body: vec![n; 300],
        }
    }

    fn frames(events: &[NewEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            encode(e, &mut out);
        }
        out
    }

    fn same(a: &NewEvent, b: &NewEvent) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn events_come_back_as_they_went_in() {
        let events = [event(1), event(2)];
        let bytes = frames(&events);
        let Read::Frame(first, next) = read_at(&bytes, 0) else {
            panic!("a frame")
        };
        assert!(same(&decode(first).unwrap(), &events[0]));
        let Read::Frame(second, end) = read_at(&bytes, next) else {
            panic!("a frame")
        };
        assert!(same(&decode(second).unwrap(), &events[1]));
        assert_eq!(read_at(&bytes, end), Read::End);
    }

    #[test]
    fn a_write_cut_short_is_a_torn_tail_at_every_length() {
        let bytes = frames(&[event(1), event(2)]);
        let Read::Frame(_, second) = read_at(&bytes, 0) else {
            panic!("a frame")
        };
        for cut in second + 1..bytes.len() {
            assert_eq!(
                read_at(&bytes[..cut], second),
                Read::TornTail,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_is_damage_and_the_next_frame_still_reads() {
        let events = [event(1), event(2)];
        let mut bytes = frames(&events);
        bytes[FRAME_HEADER + 20] ^= 0x40;
        let Read::Damaged(next) = read_at(&bytes, 0) else {
            panic!("damage found")
        };
        let Read::Frame(second, _) = read_at(&bytes, next) else {
            panic!("the next frame")
        };
        assert!(same(&decode(second).unwrap(), &events[1]));
    }

    #[test]
    fn a_record_spooled_before_search_terms_existed_still_reads() {
        let mut old = event(1);
        let bytes = frames(std::slice::from_ref(&old));
        let Read::Frame(payload, _) = read_at(&bytes, 0) else {
            panic!("a frame")
        };
        let header_length = u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize;
        let mut header: Value = serde_json::from_slice(&payload[4..4 + header_length]).unwrap();
        header.as_object_mut().unwrap().remove("search_terms");
        let header = serde_json::to_vec(&header).unwrap();
        let mut older = (header.len() as u32).to_le_bytes().to_vec();
        older.extend_from_slice(&header);
        older.extend_from_slice(&payload[4 + header_length..]);
        old.search_terms.clear();
        assert!(same(&decode(&older).unwrap(), &old));
    }

    #[test]
    fn a_damaged_length_reads_as_a_torn_tail_not_a_huge_allocation() {
        let mut bytes = frames(&[event(1)]);
        bytes[3] = 0xff;
        assert_eq!(read_at(&bytes, 0), Read::TornTail);
        assert!(decode(b"\xff\xff\xff\xff{").is_none());
    }
}
