//! Adapters to the outside: the cache and the rate limiter (in-process or
//! Redis). Each is a small
//! trait with one implementation per backend; the rest of the code sees only
//! the trait.

pub mod cache;
pub mod events;
pub mod mailer;
pub mod ratelimit;
pub mod redis;
