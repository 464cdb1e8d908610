//! The command line: `serve` (default), `migrate`, `export-schema`,
//! `create-admin`, `seed`, `healthcheck`.

mod admin;
mod healthcheck;
mod migrate;
mod seed;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// User management over GraphQL: accounts, sessions, roles, audit.
#[derive(Parser, Debug)]
#[command(name = "usergraph", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API on BIND_ADDR (the default command).
    Serve,
    /// Apply, roll back or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Write the GraphQL schema (SDL) to stdout or a file.
    ExportSchema {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create an administrator account (roles admin and user, email verified).
    CreateAdmin {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Exit 0 when /health answers on 127.0.0.1 at BIND_ADDR's port within 2 s.
    Healthcheck,
    /// Add synthetic users for load tests: seed-<i>@example.com, one password,
    /// role user (every 10th also support); running it again adds the next N.
    Seed {
        /// How many users to add.
        #[arg(long)]
        users: u64,
        /// Users per multi-row insert (at most 2500).
        #[arg(long, default_value_t = 2500)]
        batch: u64,
        /// The password of every seeded user.
        #[arg(long, default_value = "seed-password-1234")]
        password: String,
    },
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back the most recent migrations.
    Down {
        /// How many to roll back.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

/// Exit code for configuration errors (distinct from runtime failures).
const CONFIG_ERROR: u8 = 2;

/// Loads `.env` (when present) and the configuration; prints the error
/// naming the variable otherwise.
fn load_config() -> Result<Config, ExitCode> {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("usergraph: cannot read .env: {e}");
        return Err(ExitCode::from(CONFIG_ERROR));
    }
    Config::from_env().map_err(|e| {
        eprintln!("usergraph: configuration error: {e}");
        ExitCode::from(CONFIG_ERROR)
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Runs a command; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::ExportSchema { out } = &command {
        return export_schema(out.as_deref());
    }
    if let Command::Healthcheck = command {
        return healthcheck::run();
    }
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init_tracing(config.log_format);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usergraph: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match command {
            Command::Serve => serve::run(config).await,
            Command::Migrate { action } => migrate::run(config, action).await,
            Command::CreateAdmin {
                email,
                password_stdin,
            } => admin::run(config, &email, password_stdin).await,
            Command::Seed {
                users,
                batch,
                password,
            } => seed::run(config, users, batch, &password).await,
            Command::ExportSchema { .. } | Command::Healthcheck => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "usergraph failed");
            eprintln!("usergraph: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn export_schema(out: Option<&std::path::Path>) -> ExitCode {
    let sdl = crate::graphql::sdl();
    match out {
        None => {
            print!("{sdl}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, sdl) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("usergraph: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}
