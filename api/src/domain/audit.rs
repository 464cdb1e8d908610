//! The audit log: one row per security-relevant action, written in the same
//! transaction as the change it records. Never holds a password, token or hash.

use sea_orm::{ActiveModelTrait as _, ConnectionTrait, Set};
use uuid::Uuid;

use super::RequestMeta;
use crate::error::AppResult;

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

/// Inserts the event on `conn`, which should be the transaction of the change.
///
/// # Errors
/// `Internal` when the insert fails (and with it the transaction).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    event: Event,
) -> AppResult<()> {
    entity::audit_event::ActiveModel {
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
    .await?;
    Ok(())
}
