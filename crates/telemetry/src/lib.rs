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
