//! Operators' credentials, one rule each for the CLI, start-up and the dashboard: e-mail
//! normalisation, the minimum password length, Argon2id hashes, and random tokens stored
//! hashed (sessions, CSRF, API tokens).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The shortest password accepted anywhere.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("{0:?} is not an e-mail address")]
    InvalidEmail(String),
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
}

/// The form every e-mail address is stored and looked up in: trimmed and lower-case.
pub fn canonical_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// [`canonical_email`], refused when it cannot be an address (for accounts being created).
pub fn normalize_email(email: &str) -> Result<String, CredentialError> {
    let email = canonical_email(email);
    if email.contains('@') && email.len() <= MAX_EMAIL_BYTES {
        Ok(email)
    } else {
        Err(CredentialError::InvalidEmail(email))
    }
}

/// A password long enough to be set.
pub fn check_password(password: &str) -> Result<(), CredentialError> {
    if password.chars().count() >= MIN_PASSWORD_CHARS {
        Ok(())
    } else {
        Err(CredentialError::PasswordTooShort)
    }
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("could not hash the password: {e}"))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Verifying against this when the e-mail is unknown makes both answers take as long.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// 32 random bytes as hex: session ids, CSRF tokens, API tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored instead of a token, so a copy of the database opens no session.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares in time independent of where the strings differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("garbage", "correct horse"));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, "x"));
    }

    #[test]
    fn emails_are_trimmed_lower_case_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        assert!(normalize_email("not-an-address").is_err());
        assert!(normalize_email(&format!("{}@x.org", "a".repeat(260))).is_err());
    }

    #[test]
    fn passwords_have_a_minimum_length_in_characters() {
        assert!(check_password("sieben7").is_err());
        assert!(check_password("achtacht").is_ok());
        assert!(check_password("ééééééé").is_err());
    }
}
