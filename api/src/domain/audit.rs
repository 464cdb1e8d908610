//! The audit log: one row per security-relevant action, written in the same
//! transaction as the change it records. Never holds a password, token or hash.

use std::sync::Arc;

use sea_orm::{ActiveModelTrait as _, ConnectionTrait, Set};
use uuid::Uuid;

use super::RequestMeta;
use super::tx::Tx;
use crate::error::AppResult;
use crate::state::App;

/// The actions of API.md §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    UserRegistered,
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    AccountUnlocked,
    Logout,
    SessionRevoked,
    TokenReuseDetected,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    EmailVerificationRequested,
    EmailVerified,
    ProfileUpdated,
    UserCreated,
    UserUpdated,
    UserDeleted,
    RoleAssigned,
    RoleRemoved,
    RoleCreated,
    RoleUpdated,
    RoleDeleted,
}

impl Action {
    /// Whether an event with this action may change what some user is
    /// permitted (a live subscription checks its caller again).
    pub fn may_change_permissions(action: &str) -> bool {
        [Self::RoleRemoved, Self::RoleUpdated, Self::RoleDeleted]
            .iter()
            .any(|a| a.as_str() == action)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "USER_REGISTERED",
            Self::LoginSucceeded => "LOGIN_SUCCEEDED",
            Self::LoginFailed => "LOGIN_FAILED",
            Self::AccountLocked => "ACCOUNT_LOCKED",
            Self::AccountUnlocked => "ACCOUNT_UNLOCKED",
            Self::Logout => "LOGOUT",
            Self::SessionRevoked => "SESSION_REVOKED",
            Self::TokenReuseDetected => "TOKEN_REUSE_DETECTED",
            Self::PasswordChanged => "PASSWORD_CHANGED",
            Self::PasswordResetRequested => "PASSWORD_RESET_REQUESTED",
            Self::PasswordReset => "PASSWORD_RESET",
            Self::EmailVerificationRequested => "EMAIL_VERIFICATION_REQUESTED",
            Self::EmailVerified => "EMAIL_VERIFIED",
            Self::ProfileUpdated => "PROFILE_UPDATED",
            Self::UserCreated => "USER_CREATED",
            Self::UserUpdated => "USER_UPDATED",
            Self::UserDeleted => "USER_DELETED",
            Self::RoleAssigned => "ROLE_ASSIGNED",
            Self::RoleRemoved => "ROLE_REMOVED",
            Self::RoleCreated => "ROLE_CREATED",
            Self::RoleUpdated => "ROLE_UPDATED",
            Self::RoleDeleted => "ROLE_DELETED",
        }
    }
}

/// One event to record.
pub struct Event {
    pub action: Action,
    pub actor_id: Option<Uuid>,
    pub target_user_id: Option<Uuid>,
    pub metadata: serde_json::Value,
}

impl Event {
    pub fn new(action: Action) -> Self {
        Self {
            action,
            actor_id: None,
            target_user_id: None,
            metadata: serde_json::json!({}),
        }
    }
    pub fn actor(mut self, id: Uuid) -> Self {
        self.actor_id = Some(id);
        self
    }
    pub fn target(mut self, id: Uuid) -> Self {
        self.target_user_id = Some(id);
        self
    }
    /// The user acted on their own account.
    pub fn by_self(self, id: Uuid) -> Self {
        self.actor(id).target(id)
    }
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Inserts the event in the transaction of the change it describes; it is
/// published to subscribers when (and if) that transaction commits.
///
/// # Errors
/// `Internal` when the insert fails (and with it the transaction).
pub async fn record(tx: &Tx, meta: &RequestMeta, event: Event) -> AppResult<()> {
    let row = insert(tx, meta, event).await?;
    tx.recorded(row);
    Ok(())
}

/// Inserts the event on its own (no change goes with it: a failed login)
/// and publishes it.
///
/// # Errors
/// `Internal` when the insert fails.
pub async fn record_now(app: &App, meta: &RequestMeta, event: Event) -> AppResult<()> {
    // In a task of its own, like a commit: a request cancelled while the
    // insert is in flight still publishes what was written.
    let (db, bus, meta) = (app.db.write.clone(), Arc::clone(&app.events), meta.clone());
    tokio::spawn(async move {
        let row = insert(&db, &meta, event).await?;
        bus.publish(vec![row]);
        Ok(())
    })
    .await
    .map_err(|e| crate::error::AppError::internal(anyhow::anyhow!("the audit task failed: {e}")))?
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    event: Event,
) -> AppResult<entity::audit_event::Model> {
    Ok(entity::audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        action: Set(event.action.as_str().to_owned()),
        actor_id: Set(event.actor_id),
        target_user_id: Set(event.target_user_id),
        ip_address: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent_trimmed()),
        metadata: Set(event.metadata),
        created_at: Set(super::now()),
    }
    .insert(conn)
    .await?)
}

/// One page of events, newest first.
pub struct Page {
    pub events: Vec<entity::audit_event::Model>,
    pub has_next: bool,
}

/// Where a page starts: just after (older than) this event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn of(event: &entity::audit_event::Model) -> Self {
        Self {
            created_at: event.created_at,
            id: event.id,
        }
    }

    /// Opaque to clients: base64url of `micros:id`.
    pub fn encode(self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// # Errors
    /// `BAD_USER_INPUT` (`after`) for anything [`Cursor::encode`] did not make.
    pub fn decode(text: &str) -> crate::error::AppResult<Self> {
        use base64::Engine as _;
        let bad = || crate::error::AppError::bad_input("after", "Not a cursor of this list");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (micros, id) = raw.split_once(':').ok_or_else(bad)?;
        let created_at = micros
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }
}

/// Which events a list shows: those naming one user (as actor or target),
/// or all of them, narrowed by the optional conditions.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub involving: Option<Uuid>,
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub target_user_id: Option<Uuid>,
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    pub before: Option<chrono::DateTime<chrono::Utc>>,
}

impl Filter {
    /// Whether `event` meets every condition (the live stream's filter; the
    /// same as [`Filter::condition`] in SQL).
    pub fn matches(&self, event: &entity::audit_event::Model) -> bool {
        self.involving
            .is_none_or(|u| event.actor_id == Some(u) || event.target_user_id == Some(u))
            && self.action.as_ref().is_none_or(|a| *a == event.action)
            && self.actor_id.is_none_or(|a| event.actor_id == Some(a))
            && self
                .target_user_id
                .is_none_or(|t| event.target_user_id == Some(t))
            && self.after.is_none_or(|t| event.created_at > t)
            && self.before.is_none_or(|t| event.created_at < t)
    }

    fn condition(&self) -> sea_orm::Condition {
        use entity::audit_event::Column;
        use sea_orm::ColumnTrait as _;
        let mut all = sea_orm::Condition::all();
        if let Some(user_id) = self.involving {
            all = all.add(
                sea_orm::Condition::any()
                    .add(Column::ActorId.eq(user_id))
                    .add(Column::TargetUserId.eq(user_id)),
            );
        }
        if let Some(action) = &self.action {
            all = all.add(Column::Action.eq(action.as_str()));
        }
        if let Some(actor) = self.actor_id {
            all = all.add(Column::ActorId.eq(actor));
        }
        if let Some(target) = self.target_user_id {
            all = all.add(Column::TargetUserId.eq(target));
        }
        if let Some(after) = self.after {
            all = all.add(Column::CreatedAt.gt(after));
        }
        if let Some(before) = self.before {
            all = all.add(Column::CreatedAt.lt(before));
        }
        all
    }
}

/// The events the filter matches, newest first, `first` of them after
/// `after` (keyset: a deep page costs what the first costs).
///
/// # Errors
/// `Internal` when the database fails.
pub async fn list(
    app: &crate::state::App,
    filter: &Filter,
    first: u64,
    after: Option<Cursor>,
) -> crate::error::AppResult<Page> {
    use entity::audit_event::{Column, Entity};
    use sea_orm::{
        ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
    };
    let mut query = Entity::find().filter(filter.condition());
    if let Some(after) = after {
        query = query.filter(
            sea_orm::Condition::any()
                .add(Column::CreatedAt.lt(after.created_at))
                .add(
                    sea_orm::Condition::all()
                        .add(Column::CreatedAt.eq(after.created_at))
                        .add(Column::Id.lt(after.id)),
                ),
        );
    }
    let query = query
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit(first + 1);
    let mut events = app.db.list(query).await?;
    let has_next = events.len() as u64 > first;
    events.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    Ok(Page { events, has_next })
}

/// How many events the filter matches.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn count(app: &crate::state::App, filter: &Filter) -> crate::error::AppResult<u64> {
    use sea_orm::{EntityTrait as _, QueryFilter as _};
    let query = entity::audit_event::Entity::find().filter(filter.condition());
    Ok(app.db.list_count(query).await?)
}

/// Deletes events older than `AUDIT_RETENTION`, `batch` at a time, oldest
/// first through the `created_at` index; returns how many.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn purge_expired(app: &crate::state::App, batch: u64) -> crate::error::AppResult<u64> {
    use entity::audit_event::{Column, Entity};
    let cutoff = super::now()
        - chrono::Duration::from_std(app.config.audit_retention)
            .unwrap_or(chrono::Duration::days(365));
    super::delete_older_than::<Entity>(app, Column::Id, Column::CreatedAt, cutoff, batch).await
}
