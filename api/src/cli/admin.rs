//! `usergraph create-admin --email E [--password-stdin]`.

use std::io::BufRead as _;

use anyhow::Context as _;

use crate::app::{BuildOptions, build_state};
use crate::config::Config;
use crate::domain::accounts;

pub async fn run(config: Config, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        anyhow::ensure!(first == again, "the passwords differ");
        first
    };
    let state = build_state(config, BuildOptions::default()).await?;
    match accounts::create_admin(&state, email, &password, "cli").await {
        Ok(user) => {
            println!("created admin {} ({})", user.email, user.id);
            Ok(())
        }
        Err(e) => anyhow::bail!("{} ({})", e.message(), e.code()),
    }
}
