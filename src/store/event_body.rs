//! How an event's body is stored: its normalised JSON, zstd-compressed, in a `bytea` column.
//! PostgreSQL never looks inside it (what pages filter on lives in columns), and compressed
//! bodies took in four times faster than `jsonb` (docs/BENCHMARKS.md).

use std::cell::RefCell;

use serde_json::Value;

/// zstd level 1: less CPU on the ingest path than the default 3 (32 against 37 µs for a ~10 KB
/// event, `faultline-loadgen --breakdown`); PostgreSQL never decompresses it.
const BODY_COMPRESSION_LEVEL: i32 = 1;

/// The stored form of an event body: its JSON, zstd-compressed. Each thread keeps one
/// compression context (creating one per event, and zeroing its tables, cost as much as
/// compressing) and its two buffers, so no event grows a buffer from nothing; the result is
/// cut to its length, not the worst case's, while it waits for the writer.
pub fn compress(body: &Value) -> anyhow::Result<Vec<u8>> {
    thread_local! {
        static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
    }
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        let scratch = match slot.as_mut() {
            Some(scratch) => scratch,
            None => slot.insert(Scratch {
                compressor: zstd::bulk::Compressor::new(BODY_COMPRESSION_LEVEL)?,
                json: Vec::new(),
                compressed: Vec::new(),
            }),
        };
        scratch.json.clear();
        serde_json::to_writer(&mut scratch.json, body)?;
        scratch.compressed.clear();
        scratch
            .compressed
            .reserve(zstd::zstd_safe::compress_bound(scratch.json.len()));
        scratch
            .compressor
            .compress_to_buffer(&scratch.json, &mut scratch.compressed)?;
        let stored = scratch.compressed.clone();
        scratch.shrink_after_outlier();
        Ok(stored)
    })
}

/// One thread's compression state.
struct Scratch {
    compressor: zstd::bulk::Compressor<'static>,
    json: Vec<u8>,
    compressed: Vec<u8>,
}

/// Buffers larger than this are let go after use: one huge event must not keep its
/// megabytes per thread for good.
const KEPT_SCRATCH_BYTES: usize = 256 * 1024;

impl Scratch {
    fn shrink_after_outlier(&mut self) {
        for buffer in [&mut self.json, &mut self.compressed] {
            if buffer.capacity() > KEPT_SCRATCH_BYTES {
                *buffer = Vec::new();
            }
        }
    }
}

/// Reverses [`compress`]: used to show a stored event.
pub fn decompress(body: &[u8]) -> anyhow::Result<Value> {
    let json = zstd::stream::decode_all(body)?;
    Ok(serde_json::from_slice(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_round_trip_at_their_length_and_a_huge_one_is_not_kept_per_thread() {
        let huge = json!({"message": "x".repeat(KEPT_SCRATCH_BYTES * 2)});
        let small = json!({"message": "hello", "level": "error"});
        for body in [&small, &huge, &small] {
            let stored = compress(body).unwrap();
            assert_eq!(stored.len(), stored.capacity());
            assert_eq!(&decompress(&stored).unwrap(), body);
        }
        let mut scratch = Scratch {
            compressor: zstd::bulk::Compressor::new(BODY_COMPRESSION_LEVEL).unwrap(),
            json: Vec::with_capacity(KEPT_SCRATCH_BYTES + 1),
            compressed: Vec::with_capacity(1024),
        };
        scratch.shrink_after_outlier();
        assert_eq!(scratch.json.capacity(), 0);
        assert_eq!(scratch.compressed.capacity(), 1024);
    }
}
