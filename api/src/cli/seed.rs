//! `usergraph seed --users N [--batch K] [--password P]`: synthetic users for
//! load tests. Emails `seed-<i>@example.com`, display names `Seed User <i>`,
//! all with one password (hashed once), role `user`, and every 10th also
//! `support` (created if missing, permission `users:read`). Running it again
//! adds the next N. Multi-row inserts, one transaction per batch.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use entity::{role, user, user_role};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, EntityTrait as _, PaginatorTrait as _,
    QueryFilter as _, Set, TransactionTrait as _,
};
use uuid::Uuid;

use crate::app::{BuildOptions, build_state};
use crate::config::Config;
use crate::domain::types::Password;
use crate::domain::{invalidations, roles};

/// Rows per multi-row insert: under PostgreSQL's 65,535 bound parameters
/// (12 per user) and SQLite's 32,766.
const MAX_BATCH: u64 = 2500;
const SUPPORT: &str = "support";

pub async fn run(config: Config, users: u64, batch: u64, password: &str) -> anyhow::Result<()> {
    let batch = batch.clamp(1, MAX_BATCH);
    let state = build_state(config, BuildOptions::default()).await?;
    let app = &state;
    let password = Password::for_verification(password, "password")
        .map_err(|e| anyhow::anyhow!("--password: {}", e.message()))?;
    let hash = app
        .hasher
        .hash(&password)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let user_role_id = roles::by_name(&app.db.write, roles::USER)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?
        .context("the built-in role `user` is missing: run the migrations")?
        .id;
    let support_id = support_role(app).await?;
    let start = user::Entity::find()
        .filter(user::Column::Email.like("seed-%@example.com"))
        .count(&app.db.write)
        .await?;
    let progress = Progress::new(users);
    let began = Instant::now();
    let base = Utc::now() - chrono::Duration::days(365);
    let mut done = 0;
    while done < users {
        let n = batch.min(users - done);
        let mut people = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let mut links = Vec::with_capacity(people.capacity() + people.capacity() / 10 + 1);
        for i in start + done..start + done + n {
            let id = Uuid::now_v7();
            let at = base + chrono::Duration::milliseconds(i64::try_from(i).unwrap_or(0) * 10);
            people.push(user::ActiveModel {
                id: Set(id),
                email: Set(format!("seed-{i}@example.com")),
                password_hash: Set(hash.clone()),
                display_name: Set(Some(format!("Seed User {i}"))),
                status: Set(user::UserStatus::Active),
                email_verified: Set(i % 2 == 0),
                failed_login_count: Set(0),
                locked_until: Set(None),
                last_login_at: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
                version: Set(0),
            });
            links.push(link(id, user_role_id));
            if i % 10 == 0 {
                links.push(link(id, support_id));
            }
        }
        let txn = app.db.write.begin().await?;
        user::Entity::insert_many(people).exec(&txn).await?;
        user_role::Entity::insert_many(links).exec(&txn).await?;
        txn.commit().await?;
        done += n;
        progress.advance(done);
    }
    progress.finish();
    let took = began.elapsed();
    println!(
        "seeded {users} users (seed-{start} … seed-{}) in {:.1} s ({:.0} users/s)",
        start + users.saturating_sub(1),
        took.as_secs_f64(),
        users as f64 / took.as_secs_f64().max(0.001)
    );
    Ok(())
}

fn link(user_id: Uuid, role_id: Uuid) -> user_role::ActiveModel {
    user_role::ActiveModel {
        user_id: Set(user_id),
        role_id: Set(role_id),
        created_at: Set(crate::domain::now()),
    }
}

/// The `support` role (permission `users:read`), created when missing; a new
/// role invalidates the cached catalogue like any role change.
async fn support_role(app: &crate::state::App) -> anyhow::Result<Uuid> {
    let err = |e: crate::error::AppError| anyhow::anyhow!(e.message());
    if let Some(found) = roles::by_name(&app.db.write, SUPPORT).await.map_err(err)? {
        return Ok(found.id);
    }
    let txn = crate::domain::tx::Tx::begin(app).await.map_err(err)?;
    let id = Uuid::now_v7();
    let at = crate::domain::now();
    role::ActiveModel {
        id: Set(id),
        name: Set(SUPPORT.into()),
        description: Set(Some(
            "Reads the users directory (created by usergraph seed).".into(),
        )),
        permissions: Set(serde_json::json!(["users:read"])),
        built_in: Set(false),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(&txn)
    .await?;
    let stale = roles::touch_catalogue(&txn).await.map_err(err)?;
    invalidations::commit(app, txn, &[stale])
        .await
        .map_err(err)?;
    Ok(id)
}

/// A bar on a terminal, a line every tenth otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    next_line: std::cell::Cell<u64>,
    began: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} users, {per_sec}, {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            total,
            next_line: std::cell::Cell::new(total / 10),
            began: Instant::now(),
        }
    }

    fn advance(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        } else if done >= self.next_line.get() && done < self.total {
            eprintln!(
                "seed: {done}/{} users ({:.1} s)",
                self.total,
                self.began.elapsed().as_secs_f64()
            );
            self.next_line.set(done + (self.total / 10).max(1));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
