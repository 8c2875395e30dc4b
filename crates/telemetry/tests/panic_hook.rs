//! Panics are logged through tracing: one inside rml_rtmp that `onair-rtmp` contains (a peer's
//! malformed message) at DEBUG only, any other at ERROR. Its own test binary: the hook is global.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn contained_panics_are_debug_lines_and_others_errors() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone()));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    onair_telemetry::install_panic_hook(onair_rtmp::containing);

    // A command with one AMF0 value: rml_rtmp 0.8 panics inside; onair-rtmp contains it.
    let (mut session, _) =
        rml_rtmp::sessions::ServerSession::new(rml_rtmp::sessions::ServerSessionConfig::new()).unwrap();
    let payload = [0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't'];
    let mut chunk = vec![0x03, 0, 0, 0, 0, 0, payload.len() as u8, 0x14, 0, 0, 0, 0];
    chunk.extend_from_slice(&payload);
    assert!(onair_rtmp::server_input(&mut session, &chunk).is_err());
    // Anything else.
    assert!(std::panic::catch_unwind(|| panic!("a real bug")).is_err());

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let contained: Vec<&&str> = lines.iter().filter(|l| l.contains("contained panic")).collect();
    assert_eq!(contained.len(), 1, "{log}");
    assert!(contained[0].contains("DEBUG") && !log.contains("ERROR onair_telemetry: panic location=/rustc"), "{log}");
    let bug: Vec<&&str> = lines.iter().filter(|l| l.contains("a real bug")).collect();
    assert!(bug.len() == 1 && bug[0].contains("ERROR"), "{log}");
}
