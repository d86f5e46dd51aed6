//! Server-side data scrubbing, applied to every event before it is stored.
//!
//! This mirrors Sentry's default server-side scrubbers (PROTOCOL.md §11):
//! values under sensitive keys are replaced wholesale, and secrets that look
//! like credit-card numbers, bearer tokens, PEM private keys or passwords in
//! URLs are cut out of any string in the user-controlled parts of an event.
//!
//! Events come from untrusted SDKs, so every field may be missing or of the
//! wrong type. Nothing here panics on data: unexpected shapes are either
//! walked generically or left alone.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use request::scrub_request;

mod request;

/// Replacement text for anything removed by the scrubber (same as Sentry).
pub const FILTERED: &str = "[Filtered]";

/// How deep the generic walker descends below the root of a scrubbed area.
/// Bounded so that hostile nesting cannot overflow the stack; anything deeper
/// is left untouched.
const MAX_DEPTH: usize = 64;

/// `user` fields that identify the user and must survive scrubbing even
/// though the default rules might otherwise match them.
const USER_SAFE_FIELDS: [&str; 4] = ["id", "email", "username", "ip_address"];

/// Cookie names Sentry always filters that the key rule alone would miss.
const EXTRA_SENSITIVE_COOKIES: [&str; 5] = ["sentrysid", "sudo", "su", "symfony", "_vercel_jwt"];

/// Sentry's `@password` key rule: a case-insensitive *substring* match, so
/// `author` is filtered because it contains `auth`. That false positive is
/// accepted upstream in exchange for catching `authorization`,
/// `x-auth-token` and similar without an exhaustive list.
static SENSITIVE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)password|secret|passwd|api[-_]?key|auth|credentials|mysql_pwd|private[-_]?key|token|bearer|session|cookie|csrf|xsrf|phpsessid|^otp$|^two[-_]factor$",
    )
    .expect("valid sensitive-key regex")
});

/// A value rule: its pattern, what replaces a match, and a cheap test that is true of every
/// text the pattern can match (most strings fail it, and skip the regex).
struct ValueRule {
    pattern: Regex,
    replacement: &'static str,
    may_match: fn(&str) -> bool,
}

/// Value rules, applied in order to every scrubbed string.
static VALUE_RULES: LazyLock<Vec<ValueRule>> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement: &'static str, may_match| ValueRule {
        pattern: Regex::new(pattern).expect("valid value regex"),
        replacement,
        may_match,
    };
    vec![
        // PEM private keys. The second branch also catches a block whose END
        // line was lost, e.g. because the SDK truncated the string.
        rule(
            r"(?s)-----BEGIN[A-Z ]*PRIVATE KEY-----(?:.*?-----END[A-Z ]*PRIVATE KEY-----|.*)",
            FILTERED,
            |text| PRIVATE_KEY_MARK.find(text.as_bytes()).is_some(),
        ),
        // `scheme://user:password@host` keeps the user, drops the password.
        rule(
            r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/?#@\s]*):[^@/?#\s]+@",
            "${1}:[Filtered]@",
            |text| {
                memchr::memchr(b'@', text.as_bytes()).is_some()
                    && SCHEME_MARK.find(text.as_bytes()).is_some()
            },
        ),
        // `Bearer <token>` keeps the scheme word so the header stays readable.
        rule(r"(?i)\b(bearer\s+)\S+", "${1}[Filtered]", may_hold_bearer),
        // Credit-card numbers (Visa, Mastercard, Amex, Discover), with
        // optional space or dash separators.
        rule(
            r"\b(?:3[47]\d|4\d{3}|5[1-5]\d\d|65\d\d|6011)(?:[-\s]?\d){12}\b",
            FILTERED,
            may_hold_card_number,
        ),
    ]
});

/// Whether `bearer` may be in the text, in any case. Text that is not ASCII goes to the regex:
/// its case-insensitive matching follows Unicode's case folding. (The cheap tests run on every
/// scrubbed string, so they search with memchr rather than byte by byte.)
fn may_hold_bearer(text: &str) -> bool {
    let bytes = text.as_bytes();
    !text.is_ascii()
        || memchr::memchr2_iter(b'b', b'B', bytes).any(|at| {
            bytes
                .get(at..at + 6)
                .is_some_and(|word| word.eq_ignore_ascii_case(b"bearer"))
        })
}

/// Whether the text has the 15 digits a card number needs. `\d` is any Unicode decimal
/// digit, so text that is not ASCII counts with `is_numeric` (which takes more); ASCII text
/// counts its bytes, which the compiler does many at a time.
fn may_hold_card_number(text: &str) -> bool {
    if text.is_ascii() {
        text.bytes().filter(u8::is_ascii_digit).count() >= 15
    } else {
        text.chars().filter(|c| c.is_numeric()).nth(14).is_some()
    }
}

static PRIVATE_KEY_MARK: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new("PRIVATE KEY-----"));
static SCHEME_MARK: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new("://"));

/// Scrubs secrets in place from a normalised Sentry event (serde_json::Value object).
pub fn scrub_event(event: &mut Value) {
    let Some(event) = event.as_object_mut() else {
        return;
    };
    if let Some(request) = event.get_mut("request") {
        scrub_request(request);
    }
    for area in ["extra", "contexts"] {
        if let Some(value) = event.get_mut(area) {
            scrub_value(value, 0);
        }
    }
    if let Some(user) = event.get_mut("user") {
        scrub_user(user);
    }
    if let Some(tags) = event.get_mut("tags") {
        scrub_entries(tags, is_sensitive_key, scrub_text);
    }
    if let Some(breadcrumbs) = event.get_mut("breadcrumbs") {
        scrub_breadcrumbs(breadcrumbs);
    }
    for area in ["exception", "threads"] {
        if let Some(container) = event.get_mut(area) {
            for item in values_of(container) {
                scrub_stacktraces_of(item);
            }
        }
    }
    // Legacy top-level stack trace, still accepted by the store endpoint.
    if let Some(stacktrace) = event.get_mut("stacktrace") {
        scrub_frame_vars(stacktrace);
    }
    if let Some(logentry) = event.get_mut("logentry") {
        scrub_logentry(logentry);
    }
}

/// True when a key (header, cookie, variable, field name...) holds a secret.
fn is_sensitive_key(key: &str) -> bool {
    SENSITIVE_KEY.is_match(key)
}

/// Cookies get the key rule plus Sentry's list of known session cookies.
fn is_sensitive_cookie(name: &str) -> bool {
    let name = name.trim();
    is_sensitive_key(name)
        || EXTRA_SENSITIVE_COOKIES
            .iter()
            .any(|known| name.eq_ignore_ascii_case(known))
}

fn filtered() -> Value {
    Value::String(FILTERED.to_owned())
}

/// Applies the value rules; `None` when nothing matched, to avoid
/// reallocating the (vast majority of) clean strings.
fn scrubbed_text(text: &str) -> Option<String> {
    let mut current = Cow::Borrowed(text);
    for rule in VALUE_RULES.iter() {
        if !(rule.may_match)(&current) {
            continue;
        }
        let replaced = match rule.pattern.replace_all(&current, rule.replacement) {
            Cow::Owned(new) => Some(new),
            Cow::Borrowed(_) => None,
        };
        if let Some(new) = replaced {
            current = Cow::Owned(new);
        }
    }
    match current {
        Cow::Owned(new) => Some(new),
        Cow::Borrowed(_) => None,
    }
}

/// Free text people typed (user feedback): the value rules, as for event strings.
pub fn scrub_free_text(text: &str) -> String {
    scrub_text(text)
}

/// Value rules on a borrowed string, always returning an owned result.
fn scrub_text(text: &str) -> String {
    scrubbed_text(text).unwrap_or_else(|| text.to_owned())
}

fn scrub_string(text: &mut String) {
    if let Some(clean) = scrubbed_text(text) {
        *text = clean;
    }
}

/// Generic walker: key rule on every object key, value rules on every
/// string, bounded by `MAX_DEPTH`.
fn scrub_value(value: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::String(text) => scrub_string(text),
        Value::Array(items) => {
            for item in items {
                scrub_value(item, depth + 1);
            }
        }
        Value::Object(map) => scrub_map(map, is_sensitive_key, depth),
        _ => {}
    }
}

fn scrub_map(map: &mut Map<String, Value>, is_sensitive: fn(&str) -> bool, depth: usize) {
    for (key, value) in map.iter_mut() {
        if is_sensitive(key) {
            *value = filtered();
        } else {
            scrub_value(value, depth + 1);
        }
    }
}

/// Key/value collections that SDKs send as an object, as `[[k, v], ...]`
/// pairs, or as one encoded string (query strings, cookie headers).
/// `is_sensitive` judges each key; `scrub_str` handles the string form.
fn scrub_entries(value: &mut Value, is_sensitive: fn(&str) -> bool, scrub_str: fn(&str) -> String) {
    match value {
        Value::Object(map) => scrub_map(map, is_sensitive, 0),
        Value::Array(items) => {
            for item in items {
                scrub_pair(item, is_sensitive);
            }
        }
        Value::String(text) => *text = scrub_str(text),
        _ => {}
    }
}

/// One `[key, value]` element of a pair list; anything else in the list is
/// walked generically so secrets in malformed entries are still caught.
fn scrub_pair(item: &mut Value, is_sensitive: fn(&str) -> bool) {
    let Value::Array(pair) = item else {
        return scrub_value(item, 1);
    };
    let key_is_sensitive = match pair.as_slice() {
        [Value::String(key), _] => is_sensitive(key),
        _ => return scrub_value(item, 1),
    };
    if key_is_sensitive {
        pair[1] = filtered();
    } else {
        scrub_value(&mut pair[1], 1);
    }
}

fn scrub_user(user: &mut Value) {
    let Value::Object(map) = user else {
        return scrub_value(user, 0);
    };
    for (key, value) in map.iter_mut() {
        if USER_SAFE_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if is_sensitive_key(key) {
            *value = filtered();
        } else {
            scrub_value(value, 1);
        }
    }
}

/// `{"values": [...]}` in normalised events, a bare array in older payloads.
fn values_of(container: &mut Value) -> impl Iterator<Item = &mut Value> {
    let list = match container {
        Value::Array(items) => Some(items),
        Value::Object(map) => map.get_mut("values").and_then(Value::as_array_mut),
        _ => None,
    };
    list.into_iter().flatten()
}

fn scrub_breadcrumbs(breadcrumbs: &mut Value) {
    for crumb in values_of(breadcrumbs) {
        let Some(crumb) = crumb.as_object_mut() else {
            continue;
        };
        if let Some(data) = crumb.get_mut("data") {
            scrub_crumb_addresses(data);
            scrub_value(data, 0);
        }
        if let Some(Value::String(message)) = crumb.get_mut("message") {
            scrub_string(message);
        }
    }
}

/// Breadcrumbs of requests and navigations carry addresses and query strings (`url`, `to`,
/// `from`, OpenTelemetry's `http.query` and `http.fragment`): the key rule applies inside them
/// as it does to `request.url`. The value rules follow with the rest of `data`.
fn scrub_crumb_addresses(data: &mut Value) {
    let Some(data) = data.as_object_mut() else {
        return;
    };
    for (key, value) in data.iter_mut() {
        let Value::String(text) = value else {
            continue;
        };
        match key.as_str() {
            "url" | "to" | "from" => *text = request::scrub_url_keys(text),
            "http.query" | "http.fragment" => *text = request::scrub_query_string(text),
            _ => {}
        }
    }
}

/// Only frame `vars` are user data; file names, functions and context lines
/// are code and must stay intact for grouping and display.
fn scrub_stacktraces_of(item: &mut Value) {
    let Some(item) = item.as_object_mut() else {
        return;
    };
    for field in ["stacktrace", "raw_stacktrace"] {
        if let Some(stacktrace) = item.get_mut(field) {
            scrub_frame_vars(stacktrace);
        }
    }
}

fn scrub_frame_vars(stacktrace: &mut Value) {
    let Some(frames) = stacktrace.get_mut("frames").and_then(Value::as_array_mut) else {
        return;
    };
    for frame in frames {
        if let Some(vars) = frame.get_mut("vars") {
            scrub_value(vars, 0);
        }
    }
}

/// `message` is the developer's format template and is kept; the rendered
/// text and the parameters can carry user data.
fn scrub_logentry(logentry: &mut Value) {
    let Some(logentry) = logentry.as_object_mut() else {
        return;
    };
    if let Some(Value::String(formatted)) = logentry.get_mut("formatted") {
        scrub_string(formatted);
    }
    if let Some(params) = logentry.get_mut("params") {
        scrub_value(params, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Every text a rule's pattern matches passes its cheap test (else a secret would be kept).
    fn assert_no_match_is_skipped(text: &str) {
        for rule in VALUE_RULES.iter() {
            if rule.pattern.is_match(text) {
                assert!(
                    (rule.may_match)(text),
                    "{:?} skipped {text:?}",
                    rule.pattern
                );
            }
        }
    }

    #[test]
    fn secrets_in_fragments_broken_bodies_and_breadcrumb_addresses_are_filtered() {
        let mut event = json!({
            "request": {
                "url": "https://app.example/cb#access_token=eyJabc&state=xyz",
                "data": "{\"email\":\"a@b.example\",\"password\":\"hunter2\",\"note\":\"x=1\",\"api_key\":\"k-9",
            },
            "breadcrumbs": {"values": [
                {"category": "http", "data": {"url": "https://api.example/v1?api_key=k-1&page=2",
                                              "http.query": "token=t-2&q=shoes"}},
                {"category": "navigation", "data": {"from": "/login#id_token=t-3", "to": "/home"}},
            ]},
        });
        scrub_event(&mut event);
        let text = event.to_string();
        for secret in ["eyJabc", "hunter2", "k-9", "k-1", "t-2", "t-3"] {
            assert!(!text.contains(secret), "{secret} kept in {text}");
        }
        assert_eq!(
            event["request"]["url"],
            "https://app.example/cb#access_token=[Filtered]&state=xyz"
        );
        let body = event["request"]["data"].as_str().unwrap();
        assert!(body.contains("\"email\":\"a@b.example\""), "{body}");
        assert!(body.contains("\"note\":\"x=1\""), "{body}");
        let crumbs = &event["breadcrumbs"]["values"];
        assert_eq!(
            crumbs[0]["data"]["url"],
            "https://api.example/v1?api_key=[Filtered]&page=2"
        );
        assert_eq!(crumbs[0]["data"]["http.query"], "token=[Filtered]&q=shoes");
        assert_eq!(crumbs[1]["data"]["to"], "/home");
    }

    #[test]
    fn a_plain_fragment_or_url_is_left_as_it_was() {
        for url in [
            "https://app.example/docs#install",
            "https://app.example/a?b=1#top",
        ] {
            assert_eq!(request::scrub_url(url), url);
        }
    }

    #[test]
    fn the_cheap_tests_pass_every_text_the_rules_match() {
        for text in [
            "Authorization: BEARER abc.def",
            "bEaReR\txyz",
            "ﬀ bearer x",
            "postgres://app:hunter2@db/prod",
            "card 4111 1111 1111 1111 declined",
            "amex 3782-822463-10005",
            "4\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}\u{661}",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
        ] {
            assert!(
                VALUE_RULES.iter().any(|rule| rule.pattern.is_match(text)),
                "{text:?} is a secret"
            );
            assert_no_match_is_skipped(text);
        }
        assert!(!(VALUE_RULES[3].may_match)("order 12345 of 2026-11-30"));
        assert!(!may_hold_bearer("plain ascii"));
    }

    proptest! {
        #[test]
        fn no_secret_is_skipped_by_a_cheap_test(
            text in "([0-9 \\-]{0,20}|bearer |BeArEr\t|://|@|:|[a-z]{1,5}|\\PC){0,12}"
        ) {
            assert_no_match_is_skipped(&text);
        }
    }

    fn scrubbed(mut event: Value) -> Value {
        scrub_event(&mut event);
        event
    }

    #[test]
    fn a_frame_local_password_variable_is_filtered() {
        let event = scrubbed(json!({"exception": {"values": [{
            "type": "ValueError",
            "stacktrace": {"frames": [{
                "function": "login",
                "filename": "auth.py",
                "vars": {"password": "hunter2", "user": "bob"}
            }]}
        }]}}));
        let frame = &event["exception"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(frame["vars"]["password"], FILTERED);
        assert_eq!(frame["vars"]["user"], "bob");
        assert_eq!(frame["filename"], "auth.py");
        assert_eq!(frame["function"], "login");
    }

    #[test]
    fn thread_frame_vars_are_scrubbed_too() {
        let event = scrubbed(json!({"threads": {"values": [{
            "stacktrace": {"frames": [{"vars": {"api_key": "k"}}]}
        }]}}));
        assert_eq!(
            event["threads"]["values"][0]["stacktrace"]["frames"][0]["vars"]["api_key"],
            FILTERED
        );
    }

    #[test]
    fn a_nested_api_key_in_extra_is_filtered() {
        let event = scrubbed(json!({"extra": {"db": {"api_key": "abc", "host": "db1"}}}));
        assert_eq!(event["extra"]["db"]["api_key"], FILTERED);
        assert_eq!(event["extra"]["db"]["host"], "db1");
    }

    #[test]
    fn a_sensitive_key_filters_the_whole_value_whatever_its_type() {
        let event = scrubbed(json!({"extra": {"credentials": {"user": "a", "pass": "b"}}}));
        assert_eq!(event["extra"]["credentials"], FILTERED);
    }

    #[test]
    fn authorization_and_cookie_headers_as_an_object_are_filtered() {
        let event = scrubbed(json!({"request": {"headers": {
            "Authorization": "Basic dXNlcjpwYXNz",
            "Cookie": "sessionid=abc",
            "User-Agent": "curl/8"
        }}}));
        let headers = &event["request"]["headers"];
        assert_eq!(headers["Authorization"], FILTERED);
        assert_eq!(headers["Cookie"], FILTERED);
        assert_eq!(headers["User-Agent"], "curl/8");
    }

    #[test]
    fn authorization_and_cookie_headers_as_pairs_are_filtered() {
        let event = scrubbed(json!({"request": {"headers": [
            ["Authorization", "Basic dXNlcjpwYXNz"],
            ["Cookie", "sessionid=abc"],
            ["Accept", "text/html"]
        ]}}));
        let headers = &event["request"]["headers"];
        assert_eq!(headers[0], json!(["Authorization", FILTERED]));
        assert_eq!(headers[1], json!(["Cookie", FILTERED]));
        assert_eq!(headers[2], json!(["Accept", "text/html"]));
    }

    #[test]
    fn header_names_are_matched_case_insensitively() {
        let event = scrubbed(json!({"request": {"headers": {
            "AUTHORIZATION": "x",
            "x-api-key": "y",
            "X-Csrf-Token": "z",
            "Set-Cookie": "a=b"
        }}}));
        let headers = &event["request"]["headers"];
        for name in ["AUTHORIZATION", "x-api-key", "X-Csrf-Token", "Set-Cookie"] {
            assert_eq!(headers[name], FILTERED, "{name}");
        }
    }

    #[test]
    fn a_query_string_keeps_its_string_form() {
        let event = scrubbed(json!({"request": {"query_string": "a=1&token=x&b=2"}}));
        assert_eq!(event["request"]["query_string"], "a=1&token=[Filtered]&b=2");
    }

    #[test]
    fn percent_encoded_query_keys_are_decoded_before_judging() {
        let event = scrubbed(json!({"request": {"query_string": "api%5Fkey=x"}}));
        assert_eq!(event["request"]["query_string"], "api%5Fkey=[Filtered]");
    }

    #[test]
    fn a_query_string_as_pairs_is_judged_by_key() {
        let event = scrubbed(json!({"request": {"query_string": [
            ["page", "2"],
            ["access_token", "abc"]
        ]}}));
        let query = &event["request"]["query_string"];
        assert_eq!(query[0], json!(["page", "2"]));
        assert_eq!(query[1], json!(["access_token", FILTERED]));
    }

    #[test]
    fn a_cookie_string_is_filtered_per_cookie_name() {
        let event = scrubbed(json!({"request": {"cookies": "theme=dark; sessionid=abc"}}));
        assert_eq!(
            event["request"]["cookies"],
            "theme=dark; sessionid=[Filtered]"
        );
    }

    #[test]
    fn known_session_cookies_are_filtered_as_an_object() {
        let event = scrubbed(json!({"request": {"cookies": {"sudo": "1", "lang": "en"}}}));
        assert_eq!(event["request"]["cookies"]["sudo"], FILTERED);
        assert_eq!(event["request"]["cookies"]["lang"], "en");
    }

    #[test]
    fn request_data_as_an_object_is_scrubbed() {
        let event = scrubbed(json!({"request": {"data": {"user": {"password": "p"}, "q": 1}}}));
        assert_eq!(event["request"]["data"]["user"]["password"], FILTERED);
        assert_eq!(event["request"]["data"]["q"], 1);
    }

    #[test]
    fn request_data_as_json_text_is_replaced_by_the_scrubbed_value() {
        let event = scrubbed(json!({"request": {"data": r#"{"secret": "s", "n": 1}"#}}));
        assert_eq!(
            event["request"]["data"],
            json!({"secret": FILTERED, "n": 1})
        );
    }

    #[test]
    fn request_data_as_a_form_string_is_scrubbed_like_a_query() {
        let event = scrubbed(json!({"request": {"data": "user=bob&password=hunter2"}}));
        assert_eq!(event["request"]["data"], "user=bob&password=[Filtered]");
    }

    #[test]
    fn request_env_is_scrubbed() {
        let event = scrubbed(json!({"request": {"env": {"DB_PASSWORD": "x", "PATH": "/bin"}}}));
        assert_eq!(event["request"]["env"]["DB_PASSWORD"], FILTERED);
        assert_eq!(event["request"]["env"]["PATH"], "/bin");
    }

    #[test]
    fn a_card_number_in_a_breadcrumb_message_is_filtered() {
        let event = scrubbed(json!({"breadcrumbs": {"values": [{
            "message": "charged 4111 1111 1111 1111 ok",
            "data": {"auth_token": "t"}
        }]}}));
        let crumb = &event["breadcrumbs"]["values"][0];
        assert_eq!(crumb["message"], "charged [Filtered] ok");
        assert_eq!(crumb["data"]["auth_token"], FILTERED);
    }

    #[test]
    fn a_card_number_in_extra_is_filtered() {
        let event = scrubbed(json!({"extra": {"note": "card 5500-0000-0000-0004"}}));
        assert_eq!(event["extra"]["note"], "card [Filtered]");
    }

    #[test]
    fn a_bearer_token_in_a_string_is_filtered() {
        let event = scrubbed(json!({"extra": {"line": "sent Bearer eyJhbGci.abc.def to api"}}));
        assert_eq!(event["extra"]["line"], "sent Bearer [Filtered] to api");
    }

    #[test]
    fn a_pem_private_key_is_filtered() {
        let pem = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- end";
        let event = scrubbed(json!({"extra": {"cfg": pem}}));
        assert_eq!(event["extra"]["cfg"], "key: [Filtered] end");
    }

    #[test]
    fn url_credentials_in_request_url_are_filtered() {
        let event = scrubbed(json!({"request": {
            "url": "https://admin:s3cret@example.com/path?x=1&token=t"
        }}));
        assert_eq!(
            event["request"]["url"],
            "https://admin:[Filtered]@example.com/path?x=1&token=[Filtered]"
        );
    }

    #[test]
    fn url_credentials_inside_any_string_are_filtered() {
        let event = scrubbed(json!({"extra": {"dsn": "postgres://app:pw@db:5432/x"}}));
        assert_eq!(event["extra"]["dsn"], "postgres://app:[Filtered]@db:5432/x");
    }

    #[test]
    fn user_id_email_username_and_ip_are_kept() {
        let event = scrubbed(json!({"user": {
            "id": "42",
            "email": "a@example.com",
            "username": "alice",
            "ip_address": "10.0.0.1",
            "session_token": "x"
        }}));
        let user = &event["user"];
        assert_eq!(user["id"], "42");
        assert_eq!(user["email"], "a@example.com");
        assert_eq!(user["username"], "alice");
        assert_eq!(user["ip_address"], "10.0.0.1");
        assert_eq!(user["session_token"], FILTERED);
    }

    #[test]
    fn tags_are_judged_by_tag_key() {
        let event = scrubbed(json!({"tags": {"api_key": "k", "browser": "Firefox"}}));
        assert_eq!(event["tags"]["api_key"], FILTERED);
        assert_eq!(event["tags"]["browser"], "Firefox");
    }

    #[test]
    fn logentry_params_and_formatted_are_scrubbed_but_the_template_is_kept() {
        let event = scrubbed(json!({"logentry": {
            "message": "login %s with password %s",
            "formatted": "login bob with Bearer abc",
            "params": {"password": "p"}
        }}));
        assert_eq!(event["logentry"]["message"], "login %s with password %s");
        assert_eq!(
            event["logentry"]["formatted"],
            "login bob with Bearer [Filtered]"
        );
        assert_eq!(event["logentry"]["params"]["password"], FILTERED);
    }

    #[test]
    fn an_exception_value_mentioning_password_is_kept() {
        let event = scrubbed(json!({
            "exception": {"values": [{
                "type": "AuthError",
                "value": "invalid password for Bearer abc",
                "module": "auth.tokens"
            }]},
            "release": "token-service@1.0",
            "environment": "secret-prod"
        }));
        let exception = &event["exception"]["values"][0];
        assert_eq!(exception["value"], "invalid password for Bearer abc");
        assert_eq!(exception["type"], "AuthError");
        assert_eq!(exception["module"], "auth.tokens");
        assert_eq!(event["release"], "token-service@1.0");
        assert_eq!(event["environment"], "secret-prod");
    }

    #[test]
    fn wrong_types_do_not_panic() {
        let shapes = [
            json!(5),
            json!(null),
            json!({"request": 5}),
            json!({"request": {"headers": "x", "cookies": 3, "query_string": null,
                               "data": true, "env": [1, 2], "url": 7}}),
            json!({"request": {"headers": [1, ["only-one"], [2, "x"], ["a", "b", "c"]]}}),
            json!({"user": "bob", "tags": 1, "extra": [], "contexts": "x"}),
            json!({"breadcrumbs": {"values": "x"}, "exception": {"values": [1]},
                   "threads": 3, "logentry": []}),
            json!({"exception": {"values": [{"stacktrace": {"frames": [1, {"vars": 2}]}}]}}),
            json!({"breadcrumbs": [null, {"message": 1, "data": "s"}]}),
        ];
        for shape in shapes {
            scrubbed(shape);
        }
    }

    #[test]
    fn hostile_nesting_is_bounded_and_does_not_overflow() {
        let mut deep = json!({"password": "deep"});
        for _ in 0..500 {
            deep = json!({"a": deep});
        }
        let event = scrubbed(json!({"extra": {"password": "shallow", "nested": deep}}));
        assert_eq!(event["extra"]["password"], FILTERED);
    }

    /// Sentry's key rule is a substring match on `auth`, so `author` (and
    /// `oauth_provider`, `authenticated`...) is filtered as well. We keep
    /// Sentry's behaviour rather than inventing a stricter rule.
    #[test]
    fn keys_like_author_are_filtered_by_the_substring_rule() {
        let event = scrubbed(json!({"extra": {"author": "Jane", "title": "Intro"}}));
        assert_eq!(event["extra"]["author"], FILTERED);
        assert_eq!(event["extra"]["title"], "Intro");
    }

    #[test]
    fn exact_match_keys_only_filter_on_equality() {
        let event =
            scrubbed(json!({"extra": {"otp": "123456", "otp_length": 6, "Two-Factor": "1"}}));
        assert_eq!(event["extra"]["otp"], FILTERED);
        assert_eq!(event["extra"]["otp_length"], 6);
        assert_eq!(event["extra"]["Two-Factor"], FILTERED);
    }
}
