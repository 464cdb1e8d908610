//! Business rules over sea-orm: accounts, sessions, users, roles, audit.
//!
//! Functions here take typed inputs and return domain values or
//! [`AppError`](crate::error::AppError); they import neither async-graphql
//! nor axum, so the CLI calls them too. Every write commits with its audit
//! event in one transaction, and invalidates the cache keys it touched with
//! that commit ([`invalidations`]).

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod directory;
pub mod email_tokens;
pub mod invalidations;
pub mod mail;
pub mod roles;
pub mod self_service;
pub mod sessions;
pub mod types;
pub mod users;

use chrono::{DateTime, SubsecRound as _, Utc};

/// Who made a request, as far as the network tells.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }

    /// The user agent, cut to what the column holds.
    pub fn user_agent_trimmed(&self) -> Option<String> {
        self.user_agent
            .as_ref()
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(512).collect())
    }
}

/// The current time at the database's precision (microseconds), so a value
/// read back equals the value written (cursors compare them).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
