//! sea-orm entities of usergraph, one module per table.
//!
//! These are storage types only: they never derive GraphQL types, so the
//! table never becomes the API by accident (the GraphQL objects in
//! `usergraph::graphql::types` are built from them and carry no hash).

pub mod audit_event;
pub mod cache_epoch;
pub mod cache_outbox;
pub mod email_token;
pub mod mail_outbox;
pub mod role;
pub mod rotated_refresh_token;
pub mod session;
pub mod user;
pub mod user_role;

pub mod prelude {
    //! The entities under short names.
    pub use crate::audit_event::Entity as AuditEvent;
    pub use crate::cache_epoch::Entity as CacheEpoch;
    pub use crate::cache_outbox::Entity as CacheOutbox;
    pub use crate::email_token::Entity as EmailToken;
    pub use crate::mail_outbox::Entity as MailOutbox;
    pub use crate::role::Entity as Role;
    pub use crate::rotated_refresh_token::Entity as RotatedRefreshToken;
    pub use crate::session::Entity as Session;
    pub use crate::user::Entity as User;
    pub use crate::user_role::Entity as UserRole;
}
