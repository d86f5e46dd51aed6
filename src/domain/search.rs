//! The issue search box's syntax, the same for the dashboard and `/api/0/` (Sentry's, the parts
//! Faultline supports): `is:unresolved|resolved|ignored|unhandled`, `level:`, `environment:`,
//! `release:`, one other `key:value` as a tag, and free text matched against titles and
//! culprits and, from [`MIN_STACK_SEARCH_CHARS`] characters, inside stack traces (exception
//! types and values, messages, frame functions, modules and files).

/// Text shorter than this cannot use the trigram index of stack-trace terms: it is matched
/// against titles and culprits only, and the pages say so.
pub const MIN_STACK_SEARCH_CHARS: usize = 3;

/// Whether free text is long enough to be looked for inside stack traces.
pub fn searches_stack_traces(text: &str) -> bool {
    text.trim().chars().count() >= MIN_STACK_SEARCH_CHARS
}

/// A search query, parsed. Values are as typed; their meaning is checked where they are used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Search {
    /// From `is:…`, other than `is:unhandled`.
    pub status: Option<String>,
    pub unhandled_only: bool,
    pub level: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    /// The first other `key:value`; later ones are searched as text.
    pub tag: Option<(String, String)>,
    pub text: Option<String>,
}

pub fn parse(query: &str) -> Search {
    let mut search = Search::default();
    let mut words = Vec::new();
    for word in query.split_whitespace() {
        let Some((key, value)) = word
            .split_once(':')
            // `https://…` is text, not a tag named https.
            .filter(|(k, v)| !k.is_empty() && !v.is_empty() && !v.starts_with("//"))
        else {
            words.push(word);
            continue;
        };
        let value = value.trim_matches('"').to_owned();
        match key {
            "is" if value == "unhandled" => search.unhandled_only = true,
            "is" => search.status = Some(value),
            "level" => search.level = Some(value),
            "environment" => search.environment = Some(value),
            "release" => search.release = Some(value),
            _ if search.tag.is_none() => search.tag = Some((key.to_owned(), value)),
            _ => words.push(word),
        }
    }
    let text = words.join(" ");
    search.text = (!text.is_empty()).then_some(text);
    search
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_a_colon_filter_and_the_rest_is_text() {
        let search = parse("timeout browser:Firefox is:resolved level:error db os:linux");
        assert_eq!(search.text.as_deref(), Some("timeout db os:linux"));
        assert_eq!(search.tag, Some(("browser".into(), "Firefox".into())));
        assert_eq!(search.status.as_deref(), Some("resolved"));
        assert_eq!(search.level.as_deref(), Some("error"));
    }

    #[test]
    fn urls_stay_text_and_quotes_are_dropped() {
        assert_eq!(
            parse("https://x.example").text.as_deref(),
            Some("https://x.example")
        );
        assert_eq!(
            parse("release:\"shop@1.2\"").release.as_deref(),
            Some("shop@1.2")
        );
        assert!(parse("is:unhandled").unhandled_only);
        assert_eq!(parse(""), Search::default());
    }
}
