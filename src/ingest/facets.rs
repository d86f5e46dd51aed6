//! The tag values an event contributes to its issue's distributions (environment, release,
//! server_name, level, browser, os, url, user, and the event's own tags).

use serde_json::Value;

use super::normalize::truncate_chars;
use crate::domain::event_shape::{self, tag};

const MAX_TAG_CHARS: usize = 200;

/// `(key, value)` pairs, each key once, in a stable order.
pub fn tag_values(event: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            // A linear look: at most ~210 keys (normalise keeps 200 of the event's own tags),
            // usually ~14, where a set's allocations cost more.
            if !pairs.iter().any(|(k, _)| k == key) {
                pairs.push((key.to_owned(), truncate_chars(&value, MAX_TAG_CHARS)));
            }
        }
    };
    for key in [tag::ENVIRONMENT, tag::RELEASE, tag::SERVER_NAME, tag::LEVEL] {
        push(key, text(event, &[key]));
    }
    push(tag::BROWSER, name_and_version(event, "browser"));
    push(tag::OS, name_and_version(event, "os"));
    push(
        tag::URL,
        text(event, &["request", "url"]).map(|u| strip_query(&u).to_owned()),
    );
    push(tag::USER, user_key(event));
    push(tag::HANDLED, handled(event));
    push(tag::REQUEST, failed_request(event));
    if let Some(tags) = event.get("tags").and_then(Value::as_object) {
        for (key, value) in tags {
            push(key, value.as_str().map(str::to_owned));
        }
    }
    pairs
}

/// Who was affected, as Sentry's `user` tag: `id:…`, else `email:…`, `username:…`, `ip:…`.
pub fn user_key(event: &Value) -> Option<String> {
    let user = event.get("user")?;
    [
        ("id", "id"),
        ("email", "email"),
        ("username", "username"),
        ("ip_address", "ip"),
    ]
    .iter()
    .find_map(|(field, prefix)| {
        let value = match user.get(field)? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(truncate_chars(&format!("{prefix}:{value}"), MAX_TAG_CHARS))
    })
}

/// `no` when any exception in the chain was unhandled (a crash), `yes` when all were handled.
fn handled(event: &Value) -> Option<String> {
    let exceptions = event_shape::exceptions(event);
    if exceptions.is_empty() {
        return None;
    }
    let crashed = exceptions.iter().any(|e| event_shape::is_unhandled(e));
    Some(if crashed { "no" } else { "yes" }.to_owned())
}

/// The request the error happened in: method and route (the transaction, else the URL's
/// path), and the response status when the event carries one, e.g. `POST /orders/{id} → 500`.
fn failed_request(event: &Value) -> Option<String> {
    let request = event.get("request")?;
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let route = event
        .get("transaction")
        .and_then(Value::as_str)
        .filter(|t| t.starts_with('/'))
        .map(str::to_owned)
        .or_else(|| {
            request
                .get("url")
                .and_then(Value::as_str)
                .map(|url| route_of(&url_path(url)))
        })?;
    let mut described = format!("{} {}", method.to_ascii_uppercase(), route)
        .trim()
        .to_owned();
    let status = event_shape::at(event, "/contexts/response/status_code")
        .and_then(|s| {
            s.as_u64()
                .map(|n| n.to_string())
                .or_else(|| s.as_str().map(str::to_owned))
        })
        .or_else(|| text(event, &["tags", "http.status_code"]));
    if let Some(status) = status {
        described.push_str(&format!(" → {status}"));
    }
    Some(described)
}

/// `/orders/5` from `https://shop.example/orders/5?x=1`.
fn url_path(url: &str) -> String {
    let without_query = strip_query(url);
    let after_scheme = without_query
        .split_once("://")
        .map_or(without_query, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) if without_query.contains("://") => after_scheme[i..].to_owned(),
        _ => without_query.to_owned(),
    }
}

/// The URL path as a route: each segment that is an id (digits, a UUID, or hex with digits,
/// eight characters or more) becomes `{id}`, so `/orders/5` and `/orders/6` are one endpoint
/// and a busy site does not make one per request.
fn route_of(path: &str) -> String {
    path.split('/')
        .map(|segment| if is_id(segment) { "{id}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_id(segment: &str) -> bool {
    let all_digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    let hex_digits = segment.bytes().filter(|b| *b != b'-');
    let hexlike = segment.len() >= 8
        && segment.bytes().any(|b| b.is_ascii_digit())
        && hex_digits.clone().all(|b| b.is_ascii_hexdigit())
        && hex_digits.count() >= 8;
    all_digits || hexlike
}

fn text(event: &Value, path: &[&str]) -> Option<String> {
    let mut value = event;
    for key in path {
        value = value.get(key)?;
    }
    value.as_str().map(str::to_owned)
}

fn name_and_version(event: &Value, context: &str) -> Option<String> {
    let ctx = event.get("contexts")?.get(context)?;
    let name = ctx.get("name")?.as_str()?;
    Some(match ctx.get("version").and_then(Value::as_str) {
        Some(version) if !version.is_empty() => format!("{name} {version}"),
        _ => name.to_owned(),
    })
}

fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_and_own_tags_are_collected_once_each() {
        let event = json!({
            "environment": "prod", "release": "1.0", "level": "error",
            "contexts": {"browser": {"name": "Chrome", "version": "120"}, "os": {"name": "Linux"}},
            "request": {"url": "https://shop.example/cart?id=5"},
            "user": {"id": 42, "email": "a@b.c"},
            "tags": {"region": "eu", "environment": "ignored duplicate"}
        });
        let pairs = tag_values(&event);
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("environment"), Some("prod"));
        assert_eq!(get("browser"), Some("Chrome 120"));
        assert_eq!(get("os"), Some("Linux"));
        assert_eq!(get("url"), Some("https://shop.example/cart"));
        assert_eq!(get("user"), Some("id:42"));
        assert_eq!(get("region"), Some("eu"));
        assert_eq!(pairs.iter().filter(|(k, _)| k == "environment").count(), 1);
        assert_eq!(
            get("request"),
            Some("/cart"),
            "without a method, the route alone"
        );
    }

    #[test]
    fn the_failed_request_names_method_route_and_status() {
        let event = json!({
            "transaction": "/orders/{id}",
            "request": {"method": "post", "url": "https://shop.example/orders/5?x=1"},
            "contexts": {"response": {"status_code": 500}},
            "exception": {"values": [{"type": "E", "mechanism": {"handled": false}}]}
        });
        let pairs = tag_values(&event);
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("request"), Some("POST /orders/{id} → 500"));
        assert_eq!(get("handled"), Some("no"));
        let by_url = json!({"request": {"method": "GET", "url": "https://shop.example/cart?id=1"}});
        let pairs = tag_values(&by_url);
        assert_eq!(
            pairs
                .iter()
                .find(|(k, _)| k == "request")
                .map(|(_, v)| v.as_str()),
            Some("GET /cart")
        );
    }

    #[test]
    fn ids_in_a_url_path_become_one_route() {
        for (path, route) in [
            ("/orders/5", "/orders/{id}"),
            ("/orders/1234567/lines/2", "/orders/{id}/lines/{id}"),
            ("/carts/0b9f7c2e-4d1a-4e8b-9a55-3c2f1d0e9b7a", "/carts/{id}"),
            ("/blobs/3f9c1a2b4d5e6f70", "/blobs/{id}"),
            ("/api/v2/cart", "/api/v2/cart"),
            ("/feed/deadbeef", "/feed/deadbeef"),
            ("/2fa/setup", "/2fa/setup"),
            ("/", "/"),
        ] {
            assert_eq!(route_of(path), route, "{path}");
        }
    }

    #[test]
    fn user_falls_back_to_email_then_ip() {
        assert_eq!(
            user_key(&json!({"user": {"email": "a@b.c"}})).as_deref(),
            Some("email:a@b.c")
        );
        assert_eq!(
            user_key(&json!({"user": {"ip_address": "1.2.3.4"}})).as_deref(),
            Some("ip:1.2.3.4")
        );
        assert_eq!(user_key(&json!({"user": {}})), None);
    }
}
