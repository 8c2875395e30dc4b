#![doc = include_str!("../README.md")]

pub mod kube_fake;
pub mod s3;
pub mod tokens;

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// Where the test server lives (trust auth on this machine); any database on it works as the admin one.
pub fn admin_url() -> String {
    let url = std::env::var("ONAIR_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://localhost/postgres".into());
    onair_config::with_default_user(&url)
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(i) if admin[..i].contains("//") && !admin[i + 1..].contains('@') => format!("{}/{}", &admin[..i], db),
        _ => format!("{admin}/{db}"),
    }
}

/// A fresh database, created from a migrated template, dropped when this value drops.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Create a database migrated by `migrator`. The template is made once per migration set
    /// (named by their checksums) under an advisory lock, so parallel test processes share it.
    pub async fn new(migrator: &Migrator) -> anyhow::Result<Self> {
        let mut hasher = Sha256::new();
        for m in migrator.iter() {
            hasher.update(m.version.to_le_bytes());
            hasher.update(&*m.checksum);
        }
        let digest = hasher.finalize();
        let template = format!("onair_tpl_{}", digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>());

        let mut admin = PgConnection::connect(&admin_url()).await?;
        admin.execute("SELECT pg_advisory_lock(727274)").await?;
        // Runtime, not `query_scalar!`: test setup's catalog queries, which no migration shapes.
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await?;
        if !exists {
            // A half-made template from a crashed run would have the name; build under a temp name first.
            let building = format!("{template}_building");
            admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#))).await?;
            admin.execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{building}""#))).await?;
            {
                let mut conn = PgConnection::connect(&url_for(&building)).await?;
                migrator.run(&mut conn).await?;
                conn.close().await?;
            }
            admin.execute(AssertSqlSafe(format!(r#"ALTER DATABASE "{building}" RENAME TO "{template}""#))).await?;
            // Templates of older migration sets are dead weight now.
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'onair\\_tpl\\_%' AND datname <> $1",
            )
            .bind(&template)
            .fetch_all(&mut admin)
            .await?;
            for db in stale {
                let _ = admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#))).await;
            }
        }
        admin.execute("SELECT pg_advisory_unlock(727274)").await?;

        let name = format!("onair_test_{}", uuid::Uuid::new_v4().simple());
        let mut last = None;
        for _ in 0..20 {
            // Two CREATE DATABASE from one template at the same instant can collide; retry.
            match admin.execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#))).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        if let Some(e) = last {
            return Err(e.into());
        }
        admin.close().await?;
        Ok(Self { url: url_for(&name), name })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread with its own runtime can block on the drop.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ =
                        admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A prefix unique to one test, for Redis keys and NATS subjects.
pub fn unique_prefix() -> String {
    format!("t{}:", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Poll `check` until it returns `Some`, or fail after `timeout`. For end-to-end waits only.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What OBS does, for media tests: publish a real-time 640x360 test pattern with a 440 Hz tone
/// (H.264 ultrafast/zerolatency, a keyframe a second, AAC) to `url` over RTMP for `secs` seconds.
/// Killed when the returned child drops.
pub fn publish_test_pattern(url: &str, secs: u32) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        // Media tests cannot run without ffmpeg; scripts/services.sh installs it.
        .expect("ffmpeg runs (scripts/services.sh installs it)")
}

/// Calls every operation of an OpenAPI document's `paths` on `base` (path parameters filled with
/// a nil UUID, an empty JSON body) and fails if the router answers any with its own 404/405
/// (`not_found` / `method_not_allowed`): a documented operation that is not routed. Returns how
/// many operations it called.
pub async fn assert_documented_operations_routed<'a>(
    client: &reqwest::Client,
    base: &str,
    paths: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
) -> usize {
    let mut checked = 0;
    for (path, item) in paths {
        let concrete =
            path.split('/')
                .map(|seg| {
                    if seg.starts_with('{') && seg.ends_with('}') {
                        "00000000-0000-0000-0000-000000000000"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a valid method name");
            let res = client
                .request(m, format!("{base}{concrete}"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("the server answers");
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            let unrouted = body["error"]["code"] == "not_found" || body["error"]["code"] == "method_not_allowed";
            assert!(!unrouted, "{method} {path} is documented but not routed ({status})");
            checked += 1;
        }
    }
    checked
}
