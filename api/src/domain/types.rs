//! Validated input values: an [`EmailAddress`], a [`DisplayName`], a
//! [`Password`] that meets the policy. Each parse either returns the clean
//! value or an [`AppError::BadUserInput`] naming the field, and runs before
//! any database or hashing work.

use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;

use crate::error::AppError;

/// A trimmed, lower-cased, syntactically valid email address (≤ 254 chars).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    /// # Errors
    /// `BAD_USER_INPUT` (field `email`) when the address is empty, too long or malformed.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        Self::parse_field(raw, "email")
    }

    /// Like [`EmailAddress::parse`], naming another input field in the error.
    pub fn parse_field(raw: &str, field: &str) -> Result<Self, AppError> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(AppError::bad_input(field, "Email is required"));
        }
        if email.chars().count() > Self::MAX_LEN {
            return Err(AppError::bad_input(
                field,
                "Email must be at most 254 characters",
            ));
        }
        let valid = !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email_address::EmailAddress::parse_with_options(
                &email,
                email_address::Options::default()
                    .without_display_text()
                    .without_domain_literal(),
            )
            .is_ok()
            && email.rsplit_once('@').is_some_and(|(_, domain)| {
                domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            });
        if !valid {
            return Err(AppError::bad_input(field, "Email is not a valid address"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

/// A display name: trimmed, 1–100 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    /// # Errors
    /// `BAD_USER_INPUT` (field `displayName`) when empty after trimming, too
    /// long, or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(AppError::bad_input(
                "displayName",
                "Display name must not be empty",
            ));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(AppError::bad_input(
                "displayName",
                "Display name must be at most 100 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(AppError::bad_input(
                "displayName",
                "Display name must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A password that meets the policy of API.md §4 (NIST SP 800-63B), already
/// NFKC-normalized: the form that is hashed and verified, so NFC and NFD
/// input log in alike.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The common-password list (see `api/data/README.md` for its source).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;
    /// Longer raw input cannot normalize to 128 code points; refused before
    /// normalizing so a megabyte costs nothing.
    const MAX_RAW_CHARS: usize = 4 * Self::MAX_CHARS;

    /// Normalizes without judging: for verifying an existing password at
    /// login, where the policy of the day must not lock anyone out. Still
    /// bounded, so no megabyte reaches the hasher.
    ///
    /// # Errors
    /// `BAD_USER_INPUT` on `field` when empty or longer than any valid password.
    pub fn for_verification(raw: &str, field: &str) -> Result<Self, AppError> {
        if raw.is_empty() {
            return Err(AppError::bad_input(field, "Password is required"));
        }
        if raw.len() > 4 * Self::MAX_RAW_CHARS || raw.chars().count() > Self::MAX_RAW_CHARS {
            return Err(AppError::bad_input(
                field,
                "Password must be at most 128 characters",
            ));
        }
        Ok(Self(raw.nfkc().collect()))
    }

    /// Checks a new password against the policy: 8–128 code points after
    /// NFKC, not a common password, not containing the email's local part.
    ///
    /// # Errors
    /// `BAD_USER_INPUT` on `field` (`password` or `newPassword`) naming the rule broken.
    pub fn new_checked(raw: &str, email: &EmailAddress, field: &str) -> Result<Self, AppError> {
        let password = Self::for_verification(raw, field)?;
        let chars = password.0.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(AppError::bad_input(
                field,
                "Password must be at least 8 characters",
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(AppError::bad_input(
                field,
                "Password must be at most 128 characters",
            ));
        }
        let lower = password.0.to_lowercase();
        if COMMON_PASSWORDS.contains(lower.as_str()) {
            return Err(AppError::bad_input(
                field,
                "Password is too common; choose another",
            ));
        }
        // Local parts of one or two characters would forbid half the alphabet.
        let local = email.local_part();
        if local.chars().count() >= 3 && lower.contains(local) {
            return Err(AppError::bad_input(
                field,
                "Password must not contain your email address",
            ));
        }
        Ok(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: AppError) -> String {
        match err {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(
            EmailAddress::parse("  Alice@Example.COM ")
                .unwrap()
                .as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "   ",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "alice@example",
            "alice@@example.com",
        ] {
            assert_eq!(
                field_of(EmailAddress::parse(bad).unwrap_err()),
                "email",
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().into_string(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse("bad\u{7}name").is_err());
    }

    #[test]
    fn password_policy() {
        let email = EmailAddress::parse("alice@example.com").unwrap();
        assert!(Password::new_checked("correct horse battery", &email, "password").is_ok());
        for bad in [
            "short",
            "password",
            "12345678",
            "qwertyuiop",
            "password1",
            "PassWord1",
            "xxalice123xx",
        ] {
            assert_eq!(
                field_of(Password::new_checked(bad, &email, "newPassword").unwrap_err()),
                "newPassword",
                "{bad}"
            );
        }
        assert!(Password::new_checked(&"x".repeat(129), &email, "password").is_err());
        assert!(Password::new_checked(&"🔑".repeat(128), &email, "password").is_ok());
    }

    #[test]
    fn nfc_and_nfd_normalize_alike() {
        let email = EmailAddress::parse("bob@example.com").unwrap();
        let nfc = Password::new_checked("caf\u{e9} au lait 42", &email, "password").unwrap();
        let nfd = Password::new_checked("cafe\u{301} au lait 42", &email, "password").unwrap();
        assert_eq!(nfc.expose(), nfd.expose());
    }

    #[test]
    fn a_megabyte_is_refused_before_normalizing() {
        let email = EmailAddress::parse("bob@example.com").unwrap();
        let err = Password::new_checked(&"a".repeat(1 << 20), &email, "password").unwrap_err();
        assert_eq!(err.message(), "Password must be at most 128 characters");
    }

    #[test]
    fn the_common_list_is_large() {
        assert!(COMMON_PASSWORDS.len() >= 10_000);
    }
}
