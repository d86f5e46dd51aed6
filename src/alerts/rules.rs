//! The alert rules operators type: a spike threshold (`100/5m`) and a cooldown (`30m`).

/// `N/Mm` (or `N/Mh`): more than N events within M minutes. Returns `(N, minutes)`.
pub fn parse_spike(text: &str) -> Result<(i32, i32), String> {
    let invalid = || format!("{text:?} is not a spike threshold such as 100/5m");
    let (events, window) = text.trim().split_once('/').ok_or_else(invalid)?;
    let events: i32 = events.trim().parse().map_err(|_| invalid())?;
    let minutes = parse_minutes(window).map_err(|_| invalid())?;
    if events < 1 {
        return Err(invalid());
    }
    Ok((events, minutes))
}

/// `30m`, `2h`, `1d` or plain minutes, from 1 minute to 7 days.
pub fn parse_minutes(text: &str) -> Result<i32, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a duration such as 30m, 2h or 1d");
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 'm'),
    };
    let number: i32 = number.trim().parse().map_err(|_| invalid())?;
    let minutes = match unit {
        'm' => Some(number),
        'h' => number.checked_mul(60),
        'd' => number.checked_mul(24 * 60),
        _ => None,
    }
    .ok_or_else(invalid)?;
    if (1..=7 * 24 * 60).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spikes_and_durations_read_as_operators_write_them() {
        assert_eq!(parse_spike("100/5m"), Ok((100, 5)));
        assert_eq!(parse_spike(" 20 / 1h "), Ok((20, 60)));
        assert!(parse_spike("100").is_err());
        assert!(parse_spike("0/5m").is_err());
        assert!(parse_spike("x/5m").is_err());
        assert_eq!(parse_minutes("30m"), Ok(30));
        assert_eq!(parse_minutes("45"), Ok(45));
        assert_eq!(parse_minutes("1d"), Ok(1440));
        assert!(parse_minutes("0m").is_err());
        assert!(parse_minutes("9999d").is_err());
        assert!(parse_minutes("5w").is_err());
    }
}
