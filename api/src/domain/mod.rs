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
pub mod tx;
pub mod types;
pub mod users;

use chrono::{DateTime, SubsecRound as _, Utc};

/// Who made a request, as far as the network tells.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<std::net::IpAddr>,
    /// What a trusted proxy named the client when that was not an address
    /// (see `http::middleware::Client`).
    pub forwarded_as: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// The client's address for the audit log, or what a trusted proxy
    /// named it when that was not an address.
    pub fn ip_string(&self) -> Option<String> {
        self.ip
            .map(|ip| ip.to_string())
            .or_else(|| self.forwarded_as.clone())
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

/// Deletes the rows of `E` whose `column` is before `cutoff`, oldest first,
/// `batch` per statement (each statement short, whatever the backlog), until
/// none is left; returns how many. The purges of mail, link tokens and audit
/// events share it.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn delete_older_than<E>(
    app: &crate::state::App,
    id: E::Column,
    column: E::Column,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> crate::error::AppResult<u64>
where
    E: sea_orm::EntityTrait + Default,
{
    use sea_orm::sea_query::{Order, Query};
    use sea_orm::{ColumnTrait as _, QueryFilter as _};
    let mut total = 0;
    loop {
        let oldest = Query::select()
            .column(id)
            .from(E::default())
            .and_where(column.lt(cutoff))
            .order_by(column, Order::Asc)
            .limit(batch)
            .to_owned();
        let deleted = E::delete_many()
            .filter(id.in_subquery(oldest))
            .exec(&app.db.write)
            .await?
            .rows_affected;
        total += deleted;
        if deleted < batch {
            return Ok(total);
        }
    }
}
