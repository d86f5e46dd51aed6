//! The spool's record format, pure: each prepared event is one frame,
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, and the payload is
//! `[header length: u32 LE][header: JSON of every field but the body][body: the stored,
//! compressed event]`. Reading a file's frames tells a clean end, a torn tail (a crash in
//! the middle of a write) and a damaged record apart; after damage, reading finds the next
//! intact frame again by the opening every header has (see [`records`]).

use std::ops::Range;

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

/// How every payload's header JSON opens (its first field, as serde writes it): what reading
/// looks for to find the next intact frame after a damaged one.
const HEADER_OPENING: &[u8] = b"{\"project_id\":";

/// Where the header opens within a frame: after the frame's length and checksum and the
/// payload's header length.
const HEADER_OPENING_AT: usize = FRAME_HEADER + 4;

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

/// One step through a segment, from its start.
#[derive(Debug, PartialEq)]
pub enum Record<'a> {
    /// An intact frame's payload, and the frame's bytes in the segment.
    Frame(&'a [u8], Range<usize>),
    /// Bytes before the next intact frame that hold none, and why: a record whose checksum
    /// fails, or a damaged length and the frames it hid.
    Damaged(Range<usize>, &'static str),
    /// The segment's last bytes, which hold no intact frame: a write torn by a crash, zeros
    /// it left, or damage. Not counted as a record (no whole one was appended).
    TornTail(Range<usize>),
}

/// The records of a segment's bytes, in order. After a damaged record or length, reading goes
/// on at the next intact frame (found by its header's opening and checked by its checksum), so
/// damage costs only the damaged frames, never the ones after them.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let start = offset;
        let (why, claimed_end) = match read_at(bytes, start) {
            Read::End => return None,
            Read::Frame(payload, next) => {
                offset = next;
                return Some(Record::Frame(payload, start..next));
            }
            Read::Damaged(next) => ("checksum failed", Some(next)),
            Read::TornTail => ("a damaged length", None),
        };
        match next_intact_frame(bytes, start + 1) {
            Some(next) => {
                offset = next;
                Some(Record::Damaged(start..next, why))
            }
            // The last frame, whole but damaged: one record, as it was appended.
            None if claimed_end == Some(bytes.len()) => {
                offset = bytes.len();
                Some(Record::Damaged(start..offset, why))
            }
            None => {
                offset = bytes.len();
                Some(Record::TornTail(start..offset))
            }
        }
    })
}

/// Where the first intact frame at or after `from` starts.
fn next_intact_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let opening = memchr::memmem::Finder::new(HEADER_OPENING);
    let mut search_from = from + HEADER_OPENING_AT;
    while search_from < bytes.len() {
        let found = search_from + opening.find(&bytes[search_from..])?;
        let start = found - HEADER_OPENING_AT;
        if matches!(read_at(bytes, start), Read::Frame(..)) {
            return Some(start);
        }
        search_from = found + 1;
    }
    None
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
    fn every_header_opens_the_same_way_where_reading_looks_for_it() {
        let bytes = frames(&[event(1)]);
        assert!(bytes[HEADER_OPENING_AT..].starts_with(HEADER_OPENING));
    }

    fn kinds(bytes: &[u8]) -> Vec<String> {
        records(bytes)
            .map(|record| match record {
                Record::Frame(payload, range) => {
                    let event = decode(payload).expect("an intact frame decodes");
                    format!("{} {range:?}", event.hash)
                }
                Record::Damaged(range, _) => format!("damaged {range:?}"),
                Record::TornTail(range) => format!("torn {range:?}"),
            })
            .collect()
    }

    /// Three frames, and where each starts and ends.
    fn three_frames() -> (Vec<u8>, [Range<usize>; 3]) {
        let mut bytes = Vec::new();
        let mut bounds = Vec::new();
        for n in 1..=3 {
            let start = bytes.len();
            encode(&event(n), &mut bytes);
            bounds.push(start..bytes.len());
        }
        (bytes, bounds.try_into().unwrap())
    }

    #[test]
    fn after_a_damaged_length_the_frames_behind_it_are_read_again() {
        let (bytes, [first, second, third]) = three_frames();
        let intact = [
            format!("hash1 {first:?}"),
            format!("hash2 {second:?}"),
            format!("hash3 {third:?}"),
        ];
        assert_eq!(kinds(&bytes), intact);
        let lost_second = [
            intact[0].clone(),
            format!("damaged {second:?}"),
            intact[2].clone(),
        ];
        // The second frame's length claims more than the file holds, less than the frame, or
        // the second and third frames together: each time only the second is lost.
        let swallowing_third = (third.end - second.start - FRAME_HEADER) as u32;
        for length in [u32::MAX, 40, swallowing_third] {
            let mut damaged = bytes.clone();
            damaged[second.start..second.start + 4].copy_from_slice(&length.to_le_bytes());
            assert_eq!(kinds(&damaged), lost_second, "length {length}");
        }
    }

    #[test]
    fn a_damaged_last_payload_is_one_damaged_record_not_a_torn_tail() {
        let (mut bytes, [first, second, third]) = three_frames();
        bytes[third.start + FRAME_HEADER + 20] ^= 0x40;
        assert_eq!(
            kinds(&bytes),
            [
                format!("hash1 {first:?}"),
                format!("hash2 {second:?}"),
                format!("damaged {third:?}"),
            ]
        );
    }

    #[test]
    fn a_torn_tail_and_zeros_are_one_torn_tail() {
        let (bytes, [first, second, _]) = three_frames();
        let mut torn = bytes[..second.end - 7].to_vec();
        torn.extend_from_slice(&[0; 4096]);
        assert_eq!(
            kinds(&torn),
            [
                format!("hash1 {first:?}"),
                format!("torn {:?}", second.start..torn.len()),
            ]
        );
    }

    #[test]
    fn a_damaged_length_reads_as_a_torn_tail_not_a_huge_allocation() {
        let mut bytes = frames(&[event(1)]);
        bytes[3] = 0xff;
        assert_eq!(read_at(&bytes, 0), Read::TornTail);
        assert!(decode(b"\xff\xff\xff\xff{").is_none());
    }
}
