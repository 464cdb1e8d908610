//! Integration tests through real HTTP. One binary, so it links once.

mod abuse;
mod accounts;
mod helpers;
mod process;
mod tokens;
mod transport;
