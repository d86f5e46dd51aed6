//! Where an SDK puts its DSN key (PROTOCOL.md §2): the `X-Sentry-Auth` header, an
//! `Authorization: Sentry …` header, the `sentry_key` query parameter, or the envelope's `dsn`.

use super::error::IngestError;

/// A DSN public key as sent by a client: 32 hex characters, checked at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(String);

impl PublicKey {
    pub fn parse(raw: &str) -> Result<Self, IngestError> {
        let key = raw.trim();
        if key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(PublicKey(key.to_ascii_lowercase()))
        } else {
            Err(IngestError::Unauthorized(
                "the DSN key is malformed: expected 32 hexadecimal characters".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key found in the request's headers or query string, if any. Several sources are fine
/// as long as they agree (more lenient than Relay, which refuses any second source).
pub fn key_from_request(
    x_sentry_auth: Option<&str>,
    authorization: Option<&str>,
    query: &str,
) -> Result<Option<PublicKey>, IngestError> {
    let candidates = [
        x_sentry_auth.and_then(key_from_auth_header),
        authorization.and_then(key_from_auth_header),
        key_from_query(query),
    ];
    let mut found: Option<PublicKey> = None;
    for raw in candidates.into_iter().flatten() {
        let key = PublicKey::parse(&raw)?;
        match &found {
            Some(previous) if *previous != key => return Err(IngestError::malformed(
                "the request carries two different DSN keys (headers and query string disagree)",
            )),
            _ => found = Some(key),
        }
    }
    Ok(found)
}

/// `Sentry sentry_key=…, sentry_version=7` (Python spaces its pairs, Java does not).
fn key_from_auth_header(value: &str) -> Option<String> {
    let value = value.trim();
    let prefix = value.get(..7)?;
    if !prefix.eq_ignore_ascii_case("sentry ") {
        return None;
    }
    value[7..].split(',').find_map(|pair| {
        let (name, key) = pair.trim().split_once('=')?;
        (name.trim() == "sentry_key").then(|| key.trim().to_owned())
    })
}

fn key_from_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "sentry_key").then(|| value.to_owned())
    })
}

/// The key and project id inside a DSN such as `https://KEY@host/path/42`.
pub fn key_from_dsn(dsn: &str) -> Result<(PublicKey, String), IngestError> {
    let invalid = || IngestError::malformed("the envelope header \"dsn\" is not a valid DSN");
    let (_, rest) = dsn.split_once("://").ok_or_else(invalid)?;
    let (userinfo, location) = rest.split_once('@').ok_or_else(invalid)?;
    let public = userinfo.split(':').next().unwrap_or_default();
    let project = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .ok_or_else(invalid)?;
    Ok((PublicKey::parse(public)?, project.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdef0123456789abcdef0123456789";

    #[test]
    fn python_and_java_header_styles_are_understood() {
        let python = format!(
            "Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.python/2.75.0"
        );
        let java =
            format!("Sentry sentry_version=7,sentry_client=sentry.java/8.0,sentry_key={KEY}");
        for header in [python, java] {
            let key = key_from_request(Some(&header), None, "").unwrap().unwrap();
            assert_eq!(key.as_str(), KEY);
        }
    }

    #[test]
    fn authorization_header_and_query_string_are_understood() {
        let header = format!("Sentry sentry_key={KEY}");
        assert!(key_from_request(None, Some(&header), "").unwrap().is_some());
        let query = format!("sentry_version=7&sentry_key={KEY}&sentry_client=x");
        assert_eq!(
            key_from_request(None, None, &query)
                .unwrap()
                .unwrap()
                .as_str(),
            KEY
        );
    }

    #[test]
    fn a_bearer_authorization_header_is_not_a_dsn_key() {
        assert!(key_from_request(None, Some("Bearer abc"), "")
            .unwrap()
            .is_none());
    }

    #[test]
    fn disagreeing_keys_are_a_bad_request() {
        let header = format!("Sentry sentry_key={KEY}");
        let query = "sentry_key=00000000000000000000000000000000";
        assert!(matches!(
            key_from_request(Some(&header), None, query),
            Err(IngestError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_key_is_unauthorized() {
        assert!(matches!(
            key_from_request(None, None, "sentry_key=zz"),
            Err(IngestError::Unauthorized(_))
        ));
    }

    #[test]
    fn dsn_yields_key_and_project() {
        let (key, project) =
            key_from_dsn(&format!("https://{KEY}@errors.example.com/sentry/42")).unwrap();
        assert_eq!(key.as_str(), KEY);
        assert_eq!(project, "42");
    }
}
