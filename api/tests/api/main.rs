//! Integration tests through real HTTP. One binary, so it links once.

mod abuse;
mod accounts;
mod admin;
mod coherence;
mod contract;
mod directory;
mod docs;
mod helpers;
mod lifecycle;
mod limits;
mod process;
mod redis_server;
mod smtp;
mod subscription;
mod tokens;
mod transport;
