//! A streamer: ffmpeg publishing a test pattern over RTMP, through a relay the suite can cut
//! (the network dropping the connection, not the encoder dying), and started again 2 s after it
//! exits, as OBS's automatic reconnect does.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// OBS's default delay before it reconnects.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

pub struct Publisher {
    cut: watch::Sender<u64>,
}

impl Publisher {
    /// Starts publishing `key` to `rtmp` (the media worker's RTMP address) until `stop` is dropped.
    pub async fn start(rtmp: SocketAddr, key: String, stop: watch::Receiver<bool>) -> anyhow::Result<Self> {
        let relay = TcpListener::bind("127.0.0.1:0").await?;
        let relay_addr = relay.local_addr()?;
        let (cut, cut_rx) = watch::channel(0u64);
        tokio::spawn(relay_loop(relay, rtmp, cut_rx));
        tokio::spawn(encoder_loop(format!("rtmp://{relay_addr}/live/{key}"), stop));
        Ok(Self { cut })
    }

    /// Drops the publisher's connection mid-stream.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn relay_loop(relay: TcpListener, upstream: SocketAddr, cut: watch::Receiver<u64>) {
    loop {
        let Ok((mut client, _)) = relay.accept().await else { continue };
        let mut cut = cut.clone();
        cut.mark_unchanged();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
            // Dropping both ends closes them: the encoder sees its connection fail.
        });
    }
}

async fn encoder_loop(url: String, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let child = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-b:v", "800k"])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
            .arg(&url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("ffmpeg could not start (scripts/services.sh installs it)");
            return;
        };
        tokio::select! {
            _ = child.wait() => {}
            _ = stop.changed() => { let _ = child.kill().await; return; }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            _ = stop.changed() => return,
        }
    }
}
