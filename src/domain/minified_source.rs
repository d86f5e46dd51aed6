//! A minified file as uploaded beside its map, for guessing the original name of the function
//! a frame is in. The guess is the sourcemap crate's (`SourceView::get_original_function_name`):
//! walking back from the frame's position, the first identifier that is the frame's minified
//! function name right after a `function` keyword; its original name is the map's name for
//! that position. The crate finds each position by walking the line's characters from its
//! start, which costs milliseconds per frame on a one-line bundle; here a column on an ASCII
//! line (what most minifiers write) is its byte offset, and a line with other characters keeps
//! where every `CHECKPOINT_UNITS`-th UTF-16 unit starts, so each step is bounded either way.

use sourcemap::SourceMap;

/// How many positions back a function's name is looked for (as the sourcemap crate does).
const MAX_TOKENS_BACK: usize = 128;
/// UTF-16 units between two remembered positions on a line that is not ASCII.
const CHECKPOINT_UNITS: usize = 64;

/// A minified file with its lines indexed.
pub struct MinifiedSource {
    text: String,
    lines: Vec<Line>,
}

struct Line {
    start: usize,
    end: usize,
    /// Empty for an ASCII line (a column is a byte offset); else `(UTF-16 units, byte offset)`
    /// of the character at or just after every `CHECKPOINT_UNITS` units.
    checkpoints: Vec<(u32, u32)>,
}

impl MinifiedSource {
    pub fn new(text: String) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for piece in text.split_inclusive('\n') {
            let content = piece.trim_end_matches(['\n', '\r']);
            lines.push(Line {
                start,
                end: start + content.len(),
                checkpoints: checkpoints(content),
            });
            start += piece.len();
        }
        MinifiedSource { text, lines }
    }

    /// Bytes held, for the cache's bound.
    pub fn size_in_memory(&self) -> usize {
        let checkpoints: usize = self.lines.iter().map(|l| l.checkpoints.len() * 8).sum();
        self.text.len() + self.lines.len() * std::mem::size_of::<Line>() + checkpoints
    }

    /// The identifier starting at (0-based line, UTF-16 column), after any whitespace.
    fn identifier_at(&self, line: u32, column: u32) -> Option<&str> {
        let (text, offset) = self.byte_offset(line, column)?;
        identifier_prefix(text.get(offset..)?.trim_start())
    }

    /// The line's text and the byte offset of its UTF-16 `column`.
    fn byte_offset(&self, line: u32, column: u32) -> Option<(&str, usize)> {
        let line = self.lines.get(line as usize)?;
        let text = &self.text[line.start..line.end];
        let column = column as usize;
        if line.checkpoints.is_empty() {
            return Some((text, column));
        }
        let at = line
            .checkpoints
            .partition_point(|&(units, _)| units as usize <= column);
        let (units, byte) = at.checked_sub(1).map_or((0, 0), |i| line.checkpoints[i]);
        let rest = utf16_to_byte_offset(&text[byte as usize..], column - units as usize)?;
        Some((text, byte as usize + rest))
    }
}

/// The original name of the function the position at token `index` is in, if the minified
/// name `minified_function` can be found declared before it. Of a dotted name such as
/// `Object.ac` (a method, as engines report it) the last part is looked for.
pub fn original_function_name<'map>(
    map: &'map SourceMap,
    source: &MinifiedSource,
    index: usize,
    minified_function: &str,
) -> Option<&'map str> {
    let minified_function = minified_function
        .rsplit('.')
        .next()
        .unwrap_or(minified_function);
    if identifier_prefix(minified_function) != Some(minified_function) {
        return None;
    }
    let first = index.saturating_sub(MAX_TOKENS_BACK - 1);
    for i in (first.max(1)..=index).rev() {
        let token = map.get_token(i)?;
        let (line, column) = token.get_dst();
        if source.identifier_at(line, column) != Some(minified_function) {
            continue;
        }
        let before = map.get_token(i - 1)?;
        let (line, column) = before.get_dst();
        if source.identifier_at(line, column) == Some("function") {
            return token.get_name();
        }
    }
    None
}

/// Index of the last token at or before the 0-based position (`lookup_token` finds the same
/// position, and of several tokens there the first).
pub fn token_index_at(map: &SourceMap, line: u32, column: u32) -> Option<usize> {
    let (mut low, mut high) = (0, map.get_token_count() as usize);
    while low < high {
        let middle = low + (high - low) / 2;
        if map.get_token(middle)?.get_dst() <= (line, column) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low.checked_sub(1)
}

/// For a line that is not ASCII: `(UTF-16 units, byte offset)` of the character at or just
/// after each multiple of `CHECKPOINT_UNITS` units. Empty for an ASCII line.
fn checkpoints(line: &str) -> Vec<(u32, u32)> {
    if line.is_ascii() {
        return Vec::new();
    }
    let mut points = Vec::with_capacity(line.len() / CHECKPOINT_UNITS + 1);
    let mut units = 0;
    let mut next = 0;
    for (offset, c) in line.char_indices() {
        if units >= next {
            points.push((units as u32, offset as u32));
            next = units - units % CHECKPOINT_UNITS + CHECKPOINT_UNITS;
        }
        units += c.len_utf16();
    }
    points
}

fn identifier_prefix(text: &str) -> Option<&str> {
    let is_part = |c: char| c == '$' || c == '_' || c.is_alphanumeric();
    let end = text.find(|c: char| !is_part(c)).unwrap_or(text.len());
    let identifier = &text[..end];
    let first = identifier.chars().next()?;
    (!first.is_ascii_digit()).then_some(identifier)
}

fn utf16_to_byte_offset(text: &str, column: usize) -> Option<usize> {
    let mut units = 0;
    for (offset, c) in text.char_indices() {
        if units >= column {
            return Some(offset);
        }
        units += c.len_utf16();
    }
    (units >= column).then_some(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sourcemap::SourceMapBuilder;

    /// `function a(b){…}function c(d){throw e}` after `prefix`, with `a` → `applyCoupon` and
    /// `c` → `checkout`; and the (line, UTF-16 column) of the `throw`.
    fn map_and_source(prefix: &str) -> (SourceMap, MinifiedSource, (u32, u32)) {
        let text = format!("{prefix}function a(b){{return b}}function c(d){{throw d}}");
        let position = |needle: &str| {
            let at = text.find(needle).unwrap();
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line = text[..at].matches('\n').count() as u32;
            (line, text[line_start..at].encode_utf16().count() as u32)
        };
        let mut builder = SourceMapBuilder::new(None);
        for (needle, name) in [
            ("function a", None),
            ("a(b)", Some("applyCoupon")),
            ("function c", None),
            ("c(d)", Some("checkout")),
            ("throw", None),
        ] {
            let (line, column) = position(needle);
            builder.add(line, column, 1, 0, Some("src/a.ts"), name, false);
        }
        let throw = position("throw");
        (builder.into_sourcemap(), MinifiedSource::new(text), throw)
    }

    #[test]
    fn the_enclosing_function_gets_its_original_name() {
        for prefix in ["", "var s=\"é😀\";\n", "var s=\"é😀\";", "\r\n"] {
            let (map, source, (line, column)) = map_and_source(prefix);
            let index = token_index_at(&map, line, column).unwrap();
            assert_eq!(
                original_function_name(&map, &source, index, "c"),
                Some("checkout"),
                "{prefix:?}"
            );
            assert_eq!(
                original_function_name(&map, &source, index, "Object.c"),
                Some("checkout")
            );
            assert_eq!(original_function_name(&map, &source, index, "zz"), None);
            assert_eq!(original_function_name(&map, &source, index, "c.zz"), None);
            assert_eq!(original_function_name(&map, &source, index, "c()"), None);
        }
    }

    #[test]
    fn columns_on_a_long_line_that_is_not_ascii_are_found_from_checkpoints() {
        let line: String = (0..500)
            .map(|i| match i % 7 {
                0 => "é",
                3 => "😀",
                _ => "ab",
            })
            .collect();
        let source = MinifiedSource::new(format!("{line}\nnext"));
        let units = line.encode_utf16().count();
        for column in 0..units + 3 {
            let found = source
                .byte_offset(0, column as u32)
                .map(|(_, offset)| offset);
            assert_eq!(
                found,
                utf16_to_byte_offset(&line, column),
                "column {column}"
            );
        }
        assert_eq!(source.byte_offset(1, 2).map(|(_, o)| o), Some(2));
    }

    #[test]
    fn positions_and_identifiers() {
        let (map, _, (_, column)) = map_and_source("");
        assert_eq!(token_index_at(&map, 0, column), Some(4));
        assert_eq!(token_index_at(&map, 0, column + 3), Some(4));
        assert_eq!(token_index_at(&map, 0, 0), Some(0));
        assert_eq!(identifier_prefix("$a_1(b)"), Some("$a_1"));
        assert_eq!(identifier_prefix("1a"), None);
        assert_eq!(identifier_prefix("(a"), None);
        assert_eq!(utf16_to_byte_offset("é😀x", 3), Some(6));
        assert_eq!(utf16_to_byte_offset("ab", 5), None);
    }
}
