//! What a project may be called, the same for the CLI and the dashboard.

/// The longest project name, in characters (not bytes: "café" is four).
pub const MAX_PROJECT_NAME_CHARS: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a project name has 1 to {MAX_PROJECT_NAME_CHARS} characters")]
pub struct InvalidProjectName;

/// The name as stored: trimmed, 1 to [`MAX_PROJECT_NAME_CHARS`] characters.
pub fn parse_project_name(name: &str) -> Result<&str, InvalidProjectName> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_PROJECT_NAME_CHARS {
        Err(InvalidProjectName)
    } else {
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_counted_in_characters() {
        assert_eq!(parse_project_name("  shop ").unwrap(), "shop");
        assert!(parse_project_name("   ").is_err());
        assert!(parse_project_name(&"é".repeat(100)).is_ok());
        assert!(parse_project_name(&"é".repeat(101)).is_err());
    }
}
