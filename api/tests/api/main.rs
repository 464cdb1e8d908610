//! Integration tests through real HTTP. One binary, so it links once.

mod abuse;
mod accounts;
mod coherence;
mod helpers;
mod process;
mod redis_server;
mod tokens;
mod transport;
