//! Project keys: the public key in every DSN, and the DSN built from the address users reach
//! Faultline at.

use anyhow::Context;
use rand::RngCore;

/// 32 random hex characters, as Sentry's public keys.
pub fn new_public_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `scheme://KEY@host[:port][/path]/PROJECT_ID` from the base URL users reach Faultline at.
pub fn dsn(base_url: &str, public_key: &str, project_id: i64) -> anyhow::Result<String> {
    let base = base_url.trim().trim_end_matches('/');
    let (scheme, rest) = base.split_once("://").with_context(|| {
        format!("FAULTLINE_BASE_URL {base:?} must start with http:// or https://")
    })?;
    anyhow::ensure!(
        scheme == "http" || scheme == "https",
        "FAULTLINE_BASE_URL must use http or https"
    );
    anyhow::ensure!(
        !rest.is_empty() && !rest.contains('@'),
        "FAULTLINE_BASE_URL has no valid host"
    );
    Ok(format!("{scheme}://{public_key}@{rest}/{project_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_keeps_port_and_path_of_the_base_url() {
        let key = "abcdef0123456789abcdef0123456789";
        assert_eq!(
            dsn("http://localhost:8000", key, 3).unwrap(),
            format!("http://{key}@localhost:8000/3")
        );
        assert_eq!(
            dsn("https://errors.example.com/sentry/", key, 7).unwrap(),
            format!("https://{key}@errors.example.com/sentry/7")
        );
        assert!(dsn("localhost:8000", key, 1).is_err());
    }

    #[test]
    fn public_keys_are_32_hex_characters() {
        let key = new_public_key();
        assert_eq!(key.len(), 32);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
