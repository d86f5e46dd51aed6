//! How an event's body is stored: its normalised JSON, zstd-compressed, in a `bytea` column.
//! PostgreSQL never looks inside it (what pages filter on lives in columns), and compressed
//! bodies took in four times faster than `jsonb` (docs/BENCHMARKS.md).

use std::cell::RefCell;

use serde_json::Value;

/// zstd level 1: less CPU on the ingest path than the default 3 (32 against 37 µs for a ~10 KB
/// event, `faultline-loadgen --breakdown`); PostgreSQL never decompresses it.
const BODY_COMPRESSION_LEVEL: i32 = 1;

/// The stored form of an event body: its JSON, zstd-compressed. Each thread keeps one
/// compression context: creating one per event (and zeroing its tables) cost as much as
/// compressing.
pub fn compress(body: &Value) -> anyhow::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
    }
    let json = serde_json::to_vec(body)?;
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(compressor) => compressor,
            None => slot.insert(zstd::bulk::Compressor::new(BODY_COMPRESSION_LEVEL)?),
        };
        Ok(compressor.compress(&json)?)
    })
}

/// Reverses [`compress`]: used to show a stored event.
pub fn decompress(body: &[u8]) -> anyhow::Result<Value> {
    let json = zstd::stream::decode_all(body)?;
    Ok(serde_json::from_slice(&json)?)
}
