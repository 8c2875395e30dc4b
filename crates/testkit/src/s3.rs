//! A real S3 API server for tests: moto's (`moto_server`, from PyPI), one process per test on
//! port 0, killed on drop. `scripts/test.sh` installs it and sets `ONAIR_MOTO_SERVER`; then it is
//! required. Without that variable a test may run where `moto_server` is on the PATH, and is
//! skipped (saying so) where it is not.
//!
//! moto keeps objects in memory and does not check signatures, so a test's keys can be anything;
//! `pause`/`resume` (SIGSTOP/SIGCONT) make an outage in which connections are accepted by the
//! kernel and never answered: what a stuck server looks like to a client with timeouts.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    /// `None` when moto is not installed and not required here.
    pub fn start() -> Res<Option<Self>> {
        let required = std::env::var_os("ONAIR_MOTO_SERVER");
        let program = required.clone().unwrap_or_else(|| "moto_server".into());
        let spawned = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && required.is_none() => {
                eprintln!("moto_server is not installed (scripts/test.sh installs it): skipped");
                return Ok(None);
            }
            Err(e) => return Err(format!("starting {}: {e}", program.to_string_lossy()).into()),
        };
        let stderr = child.stderr.take().ok_or("moto stderr not piped")?;
        let mut lines = BufReader::new(stderr).lines();
        // ` * Running on http://127.0.0.1:PORT`, about 1.5 s after the start.
        let endpoint = loop {
            let Some(line) = lines.next().transpose()? else {
                let _ = child.kill();
                return Err("moto_server exited before listening".into());
            };
            if let Some(at) = line.find("http://127.0.0.1:") {
                break line[at..].trim().to_string();
            }
        };
        // moto logs every request on stderr: keep draining it so the pipe never fills.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Some(Self { child, endpoint }))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Makes a fresh bucket and answers its name.
    pub fn bucket(&self) -> Res<String> {
        let bucket = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let status =
            Command::new("curl").args(["-fsS", "-X", "PUT", &format!("{}/{bucket}", self.endpoint)]).status()?;
        if !status.success() {
            return Err(format!("creating bucket {bucket}: {status}").into());
        }
        Ok(bucket)
    }

    /// Flags that point a service's `ONAIR_RECORDINGS_*` at `bucket` on this server.
    pub fn recordings_args(&self, bucket: &str) -> Vec<String> {
        [
            ("--recordings-url", format!("s3://{bucket}/onair")),
            ("--recordings-endpoint", self.endpoint.clone()),
            ("--recordings-access-key-id", "test".into()),
            ("--recordings-secret-access-key", "test".into()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }

    /// Freeze the server (SIGSTOP): requests hang until [`S3Server::resume`].
    pub fn pause(&self) -> Res<()> {
        self.signal("-STOP")
    }

    pub fn resume(&self) -> Res<()> {
        self.signal("-CONT")
    }

    fn signal(&self, sig: &str) -> Res<()> {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status()?;
        if status.success() { Ok(()) } else { Err(format!("kill {sig}: {status}").into()) }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
