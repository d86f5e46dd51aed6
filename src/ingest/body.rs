//! Reading an ingest request body under a size limit and decompressing it under a second limit,
//! so neither a huge upload nor a gzip bomb can make the server hold more than the limits.

use std::io::Read;
use std::sync::Arc;

use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::IngestError;

/// The encodings SDKs send (PROTOCOL.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl ContentEncoding {
    /// Parses a `Content-Encoding` header value; `None` header means identity.
    pub fn parse(header: Option<&str>) -> Result<Self, IngestError> {
        let Some(value) = header else {
            return Ok(ContentEncoding::Identity);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(ContentEncoding::Identity),
            "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
            "deflate" => Ok(ContentEncoding::Deflate),
            "br" => Ok(ContentEncoding::Brotli),
            "zstd" => Ok(ContentEncoding::Zstd),
            other => Err(IngestError::UnsupportedEncoding(format!(
                "unsupported Content-Encoding {:?}: use gzip, deflate, br or zstd",
                truncate_for_message(other)
            ))),
        }
    }
}

/// The memory all ingest requests in flight may hold in their bodies at once, one permit per
/// byte. Cheap to clone.
#[derive(Clone)]
pub struct InFlightMemory {
    room: Arc<Semaphore>,
    total: usize,
}

impl InFlightMemory {
    pub fn new(bytes: usize) -> Self {
        // One request's share must fit a `u32` (the semaphore's unit of acquiring).
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        InFlightMemory {
            room: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// A request's share, empty until its body is read.
    pub fn share(&self) -> HeldMemory {
        HeldMemory {
            budget: self.clone(),
            permit: None,
        }
    }
}

/// What one request holds of the in-flight budget; given back when dropped (the request
/// answered).
pub struct HeldMemory {
    budget: InFlightMemory,
    permit: Option<OwnedSemaphorePermit>,
}

impl HeldMemory {
    /// Holds `bytes` more; a budget others have taken is a 429 (the client retries later). One
    /// request never needs more than the whole budget, so it always fits when alone.
    pub fn grow(&mut self, bytes: usize) -> Result<(), IngestError> {
        let held = self
            .permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        let more = bytes.min(self.budget.total - held) as u32;
        if more == 0 {
            return Ok(());
        }
        let permit = (self.budget.room.clone().try_acquire_many_owned(more))
            .map_err(|_| IngestError::InFlightFull)?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }
}

/// Collects the request body, refusing it with 413 as soon as it passes `limit` bytes, and with
/// 429 when the requests in flight hold too much memory already (`held` grows with each chunk).
pub async fn read_limited(
    mut payload: web::Payload,
    limit: usize,
    held: &mut HeldMemory,
) -> Result<Bytes, IngestError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| IngestError::malformed(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(IngestError::too_large(format!(
                "request body is larger than the limit of {limit} bytes"
            )));
        }
        held.grow(chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Decompresses `body`, never producing more than `limit` bytes: a larger result is a 413.
pub fn decode(body: Bytes, encoding: ContentEncoding, limit: usize) -> Result<Bytes, IngestError> {
    let name = match encoding {
        ContentEncoding::Identity => return Ok(body),
        ContentEncoding::Gzip => "gzip",
        ContentEncoding::Deflate => "deflate",
        ContentEncoding::Brotli => "br",
        ContentEncoding::Zstd => "zstd",
    };
    // The `bufread` decoders read the body in place: the `read` ones would first copy it
    // through a buffer of their own.
    let reader: Box<dyn Read + '_> = match encoding {
        ContentEncoding::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&body[..])),
        ContentEncoding::Deflate => Box::new(DeflateReader::new(&body)),
        ContentEncoding::Brotli => Box::new(brotli::Decompressor::new(&body[..], 8192)),
        ContentEncoding::Zstd => match zstd::stream::read::Decoder::with_buffer(&body[..]) {
            Ok(decoder) => Box::new(decoder),
            Err(_) => return Err(corrupt(name)),
        },
        ContentEncoding::Identity => unreachable!("handled above"),
    };
    let mut inflated = Vec::with_capacity(inflated_capacity(&body, encoding, limit));
    // Reading one byte past the limit tells "exactly at the limit" from "over it".
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| corrupt(name))?;
    if read > limit {
        return Err(IngestError::too_large(format!(
            "decompressed body is larger than the limit of {limit} bytes"
        )));
    }
    Ok(Bytes::from(inflated))
}

/// How much to allocate for a body's inflated bytes: the size the body declares (a gzip
/// member's trailer, a zstd frame's header), else four times its compressed size. Growing the
/// buffer instead copied every event once more. What a body declares is not trusted: never
/// more than [`MAX_DECLARED_RATIO`] times its compressed size, nor more than `limit`.
pub fn inflated_capacity(body: &[u8], encoding: ContentEncoding, limit: usize) -> usize {
    let declared = match encoding {
        // ISIZE: the last member's size modulo 2^32; one past it lets `read_to_end` see the end
        // without growing.
        ContentEncoding::Gzip if body.len() >= 18 => {
            let trailer: [u8; 4] = body[body.len() - 4..].try_into().unwrap_or_default();
            Some(u32::from_le_bytes(trailer) as usize + 1)
        }
        ContentEncoding::Zstd => zstd::zstd_safe::get_frame_content_size(body)
            .ok()
            .flatten()
            .map(|size| {
                usize::try_from(size)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1)
            }),
        _ => None,
    };
    let cap = body.len().saturating_mul(MAX_DECLARED_RATIO).min(limit + 1);
    declared.unwrap_or(body.len().saturating_mul(4)).min(cap)
}

/// A declared size past this ratio is not believed up front (JSON rarely compresses beyond
/// 10 to 1): a small body must not reserve megabytes by claiming them.
const MAX_DECLARED_RATIO: usize = 32;

/// The bodies old clients (raven-python, raven-node, raven-ruby, raven-go, raven-java) still
/// send to `/store/` without a `Content-Encoding`: JSON as is, the base64 text of JSON or of
/// zlib-deflated JSON, or zlib-deflated JSON as bytes. Decoded the way Relay does, and never
/// to more than `limit` bytes (a larger result is a 413).
pub fn decode_legacy_store_body(body: Bytes, limit: usize) -> Result<Bytes, IngestError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_none_or(|i| body[i] == b'{') {
        return Ok(body);
    }
    use base64::Engine;
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = match base64::engine::general_purpose::STANDARD.decode(&text) {
        Ok(decoded) => decoded,
        Err(_) if looks_like_zlib(&body) => return decode(body, ContentEncoding::Deflate, limit),
        Err(_) => {
            return Err(IngestError::malformed(
                "request body is neither JSON, base64 text nor zlib-compressed data",
            ))
        }
    };
    if decoded.first() == Some(&b'{') {
        return Ok(Bytes::from(decoded));
    }
    decode(Bytes::from(decoded), ContentEncoding::Deflate, limit).map_err(|e| match e {
        IngestError::Malformed(_) => IngestError::malformed(
            "request body is base64 text, but not of JSON or zlib-compressed JSON",
        ),
        other => other,
    })
}

fn corrupt(encoding: &str) -> IngestError {
    IngestError::malformed(format!(
        "request body is not valid {encoding} data (Content-Encoding: {encoding})"
    ))
}

fn truncate_for_message(value: &str) -> String {
    value.chars().take(40).collect()
}

/// HTTP `deflate` is meant to be zlib-wrapped (RFC 1950), but some clients send raw deflate;
/// accept both, as browsers and Relay do.
enum DeflateReader<'a> {
    Zlib(flate2::bufread::ZlibDecoder<&'a [u8]>),
    Raw(flate2::bufread::DeflateDecoder<&'a [u8]>),
}

impl<'a> DeflateReader<'a> {
    fn new(body: &'a [u8]) -> Self {
        if looks_like_zlib(body) {
            DeflateReader::Zlib(flate2::bufread::ZlibDecoder::new(body))
        } else {
            DeflateReader::Raw(flate2::bufread::DeflateDecoder::new(body))
        }
    }
}

impl Read for DeflateReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            DeflateReader::Zlib(r) => r.read(buf),
            DeflateReader::Raw(r) => r.read(buf),
        }
    }
}

fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn gzip_body_inflates_within_the_limit() {
        let body = gzip(b"hello world");
        let out = decode(body, ContentEncoding::Gzip, 100).unwrap();
        assert_eq!(&out[..], b"hello world");
    }

    #[test]
    fn the_inflated_buffer_is_sized_by_what_the_body_declares_within_bounds() {
        let json = br#"{"message":"hello"}"#.repeat(50);
        let honest = gzip(&json);
        assert_eq!(
            inflated_capacity(&honest, ContentEncoding::Gzip, 1 << 20),
            json.len() + 1
        );
        let zstd = zstd::bulk::compress(&json, 1).unwrap();
        assert_eq!(
            inflated_capacity(&zstd, ContentEncoding::Zstd, 1 << 20),
            json.len() + 1
        );
        // Never past the limit (and one byte more, to see the end).
        assert_eq!(inflated_capacity(&honest, ContentEncoding::Gzip, 100), 101);
        // A trailer claiming 4 GB reserves no more than 32 times the body.
        let mut lying = honest.to_vec();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            inflated_capacity(&lying, ContentEncoding::Gzip, 1 << 30),
            lying.len() * MAX_DECLARED_RATIO
        );
        // Nothing declared: four times the body.
        assert_eq!(
            inflated_capacity(b"abcdef", ContentEncoding::Deflate, 100),
            24
        );
    }

    #[test]
    fn gzip_bomb_is_refused_with_413_without_inflating_it_all() {
        let body = gzip(&vec![0u8; 10 * 1024 * 1024]);
        let err = decode(body, ContentEncoding::Gzip, 1024 * 1024).unwrap_err();
        assert!(matches!(err, IngestError::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn garbage_claiming_gzip_is_a_400() {
        let err = decode(Bytes::from_static(b"not gzip"), ContentEncoding::Gzip, 100).unwrap_err();
        assert!(matches!(err, IngestError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn deflate_accepts_zlib_and_raw_streams() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(b"zlib").unwrap();
        let out = decode(
            Bytes::from(zlib.finish().unwrap()),
            ContentEncoding::Deflate,
            100,
        )
        .unwrap();
        assert_eq!(&out[..], b"zlib");

        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"raw").unwrap();
        let out = decode(
            Bytes::from(raw.finish().unwrap()),
            ContentEncoding::Deflate,
            100,
        )
        .unwrap();
        assert_eq!(&out[..], b"raw");
    }

    #[test]
    fn unknown_encoding_is_refused_with_415() {
        let err = ContentEncoding::parse(Some("compress")).unwrap_err();
        assert!(matches!(err, IngestError::UnsupportedEncoding(_)));
    }

    #[test]
    fn legacy_store_bodies_decode_as_relay_does() {
        use base64::Engine;
        use std::io::Write;
        let json = br#"{"message":"hi"}"#;
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        zlib.write_all(json).unwrap();
        let zlib = zlib.finish().unwrap();
        let b64 = |d: &[u8]| Bytes::from(base64::engine::general_purpose::STANDARD.encode(d));
        let limit = 1 << 20;
        for body in [
            Bytes::from_static(json),
            b64(json),
            b64(&zlib),
            Bytes::from(zlib.clone()),
        ] {
            assert_eq!(&decode_legacy_store_body(body, limit).unwrap()[..], json);
        }
        let bomb = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&vec![b' '; 4 << 20]).unwrap();
            e.finish().unwrap()
        };
        assert!(matches!(
            decode_legacy_store_body(b64(&bomb), limit),
            Err(IngestError::TooLarge(_))
        ));
        assert!(matches!(
            decode_legacy_store_body(Bytes::from_static(b"%%%"), limit),
            Err(IngestError::Malformed(_))
        ));
    }
}
