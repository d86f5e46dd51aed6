//! Request bodies built without serialising or compressing anything per request. An envelope
//! is split into static pieces and fixed-width slots; every static piece is compressed once, on
//! its own (so it references nothing outside itself), and each request only copies those bytes
//! and stores its slot values uncompressed between them:
//!
//! - gzip: one member whose deflate stream alternates pre-compressed, full-flushed blocks with
//!   stored blocks holding the slot values; the CRC-32 is computed over the plain bytes.
//! - zstd: a concatenation of frames (pre-compressed pieces and raw-block frames for slots),
//!   which decoders read as one stream.

use std::io::Write;

use flate2::{Compress, Compression, FlushCompress};

use crate::event::Slot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Zstd => Some("zstd"),
        }
    }
}

enum Piece {
    /// The plain bytes and their encoded form.
    Static {
        plain: Vec<u8>,
        encoded: Vec<u8>,
    },
    Slot(Slot),
}

/// One envelope with slots, ready to be filled.
pub struct Template {
    pieces: Vec<Piece>,
    encoding: Encoding,
    plain_len: usize,
}

/// The values of one request's slots.
pub struct SlotValues<'a> {
    pub event_id: &'a [u8; 32],
    pub timestamp: &'a [u8; 24],
    pub number: &'a [u8; 6],
}

impl SlotValues<'_> {
    fn get(&self, slot: Slot) -> &[u8] {
        match slot {
            Slot::EventId => self.event_id,
            Slot::Timestamp => self.timestamp,
            Slot::Number => self.number,
        }
    }
}

impl Template {
    /// An envelope holding `event_json` (with its slot markers) as its one event item.
    pub fn envelope(event_json: &str, encoding: Encoding) -> Self {
        let text = format!(
            "{{\"event_id\":\"{}\",\"sent_at\":\"{}\",\"sdk\":{{\"name\":\"sentry.python\",\"version\":\"2.19.0\"}}}}\n\
             {{\"type\":\"event\",\"content_type\":\"application/json\",\"length\":{}}}\n{}\n",
            Slot::EventId.marker(),
            Slot::Timestamp.marker(),
            event_json.len(),
            event_json
        );
        Self::from_text(&text, encoding)
    }

    fn from_text(text: &str, encoding: Encoding) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some((at, slot)) = next_marker(rest) {
            pieces.push(static_piece(&rest[..at], encoding));
            pieces.push(Piece::Slot(slot));
            rest = &rest[at + slot.width()..];
        }
        pieces.push(static_piece(rest, encoding));
        Template {
            pieces,
            encoding,
            plain_len: text.len(),
        }
    }

    pub fn plain_len(&self) -> usize {
        self.plain_len
    }

    /// Writes the request body for `values` into `out` (cleared first). `plain` is scratch
    /// space for the uncompressed bytes the gzip checksum needs.
    pub fn render(&self, values: &SlotValues, out: &mut Vec<u8>, plain: &mut Vec<u8>) {
        out.clear();
        match self.encoding {
            Encoding::Identity => self.render_plain(values, out),
            Encoding::Gzip => self.render_gzip(values, out, plain),
            Encoding::Zstd => self.render_zstd(values, out),
        }
    }

    fn render_plain(&self, values: &SlotValues, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Static { plain, .. } => out.extend_from_slice(plain),
                Piece::Slot(slot) => out.extend_from_slice(values.get(*slot)),
            }
        }
    }

    fn render_gzip(&self, values: &SlotValues, out: &mut Vec<u8>, plain: &mut Vec<u8>) {
        // Header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        for piece in &self.pieces {
            match piece {
                Piece::Static { encoded, .. } => out.extend_from_slice(encoded),
                Piece::Slot(slot) => push_stored_block(out, values.get(*slot), false),
            }
        }
        push_stored_block(out, &[], true);
        plain.clear();
        self.render_plain(values, plain);
        let mut crc = flate2::Crc::new();
        crc.update(plain);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    }

    fn render_zstd(&self, values: &SlotValues, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Static { encoded, .. } => out.extend_from_slice(encoded),
                Piece::Slot(slot) => push_raw_zstd_frame(out, values.get(*slot)),
            }
        }
    }
}

/// The first slot marker in `text`: its offset and kind.
fn next_marker(text: &str) -> Option<(usize, Slot)> {
    Slot::ALL
        .iter()
        .filter_map(|slot| text.find(&slot.marker()).map(|at| (at, *slot)))
        .min_by_key(|(at, _)| *at)
}

fn static_piece(text: &str, encoding: Encoding) -> Piece {
    let plain = text.as_bytes().to_vec();
    let encoded = match encoding {
        Encoding::Identity => Vec::new(),
        Encoding::Gzip => deflate_full_flushed(&plain),
        Encoding::Zstd => zstd::bulk::compress(&plain, 3).expect("zstd compresses"),
    };
    Piece::Static { plain, encoded }
}

/// Raw deflate blocks for `data`, compressed with a fresh dictionary and ended by a full flush:
/// byte-aligned, not final, and independent of whatever precedes them in the stream.
fn deflate_full_flushed(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut input = data;
    loop {
        out.reserve(4096);
        let before = compress.total_in();
        compress
            .compress_vec(input, &mut out, FlushCompress::Full)
            .expect("deflate compresses");
        input = &input[(compress.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// A stored (uncompressed) deflate block; the stream is byte-aligned before it.
fn push_stored_block(out: &mut Vec<u8>, data: &[u8], last: bool) {
    let len = data.len() as u16;
    out.push(u8::from(last));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
}

/// A zstd frame of one raw block: magic, single-segment header with a one-byte content size,
/// then the block header (last block, raw, size) and the bytes themselves.
fn push_raw_zstd_frame(out: &mut Vec<u8>, data: &[u8]) {
    assert!(data.len() < 256, "slot values are short");
    out.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, data.len() as u8]);
    let block_header = 1u32 | ((data.len() as u32) << 3);
    out.write_all(&block_header.to_le_bytes()[..3])
        .expect("writing to a Vec");
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn values() -> ([u8; 32], [u8; 24], [u8; 6]) {
        (
            *b"0123456789abcdef0123456789abcdef",
            *b"2026-01-01T00:00:00.000Z",
            *b"004217",
        )
    }

    fn rendered(encoding: Encoding) -> (Vec<u8>, Vec<u8>) {
        let (id, time, n) = values();
        let values = SlotValues {
            event_id: &id,
            timestamp: &time,
            number: &n,
        };
        let json = format!(
            "{{\"event_id\":\"{}\",\"n\":\"{}\",\"t\":\"{}\"}}",
            Slot::EventId.marker(),
            Slot::Number.marker(),
            Slot::Timestamp.marker()
        );
        let template = Template::envelope(&json, encoding);
        let (mut out, mut plain) = (Vec::new(), Vec::new());
        template.render(&values, &mut out, &mut plain);
        let mut identity = Vec::new();
        Template::envelope(&json, Encoding::Identity).render(&values, &mut identity, &mut plain);
        (out, identity)
    }

    #[test]
    fn gzip_bodies_decode_to_the_plain_envelope() {
        let (gzip, plain) = rendered(Encoding::Gzip);
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, plain);
        assert!(String::from_utf8(plain)
            .unwrap()
            .contains("\"n\":\"004217\""));
    }

    #[test]
    fn zstd_bodies_decode_to_the_plain_envelope() {
        let (zstd, plain) = rendered(Encoding::Zstd);
        assert_eq!(zstd::stream::decode_all(&zstd[..]).unwrap(), plain);
    }
}
