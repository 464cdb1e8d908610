//! A `redis-server` of the test's own on a free loopback port, which the test
//! can pause (SIGSTOP: connections stay open, nothing answers), resume, stop
//! and restart with the data it had (an RDB file in its own directory).
//! Tests that use it are `#[ignore]`d unless `redis-server` is on PATH and
//! the suite runs with `--include-ignored` (as `.ci/run` does).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dbfilename",
                "dump.rdb",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (these tests are run with --include-ignored)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command with a short timeout.
    pub async fn command(&self, name: &str) -> anyhow::Result<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let run = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            Ok::<_, anyhow::Error>(
                redis::cmd(name)
                    .query_async::<redis::Value>(&mut conn)
                    .await?,
            )
        };
        tokio::time::timeout(Duration::from_secs(2), run).await?
    }

    /// The value stored under `key` (a full key, prefix included).
    pub async fn get(&self, key: &str) -> Option<String> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .ok()?
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {signal}");
        }
    }

    /// Freezes the server: connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Saves the data set to disk, then kills the server.
    pub async fn stop_keeping_data(&mut self) {
        self.command("SAVE").await.expect("SAVE");
        self.kill();
    }

    /// Kills the server at once: what it did not save is lost.
    pub fn kill_without_saving(&mut self) {
        self.kill();
    }

    /// Starts again on the same port, loading the data saved by
    /// [`RedisServer::stop_keeping_data`].
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
