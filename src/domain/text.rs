//! Cutting text to a number of characters (never bytes: a cut never splits a character).

/// The longest prefix of `text` with at most `max` characters.
pub fn cut_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((byte, _)) => &text[..byte],
        None => text,
    }
}

/// `text` cut to at most `max` characters, ending in "…" (within the `max`) when it was cut.
pub fn ellipsize(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", cut_chars(text, max.saturating_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_count_characters_not_bytes() {
        assert_eq!(cut_chars("héllo", 2), "hé");
        assert_eq!(cut_chars("hé", 5), "hé");
        assert_eq!(ellipsize("héllo", 5), "héllo");
        assert_eq!(ellipsize("héllo wörld", 5), "héll…");
    }
}
