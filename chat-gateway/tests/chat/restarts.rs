//! Acknowledged messages survive restarts of NATS itself (a private `nats-server`, so the
//! machine's shared one keeps serving the other tests).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{env, eventually_history};

struct Nats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nats {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut n = Self { port, dir: tempfile::tempdir().ok()?, child: None };
        n.spawn()?;
        Some(n)
    }

    fn spawn(&mut self) -> Option<()> {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Kill hard (no graceful shutdown), then start again on the same port and store.
    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(500));
        self.spawn().expect("nats-server restarts");
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn acknowledged_messages_survive_a_nats_restart() {
    let Some(mut nats) = Nats::start() else {
        panic!("nats-server must be installed (scripts/services.sh installs it)");
    };
    let url = nats.url();
    let env = env(0, &[]).await;
    let mut env = env;
    let gw = env.start_gateway(&["--nats-url", &url]).await;
    env.gateways.push(gw);
    let owner = env.register("natsrestart").await;
    let stream = env.live_stream(&owner).await;

    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        if i == 20 || i == 40 {
            nats.restart();
        }
        let (status, body) = env
            .rest(
                0,
                reqwest::Method::POST,
                &format!("/api/streams/{stream}/chat"),
                Some(&owner.token),
                Some(json!({"text": format!("m{i}")})),
            )
            .await;
        match status {
            StatusCode::CREATED => acked.push(body["id"].as_str().unwrap().to_owned()),
            // Refused while NATS is down: the sender was told, nothing was promised.
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(acked.len() >= 40, "the gateway recovers after each restart ({} acked, {refused} refused)", acked.len());
    let history = eventually_history(&env, &stream, acked.len()).await;
    let mut stored: Vec<String> = history.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "every acknowledged message reached history exactly once");
}

/// A private Postgres cluster (initdb in a temp dir, its own port) that the test may stop.
struct Pg {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
    root: bool,
}

impl Pg {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        // initdb refuses to run as root; run the cluster as the `postgres` system user then.
        let root = Command::new("id").arg("-u").output().ok().is_some_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().ok()?;
        }
        let pg = Self { dir, port, bin, root };
        let data = pg.dir.path().join("data");
        pg.run("initdb", &["-D", data.to_str()?, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])?;
        pg.ctl_start()?;
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Option<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let ok = cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?.success();
        ok.then_some(())
    }

    fn ctl_start(&self) -> Option<()> {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        self.run("pg_ctl", &["-D", data.to_str()?, "-l", log.to_str()?, "-o", &opts, "-w", "start"])
    }

    /// Stop immediately (like a crash), then start again.
    fn restart(&self) {
        let data = self.dir.path().join("data");
        let _ = self.run("pg_ctl", &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "-w", "stop"]);
        std::thread::sleep(Duration::from_millis(500));
        self.ctl_start().expect("postgres restarts");
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.run("pg_ctl", &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"]);
    }
}

/// The chat history lives on its own database here (database per domain); that database goes
/// down twice while messages flow. Sends keep working (JetStream holds them) and the persister
/// catches up once Postgres is back.
#[tokio::test]
async fn acknowledged_messages_survive_a_postgres_restart() {
    let pg = Pg::start().expect("a private Postgres cluster starts (postgresql is installed by scripts/services.sh)");
    onair_apiserver::migrate(&pg.url("chat")).await.expect("chat database migrated");
    let chat_url = pg.url("chat");
    let mut env = env(0, &[]).await;
    let gw = env.start_gateway(&["--chat-database-url", &chat_url]).await;
    env.gateways.push(gw);
    let owner = env.register("pgrestart").await;
    let stream = env.live_stream(&owner).await;

    let mut acked = Vec::new();
    for i in 0..45 {
        if i == 15 || i == 30 {
            pg.restart();
        }
        let (status, body) = env
            .rest(
                0,
                reqwest::Method::POST,
                &format!("/api/streams/{stream}/chat"),
                Some(&owner.token),
                Some(json!({"text": format!("p{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "sending does not depend on the history database: {body}");
        acked.push(body["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&chat_url).await.expect("chat db");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut stored: Vec<String> = loop {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM chat_messages WHERE stream_id = $1::uuid")
            .bind(&stream)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
        if ids.len() >= acked.len() || tokio::time::Instant::now() > deadline {
            break ids.into_iter().map(|i| i.to_string()).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "every acknowledged message reached the history database exactly once");
}
