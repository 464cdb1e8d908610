//! Times the session purge over a few hundred thousand ended sessions on
//! PostgreSQL: `bench/purge.sh` runs it (`cargo run --release --example
//! purge_bench -- DATABASE_URL SESSIONS ROTATED_PER_SESSION`).

use std::time::Instant;

use sea_orm::{ConnectionTrait as _, Statement};
use usergraph::app::{BuildOptions, build_state};
use usergraph::config::{Config, JwtKeySource, Secret};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("DATABASE_URL");
    let sessions: u64 = args.get(2).map_or(Ok(300_000), |n| n.parse())?;
    let rotated: u64 = args.get(3).map_or(Ok(3), |n| n.parse())?;
    let mut config = Config::from_lookup(|_| None).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    config.database_url = Secret::new(url.as_str());
    config.jwt.key = JwtKeySource::Secret(Secret::new("purge-bench-secret-of-32-bytes-at-least"));
    let app = build_state(config, BuildOptions::default()).await?;
    let db = &app.db.write;
    let exec = |sql: String| async move {
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
    };
    let started = Instant::now();
    exec("INSERT INTO users (id, email, password_hash, status, email_verified, failed_login_count, created_at, updated_at, version) \
          VALUES ('00000000-0000-7000-8000-0000000000aa', 'purge-bench@example.com', 'x', 'active', false, 0, now(), now(), 0) \
          ON CONFLICT DO NOTHING".into()).await?;
    // Half expired long ago, half revoked long ago; all past the retention.
    exec(format!(
        "INSERT INTO sessions (id, user_id, refresh_token_hash, generation, created_at, last_used_at, expires_at, revoked_at, revoked_reason) \
         SELECT gen_random_uuid(), '00000000-0000-7000-8000-0000000000aa', 'bench-' || g, 0, \
                now() - interval '60 days', now() - interval '60 days', \
                now() - interval '30 days', \
                CASE WHEN g % 2 = 0 THEN now() - interval '40 days' END, \
                CASE WHEN g % 2 = 0 THEN 'logout' END \
         FROM generate_series(1, {sessions}) AS g"
    ))
    .await?;
    exec(format!(
        "INSERT INTO rotated_refresh_tokens (token_hash, session_id, rotated_at) \
         SELECT s.refresh_token_hash || '-' || r, s.id, now() - interval '50 days' \
         FROM sessions s, generate_series(1, {rotated}) AS r \
         WHERE s.refresh_token_hash LIKE 'bench-%'"
    ))
    .await?;
    // As autovacuum would have by then.
    exec("ANALYZE sessions".into()).await?;
    exec("ANALYZE rotated_refresh_tokens".into()).await?;
    println!(
        "seeded {sessions} ended sessions and {} rotated hashes in {:.1} s",
        sessions * rotated,
        started.elapsed().as_secs_f64()
    );
    let plan = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "EXPLAIN SELECT id FROM sessions WHERE expires_at < now() - interval '7 days' \
             ORDER BY expires_at LIMIT 1000",
        ))
        .await?;
    println!("plan of one batch's lookup:");
    for row in plan {
        println!("    {}", row.try_get::<String>("", "QUERY PLAN")?);
    }
    let started = Instant::now();
    let (deleted, batches) = usergraph::domain::sessions::purge_ended(&app, 1000)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "purged {deleted} sessions and their rotated hashes in {batches} batches of 1000 sessions (hashes deleted 20 sessions at a time): {seconds:.1} s ({:.1} ms per batch)",
        seconds * 1000.0 / f64::from(batches.max(1))
    );
    Ok(())
}
