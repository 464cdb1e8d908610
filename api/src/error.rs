//! The one error type of usergraph and how it reaches clients.
//!
//! Which variant to use:
//! - the caller sent something invalid → [`AppError::BadUserInput`] naming the
//!   input field (`email`, `password`, `displayName`, `first`, …);
//! - no or a dead access token, or wrong credentials → `Unauthenticated`;
//! - signed in but not allowed → `Forbidden`;
//! - a refresh, verification or reset token that does not work → `InvalidToken`;
//! - a unique value is taken → `Conflict`;
//! - anything the caller cannot fix → `Internal`, wrapping the cause. The cause
//!   is logged once, with its whole chain; the client sees only "Internal
//!   server error" (no SQL, no paths, no stack).
//!
//! `AppError` deliberately does not implement `Display`: async-graphql turns
//! every `Display` type into an error through a blanket `From`, which would
//! drop `extensions.code`. Our own `From<AppError> for async_graphql::Error`
//! keeps it, so `?` in a resolver is always safe.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every failure a request can end in; each maps to one contract code.
#[derive(Debug)]
pub enum AppError {
    /// 400 `BAD_USER_INPUT`: validation failed for `field`.
    BadUserInput { field: String, message: String },
    /// 401 `UNAUTHENTICATED`.
    Unauthenticated(String),
    /// 403 `FORBIDDEN`.
    Forbidden(String),
    /// 404 `NOT_FOUND`.
    NotFound(String),
    /// 409 `CONFLICT`: a unique value (`field`) is taken.
    Conflict { field: String, message: String },
    /// 423 `ACCOUNT_LOCKED`, unlocking in `retry_after` seconds.
    AccountLocked { retry_after: u64 },
    /// 429 `RATE_LIMITED`, allowed again in `retry_after` seconds.
    RateLimited { retry_after: u64 },
    /// 400 `INVALID_TOKEN`: unknown, used, expired or revoked token.
    InvalidToken(String),
    /// 400 `QUERY_TOO_COMPLEX`.
    QueryTooComplex(String),
    /// 500 `INTERNAL_SERVER_ERROR`.
    Internal(anyhow::Error),
}

/// `Result` with [`AppError`].
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadUserInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The contract's `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput { .. } => "BAD_USER_INPUT",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict { .. } => "CONFLICT",
            Self::AccountLocked { .. } => "ACCOUNT_LOCKED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::InvalidToken(_) => "INVALID_TOKEN",
            Self::QueryTooComplex(_) => "QUERY_TOO_COMPLEX",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status for REST routes.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadUserInput { .. } | Self::InvalidToken(_) | Self::QueryTooComplex(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::AccountLocked { .. } => StatusCode::LOCKED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a client may see.
    pub fn message(&self) -> String {
        match self {
            Self::BadUserInput { message, .. } | Self::Conflict { message, .. } => message.clone(),
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::InvalidToken(m)
            | Self::QueryTooComplex(m) => m.clone(),
            Self::AccountLocked { retry_after } => {
                format!("Account is locked after too many failed logins; retry in {retry_after} s")
            }
            Self::RateLimited { retry_after } => {
                format!("Too many requests; retry in {retry_after} s")
            }
            Self::Internal(_) => "Internal server error".to_owned(),
        }
    }

    /// Logs the cause of an internal error once, with its chain.
    fn log(&self) {
        if let Self::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(err).context("database"))
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(err)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        use async_graphql::ErrorExtensions;
        err.log();
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", err.code());
            match &err {
                AppError::BadUserInput { field, .. } | AppError::Conflict { field, .. } => {
                    ext.set("field", field.as_str());
                }
                AppError::AccountLocked { retry_after } | AppError::RateLimited { retry_after } => {
                    ext.set("retryAfter", *retry_after);
                }
                _ => {}
            }
        })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body =
            serde_json::json!({ "error": { "code": self.code(), "message": self.message() } });
        (self.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<AppError> {
        vec![
            AppError::bad_input("email", "bad"),
            AppError::Unauthenticated("no".into()),
            AppError::Forbidden("no".into()),
            AppError::NotFound("no".into()),
            AppError::conflict("email", "taken"),
            AppError::AccountLocked { retry_after: 60 },
            AppError::RateLimited { retry_after: 3 },
            AppError::InvalidToken("no".into()),
            AppError::QueryTooComplex("deep".into()),
            AppError::internal(anyhow::anyhow!("SELECT secret FROM users")),
        ]
    }

    #[test]
    fn every_variant_keeps_its_code_through_graphql() {
        for err in every_variant() {
            let code = err.code();
            let status = err.status();
            assert!(status.is_client_error() || status.is_server_error());
            let gql: async_graphql::Error = err.into();
            let ext = gql.extensions.expect("extensions");
            assert_eq!(ext.get("code"), Some(&async_graphql::Value::from(code)));
        }
    }

    #[test]
    fn field_and_retry_after_are_set() {
        let gql: async_graphql::Error = AppError::bad_input("displayName", "too long").into();
        let ext = gql.extensions.unwrap();
        assert_eq!(
            ext.get("field"),
            Some(&async_graphql::Value::from("displayName"))
        );
        let gql: async_graphql::Error = AppError::AccountLocked { retry_after: 42 }.into();
        assert_eq!(
            gql.extensions.unwrap().get("retryAfter"),
            Some(&async_graphql::Value::from(42u64))
        );
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let gql: async_graphql::Error = AppError::internal(anyhow::anyhow!("SELECT secret")).into();
        assert_eq!(gql.message, "Internal server error");
    }

    #[test]
    fn question_mark_in_a_resolver_keeps_the_code() {
        fn resolver() -> async_graphql::Result<()> {
            Err(AppError::InvalidToken("used".into()))?;
            Ok(())
        }
        let ext = resolver().unwrap_err().extensions.unwrap();
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("INVALID_TOKEN"))
        );
    }
}
