//! The platform as separate processes: private Postgres, Redis and NATS on free ports (so a
//! pause hurts nobody else's work), then the API server, two chat gateways and a media worker,
//! each started from the same command line again after it is killed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::clock;

/// One process the suite starts, kills and starts again.
pub struct Proc {
    pub name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    /// Run as this (uid, gid): Postgres refuses to run as root.
    user: Option<(u32, u32)>,
    log: PathBuf,
    /// `/healthz` for our services; backing services are ready when their port answers.
    health: Health,
    child: Option<Child>,
}

#[derive(Clone)]
pub enum Health {
    Http(String),
    Port(SocketAddr),
}

impl Proc {
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_LOG", "info,sqlx=warn")
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().with_context(|| format!("starting {} ({})", self.name, self.program.display()))?);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// `kill -9`: no drain, no goodbye, as when a node dies.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                signal("TERM", &[pid]);
            }
            if tokio::time::timeout(grace, c.wait()).await.is_err() {
                let _ = c.start_kill();
                let _ = c.wait().await;
            }
        }
    }

    /// Waits until the process serves, or fails after `within`.
    pub async fn ready(&mut self, within: Duration) -> anyhow::Result<f64> {
        let started = clock::now();
        let http = onair_http::client();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let up = match &self.health {
                Health::Http(url) => {
                    http.get(url).timeout(Duration::from_secs(1)).send().await.is_ok_and(|r| r.status().is_success())
                }
                Health::Port(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
            };
            if up {
                return Ok(clock::now() - started);
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                anyhow::bail!("{} exited ({status}) before serving; see {}", self.name, self.log.display());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not serve within {within:?}; see {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `kill -SIG` to `pids` (the `kill` utility: this workspace has no unsafe code for libc).
pub fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// `pid` and every process below it, so a paused Postgres has its backends paused too.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses: read after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.insert(child, ppid);
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The uid and gid of `name` in /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.split(':').next() == Some(name))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Debian's PostgreSQL binaries (newest major), or whatever `initdb` is on the PATH.
fn postgres_bin(tool: &str) -> PathBuf {
    let mut majors: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join(tool).exists()).collect())
        .unwrap_or_default();
    majors.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    majors.pop().map(|d| d.join(tool)).unwrap_or_else(|| PathBuf::from(tool))
}

/// Every address the services listen on, fixed for the run so a restarted process comes back
/// where its clients look for it.
pub struct Addrs {
    pub postgres: SocketAddr,
    pub redis: SocketAddr,
    pub nats: SocketAddr,
    pub api: SocketAddr,
    pub chat: [SocketAddr; 2],
    pub media_http: SocketAddr,
    pub rtmp: SocketAddr,
}

pub struct Cluster {
    pub addrs: Addrs,
    pub postgres: Proc,
    pub redis: Proc,
    pub nats: Proc,
    pub api: Proc,
    pub chat: [Proc; 2],
    pub media: Proc,
}

/// The internal token the API server and the media worker share in this run.
const INTERNAL_TOKEN: &str = "faults-internal-token-0123456789abcdef";
/// Analytics samples every 2 s, so a hole of a few seconds shows.
pub const SAMPLE_INTERVAL_SECS: u64 = 2;

impl Cluster {
    /// Starts everything under `dir` (data, keys and one log per process) and waits until each serves.
    pub async fn start(onair: &Path, dir: &Path) -> anyhow::Result<Self> {
        let addrs = Addrs {
            postgres: free_addr()?,
            redis: free_addr()?,
            nats: free_addr()?,
            api: free_addr()?,
            chat: [free_addr()?, free_addr()?],
            media_http: free_addr()?,
            rtmp: free_addr()?,
        };
        let log = |name: &str| dir.join(format!("{name}.log"));
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        // Postgres in a fresh data directory, as the postgres user when we are root.
        let pg_data = dir.join("pgdata");
        std::fs::create_dir_all(&pg_data)?;
        let pg_user = if running_as_root() {
            let ids = user_ids("postgres").context("running as root needs a `postgres` user for PostgreSQL")?;
            for p in [dir, pg_data.as_path()] {
                std::os::unix::fs::chown(p, Some(ids.0), Some(ids.1))?;
            }
            Some(ids)
        } else {
            None
        };
        let mut initdb = std::process::Command::new(postgres_bin("initdb"));
        initdb
            .args(["-A", "trust", "-U", "onair", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&pg_data)
            .stdout(Stdio::null());
        if let Some((uid, gid)) = pg_user {
            use std::os::unix::process::CommandExt as _;
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().context("running initdb (scripts/services.sh installs PostgreSQL)")?;
        anyhow::ensure!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let pg_data_s = pg_data.display().to_string();
        let mut postgres = Proc {
            name: "postgres",
            program: postgres_bin("postgres"),
            args: s(&[
                "-D",
                &pg_data_s,
                "-p",
                &addrs.postgres.port().to_string(),
                "-k",
                &pg_data_s,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]),
            user: pg_user,
            log: log("postgres"),
            health: Health::Port(addrs.postgres),
            child: None,
        };
        let mut redis = Proc {
            name: "redis",
            program: "redis-server".into(),
            args: s(&[
                "--bind",
                "127.0.0.1",
                "--port",
                &addrs.redis.port().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            user: None,
            log: log("redis"),
            health: Health::Port(addrs.redis),
            child: None,
        };
        let nats_store = dir.join("nats");
        let mut nats = Proc {
            name: "nats",
            program: "nats-server".into(),
            args: s(&[
                "-a",
                "127.0.0.1",
                "-p",
                &addrs.nats.port().to_string(),
                "-js",
                "-sd",
                &nats_store.display().to_string(),
            ]),
            user: None,
            log: log("nats"),
            health: Health::Port(addrs.nats),
            child: None,
        };
        for p in [&mut postgres, &mut redis, &mut nats] {
            p.start().await?;
            p.ready(Duration::from_secs(30)).await?;
        }

        let db_url = format!("postgres://onair@{}/onair", addrs.postgres);
        let redis_url = format!("redis://{}", addrs.redis);
        let nats_url = format!("nats://{}", addrs.nats);
        let status = Command::new(onair)
            .args(["migrate", "--database-url", &db_url])
            .stdout(Stdio::null())
            .status()
            .await
            .with_context(|| format!("running {} migrate", onair.display()))?;
        anyhow::ensure!(status.success(), "onair migrate failed");

        let keys = dir.join("keys").display().to_string();
        // One of our services: `onair` with these flags (and the shared Redis), ready when its
        // `/healthz` at `http` answers.
        let service = |name: &'static str, log_name: &str, http: SocketAddr, mut args: Vec<String>| {
            args.extend(s(&["--redis-url", &redis_url, "--redis-prefix", "faults:"]));
            Proc {
                name,
                program: onair.into(),
                args,
                user: None,
                log: log(log_name),
                health: Health::Http(format!("http://{http}/healthz")),
                child: None,
            }
        };
        let api = service(
            "apiserver",
            "apiserver",
            addrs.api,
            s(&[
                "apiserver",
                "--listen",
                &addrs.api.to_string(),
                "--database-url",
                &db_url,
                "--nats-url",
                &nats_url,
                "--nats-prefix",
                "faults.",
                "--jwt-keys-dir",
                &keys,
                "--internal-token",
                INTERNAL_TOKEN,
                "--playback-base-url",
                &format!("http://{}/hls", addrs.media_http),
                "--ingest-url",
                &format!("rtmp://{}/live", addrs.rtmp),
                "--sample-interval-secs",
                &SAMPLE_INTERVAL_SECS.to_string(),
                // Every simulated user registers from this one machine.
                "--register-per-ip-per-hour",
                "100000",
                "--heartbeats-per-ip-per-minute",
                "100000",
            ]),
        );
        let gateway = |i: usize, name: &'static str| {
            service(
                name,
                name,
                addrs.chat[i],
                s(&[
                    "chat-gateway",
                    "--listen",
                    &addrs.chat[i].to_string(),
                    "--database-url",
                    &db_url,
                    "--nats-url",
                    &nats_url,
                    "--nats-prefix",
                    "faults.",
                    "--jwks-url",
                    &format!("http://{}/.well-known/jwks.json", addrs.api),
                    // The simulated audience connects from a handful of loopback addresses.
                    "--connects-per-ip-per-minute",
                    "100000",
                ]),
            )
        };
        let chat = [gateway(0, "chat gateway A"), gateway(1, "chat gateway B")];
        let media = service(
            "media worker",
            "media",
            addrs.media_http,
            s(&[
                "media",
                "--rtmp-listen",
                &addrs.rtmp.to_string(),
                "--http-listen",
                &addrs.media_http.to_string(),
                "--apiserver-url",
                &format!("http://{}", addrs.api),
                "--internal-token",
                INTERNAL_TOKEN,
                "--media-dir",
                &dir.join("media").display().to_string(),
                "--ladder",
                "360p,240p",
                "--x264-preset",
                "ultrafast",
                "--x264-preset-free",
                "ultrafast",
                "--latency",
                "low",
            ]),
        );
        let mut cluster = Cluster { addrs, postgres, redis, nats, api, chat, media };
        cluster.api.start().await?;
        cluster.api.ready(Duration::from_secs(60)).await?;
        for p in cluster.chat.iter_mut().chain([&mut cluster.media]) {
            p.start().await?;
        }
        for p in cluster.chat.iter_mut().chain([&mut cluster.media]) {
            p.ready(Duration::from_secs(60)).await?;
        }
        Ok(cluster)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addrs.api)
    }

    pub async fn stop(&mut self) {
        let [a, b] = &mut self.chat;
        for p in [&mut self.media, a, b, &mut self.api] {
            p.stop(Duration::from_secs(15)).await;
        }
        // Fast shutdown for Postgres (SIGINT); the rest on SIGTERM.
        if let Some(pid) = self.postgres.pid() {
            signal("INT", &[pid]);
        }
        for p in [&mut self.postgres, &mut self.redis, &mut self.nats] {
            p.stop(Duration::from_secs(10)).await;
        }
    }
}
