//! The tag values an event contributes to its issue's distributions (environment, release,
//! server_name, level, browser, os, url, user, and the event's own tags).

use serde_json::Value;

use super::normalize::truncate_chars;

const MAX_TAG_CHARS: usize = 200;

/// `(key, value)` pairs, each key once, in a stable order.
pub fn tag_values(event: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut push = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            if !pairs.iter().any(|(k, _)| k == key) {
                pairs.push((key.to_owned(), truncate_chars(&value, MAX_TAG_CHARS)));
            }
        }
    };
    for key in ["environment", "release", "server_name", "level"] {
        push(key, text(event, &[key]));
    }
    push("browser", name_and_version(event, "browser"));
    push("os", name_and_version(event, "os"));
    push(
        "url",
        text(event, &["request", "url"]).map(|u| strip_query(&u).to_owned()),
    );
    push("user", user_key(event));
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
