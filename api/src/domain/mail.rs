//! The mail outbox: messages are inserted in the same transaction as the
//! token they carry, and a worker on every replica delivers them.
//!
//! - **Nothing lost.** A message exists once its transaction commits; a
//!   failed attempt is retried with exponential backoff (`MAIL_RETRY_BASE`,
//!   doubling, at most an hour apart) until `MAIL_MAX_ATTEMPTS`, then marked
//!   dead (and counted). A 5xx answer or a malformed address is dead at once.
//! - **Not sent twice.** A worker claims a batch by stamping a lease
//!   (`locked_until`) in one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//!   LOCKED)` (SQLite has one writer: the statement alone is atomic), and
//!   records the outcome only while it still holds that lease. The one window
//!   left is a process dying between the SMTP server's acceptance and that
//!   record: the message goes out again after the lease, with the same
//!   `Message-ID`.
//! - **Same answer time for every address.** `requestPasswordReset` queues a
//!   `reset_request` row whatever the email; the worker looks the address up
//!   and turns the row into the reset mail (with a fresh token) or drops it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::mail_outbox::{self, Column as Outbox};
use entity::user::{self, UserStatus};
use sea_orm::sea_query::{Expr, Func, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, ConnectionTrait, EntityTrait as _,
    FromQueryResult, PaginatorTrait as _, QueryFilter as _, QuerySelect as _, Set,
};
use uuid::Uuid;

use super::audit::{self, Action, Event};
use super::email_tokens::{self, Purpose};
use super::tx::Tx;
use super::{RequestMeta, now};
use crate::error::AppResult;
use crate::infra::mailer::{MailError, Outgoing};
use crate::state::App;

/// A message ready to queue.
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

const MESSAGE: &str = "message";
const RESET_REQUEST: &str = "reset_request";

/// How long a claimed batch is ours: beyond a whole batch of attempts at
/// their deadline (10 × 30 s), so no other worker takes a message of it
/// while it is still being sent.
const LEASE: chrono::Duration = chrono::Duration::minutes(10);
/// Messages one round claims.
const BATCH: u64 = 10;
/// One delivery attempt, start to end (lettre's own timeout covers only the
/// connect). Ten of them fit well inside the lease.
const SEND_DEADLINE: Duration = Duration::from_secs(30);
/// A round at least this often, and at once when a commit queued mail.
const TICK: Duration = Duration::from_secs(1);
/// Gauges and the purge run every so many rounds.
const HOUSEKEEPING_EVERY: u32 = 15;
/// Rows one purge statement deletes.
const PURGE_BATCH: u64 = 1000;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

fn link(app: &App, path: &str, token: &str) -> String {
    // PUBLIC_URL only, never the request's Host header.
    format!(
        "{}/{path}?token={token}",
        app.config.public_url.trim_end_matches('/')
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn compose(subject: &str, intro: &str, action: &str, url: &str, valid_for: Duration) -> Composed {
    let valid = humantime::format_duration(valid_for);
    Composed {
        subject: subject.to_owned(),
        text: format!(
            "{intro}\n\n{action}:\n{url}\n\nThe link works once and for {valid}. \
             If you did not ask for this, ignore this message.\n"
        ),
        html: format!(
            "<!doctype html><html><body><p>{intro}</p>\
             <p><a href=\"{href}\">{action}</a></p>\
             <p>Or paste this address into your browser:<br>{href}</p>\
             <p>The link works once and for {valid}. If you did not ask for this, \
             ignore this message.</p></body></html>",
            intro = html_escape(intro),
            action = html_escape(action),
            href = html_escape(url),
        ),
    }
}

/// The email-verification message carrying `token`.
pub fn verification_mail(app: &App, token: &str) -> Composed {
    compose(
        "Verify your email address",
        "Please confirm that this is your email address.",
        "Verify your email address",
        &link(app, "verify-email", token),
        app.config.mail.verification_ttl,
    )
}

/// The password-reset message carrying `token`.
pub fn reset_mail(app: &App, token: &str) -> Composed {
    compose(
        "Reset your password",
        "Someone (hopefully you) asked to reset the password of your account.",
        "Choose a new password",
        &link(app, "reset-password", token),
        app.config.mail.reset_ttl,
    )
}

fn row(kind: &str, user_id: Option<Uuid>, to: &str, mail: Composed) -> mail_outbox::ActiveModel {
    let at = now();
    mail_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        recipient: Set(to.to_owned()),
        subject: Set(mail.subject),
        body_text: Set(mail.text),
        body_html: Set(Some(mail.html)),
        attempts: Set(0),
        next_attempt_at: Set(at),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(at),
        sent_at: Set(None),
        kind: Set(kind.to_owned()),
        user_id: Set(user_id),
        dead_at: Set(None),
    }
}

/// Queues `mail` to `to` inside the caller's transaction. Call [`queued`]
/// after the commit.
///
/// # Errors
/// `Internal` when the insert fails.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    to: &str,
    mail: Composed,
) -> AppResult<()> {
    row(MESSAGE, Some(user_id), to, mail).insert(conn).await?;
    Ok(())
}

/// Queues a password-reset request for `email`, known or not: the same
/// single insert either way. The request's network facts ride along for
/// the audit event the worker records.
///
/// # Errors
/// `Internal` when the insert fails.
pub async fn enqueue_reset_request<C: ConnectionTrait>(
    conn: &C,
    email: &str,
    meta: &RequestMeta,
) -> AppResult<()> {
    let facts =
        serde_json::json!({ "ip": meta.ip_string(), "userAgent": meta.user_agent_trimmed() });
    let pending = Composed {
        subject: String::new(),
        text: facts.to_string(),
        html: String::new(),
    };
    let mut model = row(RESET_REQUEST, None, email, pending);
    model.body_html = Set(None);
    model.insert(conn).await?;
    Ok(())
}

/// After a commit that queued a message: counts it and wakes the local
/// worker.
pub fn queued(app: &App, kind: &'static str) {
    metrics::counter!("usergraph_mail_queued_total", "kind" => kind).increment(1);
    app.mail_queued.notify_one();
}

/// Runs the delivery worker of this replica until the application is dropped.
/// Each round runs as a task of its own: a panic ends that round (its
/// messages come back after their lease), not the worker.
pub fn spawn_worker(state: &crate::state::AppState) {
    let weak = Arc::downgrade(&state.0);
    tokio::spawn(crate::db::in_background(async move {
        let mut round: u32 = 0;
        let mut failing = false;
        loop {
            let Some(app) = weak.upgrade() else { break };
            let housekeep = round.is_multiple_of(HOUSEKEEPING_EVERY);
            round = round.wrapping_add(1);
            let this_round = Arc::clone(&app);
            let outcome = tokio::spawn(crate::db::in_background(async move {
                if housekeep && let Err(e) = housekeeping(&this_round).await {
                    tracing::debug!(error = e.message(), "mail housekeeping failed");
                }
                deliver_due(&this_round).await
            }))
            .await;
            match outcome {
                Ok(Ok(_)) if failing => {
                    tracing::info!("mail worker: database reachable again");
                    failing = false;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = e.message(), "mail worker: database unavailable");
                    }
                    failing = true;
                }
                Err(e) => tracing::error!(error = %e, "a mail delivery round panicked"),
            }
            // Wait for a tick or a wake-up without keeping the app alive.
            let wake = Arc::clone(&app.mail_queued);
            drop(app);
            let _ = tokio::time::timeout(TICK, wake.notified()).await;
        }
    }));
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: u64,
    pub failed: u64,
    pub dead: u64,
    pub dropped: u64,
}

/// Claims due messages and delivers them, one at a time.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn deliver_due(app: &App) -> AppResult<Round> {
    let at = now();
    let lease = at + LEASE;
    let due = Query::select()
        .column(Outbox::Id)
        .from(mail_outbox::Entity)
        .and_where(Outbox::SentAt.is_null())
        .and_where(Outbox::DeadAt.is_null())
        .and_where(Outbox::NextAttemptAt.lte(at))
        .cond_where(
            Condition::any()
                .add(Outbox::LockedUntil.is_null())
                .add(Outbox::LockedUntil.lt(at)),
        )
        .order_by(Outbox::NextAttemptAt, sea_orm::sea_query::Order::Asc)
        .limit(BATCH)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let claimed = mail_outbox::Entity::update_many()
        .col_expr(Outbox::LockedUntil, Expr::value(lease))
        .filter(Outbox::Id.in_subquery(due))
        .exec_with_returning(&app.db.write)
        .await?;
    let mut round = Round::default();
    let mut claimed = claimed.into_iter();
    while let Some(message) = claimed.next() {
        // Every attempt ends well inside the lease, so no other worker can
        // claim a message while it is still being sent.
        if now() + chrono::Duration::from_std(SEND_DEADLINE).unwrap_or_default() * 2 > lease {
            let rest: Vec<Uuid> = std::iter::once(message.id)
                .chain(claimed.map(|m| m.id))
                .collect();
            release(app, &rest, lease).await;
            break;
        }
        let (id, attempts) = (message.id, message.attempts);
        // One message's failure is that message's: the rest of the batch
        // still goes, and this one is retried later like a failed delivery.
        if let Err(e) = handle(app, message, lease, &mut round).await {
            tracing::warn!(message_id = %id, error = e.message(), "mail message not handled");
            let failure = MailError {
                permanent: false,
                message: e.message(),
            };
            let _ = record_failure(app, id, attempts, lease, &failure, &mut round).await;
        }
    }
    Ok(round)
}

/// Gives messages back before their lease runs out.
async fn release(app: &App, ids: &[Uuid], lease: DateTime<Utc>) {
    let _ = mail_outbox::Entity::update_many()
        .col_expr(
            Outbox::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(Outbox::Id.is_in(ids.to_vec()))
        .filter(Outbox::LockedUntil.eq(lease))
        .exec(&app.db.write)
        .await;
}

async fn handle(
    app: &App,
    message: mail_outbox::Model,
    lease: DateTime<Utc>,
    round: &mut Round,
) -> AppResult<()> {
    let message = if message.kind == RESET_REQUEST {
        match resolve_reset_request(app, message, lease).await? {
            Some(message) => message,
            None => {
                round.dropped += 1;
                return Ok(());
            }
        }
    } else {
        message
    };
    deliver(app, message, lease, round).await
}

/// Turns a reset request into the reset mail of the account it names, or
/// drops it when there is none; audited either way. The token, the message
/// and the event commit together.
async fn resolve_reset_request(
    app: &App,
    request: mail_outbox::Model,
    lease: DateTime<Utc>,
) -> AppResult<Option<mail_outbox::Model>> {
    let facts: serde_json::Value = serde_json::from_str(&request.body_text).unwrap_or_default();
    let meta = RequestMeta {
        ip: facts["ip"].as_str().and_then(|ip| ip.parse().ok()),
        user_agent: facts["userAgent"].as_str().map(str::to_owned),
        // What a proxy named a client that had no address (see `ip_string`).
        forwarded_as: facts["ip"]
            .as_str()
            .filter(|s| s.parse::<std::net::IpAddr>().is_err())
            .map(str::to_owned),
    };
    let txn = Tx::begin(app).await?;
    // The row lock serialises two workers resolving requests for one
    // account: the cooldown and the superseding then hold. A write, so a
    // SQLite transaction becomes the writer at once.
    let account = user::Entity::update_many()
        .col_expr(user::Column::Version, Expr::col(user::Column::Version))
        .filter(user::Column::Email.eq(request.recipient.as_str()))
        .filter(user::Column::Status.eq(UserStatus::Active))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next();
    let Some(account) = account else {
        audit::record(
            &txn,
            &meta,
            Event::new(Action::PasswordResetRequested)
                .metadata(serde_json::json!({ "email": request.recipient, "sent": false })),
        )
        .await?;
        mail_outbox::Entity::delete_many()
            .filter(Outbox::Id.eq(request.id))
            .filter(Outbox::LockedUntil.eq(lease))
            .exec(&txn)
            .await?;
        txn.commit(app).await?;
        return Ok(None);
    };
    let cooldown = chrono::Duration::from_std(app.config.mail.reset_cooldown).unwrap_or_default();
    if email_tokens::issued_since(&txn, Purpose::ResetPassword, account.id, now() - cooldown)
        .await?
    {
        // A reset mail went out a moment ago: no flood of mails (each would
        // also void the link before it).
        audit::record(
            &txn,
            &meta,
            Event::new(Action::PasswordResetRequested)
                .target(account.id)
                .metadata(serde_json::json!({ "sent": false, "reason": "cooldown" })),
        )
        .await?;
        mail_outbox::Entity::delete_many()
            .filter(Outbox::Id.eq(request.id))
            .filter(Outbox::LockedUntil.eq(lease))
            .exec(&txn)
            .await?;
        txn.commit(app).await?;
        return Ok(None);
    }
    let token = email_tokens::issue(
        &txn,
        Purpose::ResetPassword,
        account.id,
        &account.email,
        app.config.mail.reset_ttl,
    )
    .await?;
    let mail = reset_mail(app, &token);
    let updated = mail_outbox::Entity::update_many()
        .col_expr(Outbox::Kind, Expr::value(MESSAGE))
        .col_expr(Outbox::UserId, Expr::value(account.id))
        .col_expr(Outbox::Subject, Expr::value(mail.subject))
        .col_expr(Outbox::BodyText, Expr::value(mail.text))
        .col_expr(Outbox::BodyHtml, Expr::value(mail.html))
        .filter(Outbox::Id.eq(request.id))
        .filter(Outbox::LockedUntil.eq(lease))
        .exec_with_returning(&txn)
        .await?;
    let Some(message) = updated.into_iter().next() else {
        // Our lease ran out and another worker has it: leave it to them.
        return Ok(None);
    };
    audit::record(
        &txn,
        &meta,
        Event::new(Action::PasswordResetRequested)
            .target(account.id)
            .metadata(serde_json::json!({ "sent": true })),
    )
    .await?;
    txn.commit(app).await?;
    metrics::counter!("usergraph_mail_queued_total", "kind" => "password_reset").increment(1);
    Ok(Some(message))
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts − 1), capped,
/// with up to a tenth of jitter so replicas do not retry in step.
fn backoff(base: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let jitter = f64::from(Uuid::new_v4().as_bytes()[0]) / 2560.0;
    base.saturating_mul(1 << doublings)
        .mul_f64(1.0 + jitter)
        .min(MAX_BACKOFF)
}

async fn deliver(
    app: &App,
    message: mail_outbox::Model,
    lease: DateTime<Utc>,
    round: &mut Round,
) -> AppResult<()> {
    let outgoing = Outgoing {
        id: message.id,
        to: message.recipient.clone(),
        subject: message.subject.clone(),
        text: message.body_text.clone(),
        html: message.body_html.clone(),
    };
    // A whole attempt, not only the connect: a server that accepts and then
    // stalls must not hold the message (or this worker) past its lease.
    let result = match tokio::time::timeout(SEND_DEADLINE, app.mailer.send(&outgoing)).await {
        Ok(result) => result,
        Err(_) => Err(MailError {
            permanent: false,
            message: format!("no answer within {}s", SEND_DEADLINE.as_secs()),
        }),
    };
    match result {
        Ok(()) => {
            metrics::counter!("usergraph_mail_sent_total").increment(1);
            round.sent += 1;
            // Sent: recording it must not turn into a resend. A few tries;
            // if all fail, the lease is kept, so the message comes back only
            // after it (at most one duplicate, with the same Message-ID).
            for attempt in 0..3 {
                // The body held a live link: not kept once it is out.
                let recorded = mail_outbox::Entity::update_many()
                    .col_expr(Outbox::SentAt, Expr::value(now()))
                    .col_expr(Outbox::BodyText, Expr::value(""))
                    .col_expr(Outbox::BodyHtml, Expr::value(Option::<String>::None))
                    .col_expr(
                        Outbox::LockedUntil,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(Outbox::Attempts, Expr::value(message.attempts + 1))
                    .filter(Outbox::Id.eq(message.id))
                    .filter(Outbox::LockedUntil.eq(lease))
                    .exec(&app.db.write)
                    .await;
                match recorded {
                    Ok(_) => return Ok(()),
                    Err(e) if attempt == 2 => {
                        tracing::error!(message_id = %message.id, error = %e, "mail sent but not recorded; kept until its lease ends");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            Ok(())
        }
        Err(e) => record_failure(app, message.id, message.attempts, lease, &e, round).await,
    }
}

/// A failed attempt: retried after a backoff, or given up (and its body,
/// with its link, dropped) after the last attempt or a permanent failure.
async fn record_failure(
    app: &App,
    id: Uuid,
    attempts_before: i32,
    lease: DateTime<Utc>,
    e: &MailError,
    round: &mut Round,
) -> AppResult<()> {
    let attempts = attempts_before + 1;
    let error: String = e.message.chars().take(1000).collect();
    metrics::counter!("usergraph_mail_delivery_failures_total").increment(1);
    let max = i32::try_from(app.config.mail.max_attempts).unwrap_or(i32::MAX);
    let update = mail_outbox::Entity::update_many()
        .filter(Outbox::Id.eq(id))
        .filter(Outbox::LockedUntil.eq(lease))
        .col_expr(Outbox::Attempts, Expr::value(attempts))
        .col_expr(Outbox::LastError, Expr::value(error.clone()))
        .col_expr(
            Outbox::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    if e.permanent || attempts >= max {
        update
            .col_expr(Outbox::DeadAt, Expr::value(now()))
            .col_expr(Outbox::BodyText, Expr::value(""))
            .col_expr(Outbox::BodyHtml, Expr::value(Option::<String>::None))
            .exec(&app.db.write)
            .await?;
        metrics::counter!("usergraph_mail_dead_total").increment(1);
        tracing::error!(message_id = %id, attempts, error, "mail given up");
        round.dead += 1;
    } else {
        let wait = backoff(app.config.mail.retry_base, attempts);
        let next = now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
        update
            .col_expr(Outbox::NextAttemptAt, Expr::value(next))
            .exec(&app.db.write)
            .await?;
        tracing::warn!(message_id = %id, attempts, ?wait, error, "mail delivery failed; will retry");
        round.failed += 1;
    }
    Ok(())
}

#[derive(FromQueryResult)]
struct Backlog {
    pending: i64,
    oldest: Option<DateTime<Utc>>,
}

/// Outbox gauges (one indexed query, not per scrape) and the purge of sent
/// and dead messages past `MAIL_RETENTION` and of email tokens a day past
/// their expiry, in short batches.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn housekeeping(app: &App) -> AppResult<()> {
    let backlog = mail_outbox::Entity::find()
        .select_only()
        .column_as(Expr::expr(Func::count(Expr::col(Outbox::Id))), "pending")
        .column_as(
            Expr::expr(Func::min(Expr::col(Outbox::CreatedAt))),
            "oldest",
        )
        .filter(Outbox::SentAt.is_null())
        .filter(Outbox::DeadAt.is_null())
        .into_model::<Backlog>()
        .one(&app.db.write)
        .await?;
    if let Some(backlog) = backlog {
        metrics::gauge!("usergraph_mail_outbox_pending").set(backlog.pending as f64);
        let age = backlog.oldest.map_or(0.0, |at| {
            (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("usergraph_mail_outbox_oldest_pending_seconds").set(age);
    }
    let cutoff = now()
        - chrono::Duration::from_std(app.config.mail.retention)
            .unwrap_or(chrono::Duration::days(7));
    for done in [Outbox::SentAt, Outbox::DeadAt] {
        super::delete_older_than::<mail_outbox::Entity>(app, Outbox::Id, done, cutoff, PURGE_BATCH)
            .await?;
    }
    email_tokens::purge_expired(app).await?;
    Ok(())
}

/// Messages of `user_id` still waiting (for tests and the account deletion).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn pending_for(app: &App, user_id: Uuid) -> AppResult<u64> {
    Ok(mail_outbox::Entity::find()
        .filter(Outbox::UserId.eq(user_id))
        .filter(Outbox::SentAt.is_null())
        .filter(Outbox::DeadAt.is_null())
        .count(&app.db.write)
        .await?)
}

/// Drops the pending mail of an account being deleted, in its transaction:
/// its links would lead nowhere.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn drop_pending<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> AppResult<()> {
    mail_outbox::Entity::delete_many()
        .filter(Outbox::UserId.eq(user_id))
        .filter(Outbox::SentAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}
