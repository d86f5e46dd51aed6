//! The artifact bundle sentry-cli uploads (PROTOCOL.md §14.7): an 8-byte header (`SYSB` and
//! a version), then a ZIP holding `manifest.json` and the files. Reading one is pure; every
//! size is bounded, and a bad archive is a clear error, never a panic.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use serde::Deserialize;
use uuid::Uuid;

/// Most files one bundle may hold.
pub const MAX_FILES: usize = 20_000;
/// Largest file inside a bundle, uncompressed.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Most bytes all of a bundle's files may take, uncompressed.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

const MAGIC: &[u8; 4] = b"SYSB";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the bundle does not start with the SYSB header")]
    NotABundle,
    #[error("the bundle is not a readable ZIP archive: {0}")]
    BadArchive(String),
    #[error("the bundle has no readable manifest.json: {0}")]
    BadManifest(String),
    #[error("the bundle holds more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("{0} is larger than {MAX_FILE_BYTES} bytes")]
    FileTooLarge(String),
    #[error("the bundle's files take more than {MAX_TOTAL_BYTES} bytes")]
    TooLarge,
}

/// What a bundle holds, as Faultline indexes it.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle's own id (sentry-cli derives it from its files).
    pub bundle_id: Option<Uuid>,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub files: Vec<BundleFile>,
}

#[derive(Debug)]
pub struct BundleFile {
    /// Where it is in the archive (`files/_/_/app.min.js`).
    pub path: String,
    /// `minified_source`, `source_map`, `source` or `indexed_ram_bundle`.
    pub file_type: String,
    /// The URL it is served at (`~/app.min.js`).
    pub url: String,
    pub debug_id: Option<Uuid>,
    /// The `sourcemap` header: the map a minified file points to.
    pub sourcemap: Option<String>,
    pub content: Vec<u8>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    files: BTreeMap<String, FileInfo>,
    #[serde(default)]
    debug_id: Option<String>,
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

#[derive(Deserialize)]
struct FileInfo {
    #[serde(rename = "type", default)]
    file_type: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Reads a whole bundle.
pub fn read(bytes: &[u8]) -> Result<Bundle, BundleError> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    // sentry-cli's ZIP offsets count from the file's start, header included; a ZIP written
    // on its own after the header counts from its own start. Either is read.
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .or_else(|_| zip::ZipArchive::new(Cursor::new(&bytes[8..])))
        .map_err(|e| BundleError::BadArchive(e.to_string()))?;
    let manifest: Manifest = {
        let mut entry = archive
            .by_name("manifest.json")
            .map_err(|e| BundleError::BadManifest(e.to_string()))?;
        let content = read_limited(&mut entry, "manifest.json")?;
        serde_json::from_slice(&content).map_err(|e| BundleError::BadManifest(e.to_string()))?
    };
    if manifest.files.len() > MAX_FILES {
        return Err(BundleError::TooManyFiles);
    }
    let mut total = 0u64;
    let mut files = Vec::with_capacity(manifest.files.len());
    for (path, info) in manifest.files {
        let mut entry = archive
            .by_name(&path)
            .map_err(|e| BundleError::BadArchive(format!("{path}: {e}")))?;
        let content = read_limited(&mut entry, &path)?;
        total += content.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(BundleError::TooLarge);
        }
        // Header names are compared without case (sentry-cli writes them lower-cased).
        let header = |name: &str| {
            info.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        files.push(BundleFile {
            debug_id: header("debug-id").and_then(|id| Uuid::try_parse(id.trim()).ok()),
            sourcemap: header("sourcemap").or_else(|| header("x-sourcemap")),
            path,
            file_type: info.file_type,
            url: info.url,
            content,
        });
    }
    Ok(Bundle {
        bundle_id: manifest
            .debug_id
            .and_then(|id| Uuid::try_parse(id.trim()).ok()),
        release: manifest.release.filter(|r| !r.is_empty()),
        dist: manifest.dist.filter(|d| !d.is_empty()),
        files,
    })
}

/// An entry's bytes, refused past [`MAX_FILE_BYTES`] whatever its header claims.
fn read_limited(entry: &mut impl Read, path: &str) -> Result<Vec<u8>, BundleError> {
    let mut content = Vec::new();
    entry
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|e| BundleError::BadArchive(format!("{path}: {e}")))?;
    if content.len() as u64 > MAX_FILE_BYTES {
        return Err(BundleError::FileTooLarge(path.to_owned()));
    }
    Ok(content)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    /// A bundle as sentry-cli writes one: header, then a ZIP.
    pub fn bundle(manifest: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("manifest.json", options).unwrap();
        zip.write_all(manifest.as_bytes()).unwrap();
        for (path, content) in files {
            zip.start_file(*path, options).unwrap();
            zip.write_all(content).unwrap();
        }
        let archive = zip.finish().unwrap().into_inner();
        let mut out = b"SYSB".to_vec();
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&archive);
        out
    }

    const ID: &str = "2f9b1d2e-6c1b-4c3e-9d1a-3b8f0c7e5a11";

    #[test]
    fn reads_the_manifest_and_every_file_with_its_debug_id() {
        let manifest = format!(
            r#"{{"files": {{
                "files/_/_/app.min.js": {{"type": "minified_source", "url": "~/app.min.js",
                    "headers": {{"debug-id": "{ID}", "Sourcemap": "app.min.js.map"}}}},
                "files/_/_/app.min.js.map": {{"type": "source_map", "url": "~/app.min.js.map",
                    "headers": {{"debug-id": "{ID}"}}}}
            }}, "debug_id": "0c9a5f8e-1b2d-4e3f-8a7b-6c5d4e3f2a1b", "release": "shop@2.1.0"}}"#
        );
        let bytes = bundle(
            &manifest,
            &[
                ("files/_/_/app.min.js", b"function a(){}"),
                ("files/_/_/app.min.js.map", b"{\"version\":3}"),
            ],
        );
        let read = read(&bytes).unwrap();
        assert_eq!(read.release.as_deref(), Some("shop@2.1.0"));
        assert_eq!(read.files.len(), 2);
        let js = &read.files[0];
        assert_eq!(
            (js.file_type.as_str(), js.url.as_str()),
            ("minified_source", "~/app.min.js")
        );
        assert_eq!(js.debug_id, Some(Uuid::try_parse(ID).unwrap()));
        assert_eq!(js.sourcemap.as_deref(), Some("app.min.js.map"));
        assert_eq!(js.content, b"function a(){}");
    }

    #[test]
    fn bad_archives_are_clear_errors() {
        assert_eq!(
            read(b"PK\x03\x04 not ours").unwrap_err(),
            BundleError::NotABundle
        );
        assert!(matches!(
            read(b"SYSB\x02\x00\x00\x00garbage"),
            Err(BundleError::BadArchive(_))
        ));
        let no_manifest = {
            let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
            zip.start_file("x", zip::write::SimpleFileOptions::default())
                .unwrap();
            let mut out = b"SYSB\x02\x00\x00\x00".to_vec();
            out.extend_from_slice(&zip.finish().unwrap().into_inner());
            out
        };
        assert!(matches!(
            read(&no_manifest),
            Err(BundleError::BadManifest(_))
        ));
        let missing_file = bundle(
            r#"{"files": {"files/gone.js": {"type": "source", "url": "~/gone.js"}}}"#,
            &[],
        );
        assert!(matches!(
            read(&missing_file),
            Err(BundleError::BadArchive(_))
        ));
    }

    #[test]
    fn a_file_larger_than_the_limit_is_refused_without_reading_it_all() {
        let big = vec![b' '; (MAX_FILE_BYTES + 1) as usize];
        let bytes = bundle(
            r#"{"files": {"files/big.js": {"type": "source", "url": "~/big.js"}}}"#,
            &[("files/big.js", &big)],
        );
        assert_eq!(
            read(&bytes).unwrap_err(),
            BundleError::FileTooLarge("files/big.js".into())
        );
    }
}
