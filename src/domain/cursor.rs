//! One format for every keyset cursor, in page links and in the API's `Link` headers:
//! `<value>:<id>:0`, shaped like Sentry's `value:offset:is_prev` so sentry-cli passes it back
//! untouched. `value` is the sort key (a count, or a time in microseconds) and `id` breaks ties.

/// A cursor that is not one Faultline wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

pub fn encode(value: i64, id: impl std::fmt::Display) -> String {
    format!("{value}:{id}:0")
}

/// The latest time a cursor may hold, exclusive: 10000-01-01. Stored times are from 1970 on;
/// a forged one outside PostgreSQL's range (before 4713 BC) made the query fail (500).
const END_OF_TIME_MICROS: i64 = 253_402_300_800_000_000;

/// A cursor's time value, from microseconds since the epoch: only 1970 to 9999 are times
/// Faultline stores.
pub fn time(micros: i64) -> Result<chrono::DateTime<chrono::Utc>, InvalidCursor> {
    if !(0..END_OF_TIME_MICROS).contains(&micros) {
        return Err(InvalidCursor);
    }
    chrono::DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)
}

/// `(value, id)` of a cursor; `None` for the first page: an empty cursor, or Sentry's
/// "no more results" cursors (`0:0:0`, `0:0:1`), which start over.
pub fn decode(cursor: &str) -> Result<Option<(i64, &str)>, InvalidCursor> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let mut parts = cursor.split(':');
    let (Some(value), Some(id)) = (parts.next(), parts.next()) else {
        return Err(InvalidCursor);
    };
    if !matches!(parts.next(), None | Some("0") | Some("1")) || parts.next().is_some() {
        return Err(InvalidCursor);
    }
    let value: i64 = value.parse().map_err(|_| InvalidCursor)?;
    if id == "0" {
        return Ok(None);
    }
    Ok(Some((value, id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = encode(1_767_268_800_123_456, 42);
        assert_eq!(cursor, "1767268800123456:42:0");
        assert_eq!(decode(&cursor), Ok(Some((1_767_268_800_123_456, "42"))));
        let event = encode(5, "0b6f1c2d3e4f40718293a4b5c6d7e8f9");
        assert_eq!(
            decode(&event),
            Ok(Some((5, "0b6f1c2d3e4f40718293a4b5c6d7e8f9")))
        );
    }

    #[test]
    fn only_times_faultline_stores_are_cursor_times() {
        assert!(time(0).is_ok());
        assert!(time(1_767_268_800_123_456).is_ok());
        assert!(time(END_OF_TIME_MICROS - 1).is_ok());
        for forged in [-1, -1_000_000_000_000_000_000, END_OF_TIME_MICROS, i64::MAX] {
            assert_eq!(time(forged), Err(InvalidCursor), "{forged}");
        }
    }

    #[test]
    fn empty_and_sentrys_end_cursors_start_over() {
        for cursor in ["", "0:0:0", "0:0:1"] {
            assert_eq!(decode(cursor), Ok(None), "{cursor:?}");
        }
    }

    #[test]
    fn anything_else_is_invalid() {
        for cursor in ["nonsense", "1", "x:1:0", "1:2:3", "1:2:0:0", "17_3"] {
            assert_eq!(decode(cursor), Err(InvalidCursor), "{cursor:?}");
        }
    }
}
