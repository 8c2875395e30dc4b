#![doc = include_str!("../README.md")]

use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Install the process-wide subscriber: `RUST_LOG` filter (default `info`), stderr (stdout is
/// kept clean for generated output such as the CRD YAML), text or JSON. Safe to call twice.
pub fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init()
    };
    // A second init (tests start several services in one process) keeps the first subscriber.
    let _ = result;
}

/// Quiet tracing for tests: nothing unless `TEST_LOG` is set.
pub fn init_test_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        init_tracing(false);
    }
}

/// Panics go through tracing, in the service's log format with where they happened, instead of
/// as raw lines on stderr. One that `contained` says is being caught on purpose (a parser fed a
/// peer's malformed input, e.g. `onair_rtmp::containing`) is that peer's bad input: logged at
/// DEBUG, so a peer cannot make the service write a line per message it sends. Any other is an
/// ERROR, and the previous hook still runs (a backtrace with `RUST_BACKTRACE`).
pub fn install_panic_hook(contained: fn() -> bool) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if contained() {
            tracing::debug!(%location, %message, "contained panic on malformed input");
        } else {
            tracing::error!(%location, %message, "panic");
            previous(info);
        }
    }));
}

/// A registry whose metric names all start with `onair_<service>_`.
pub fn registry(service: &str) -> Registry {
    Registry::with_prefix(format!("onair_{}", service.replace('-', "_")))
}

/// Render a registry in the Prometheus/OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
