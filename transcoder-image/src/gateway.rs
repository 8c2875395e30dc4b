//! `onair ingest-gateway`: one RTMP address for every streamer. It reads the stream key from
//! the publish command, checks it with the apiserver (a wrong key never reaches a pod), and
//! re-publishes the session to that stream's own ingest pod, holding the publisher for a
//! bounded time while the pod is not ready yet.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use onair_config::secret;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType, ServerSession,
    ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::api::ApiClient;
use crate::metrics::ReasonLabels;
use crate::rtmp::{APP, server_handshake};

#[derive(clap::Args, Debug, Clone)]
pub struct GatewayConfig {
    /// The one RTMP address streamers publish to (behind one LoadBalancer Service).
    #[arg(long = "rtmp-listen", env = "ONAIR_GATEWAY_RTMP_LISTEN", default_value = "127.0.0.1:1936")]
    pub rtmp_listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    #[arg(long = "http-listen", env = "ONAIR_GATEWAY_LISTEN", default_value = "127.0.0.1:8092")]
    pub http_listen: SocketAddr,
    #[arg(long, env = "ONAIR_APISERVER_URL", default_value = "http://127.0.0.1:8080")]
    pub apiserver_url: String,
    #[arg(long, env = "ONAIR_INTERNAL_TOKEN", value_parser = secret)]
    pub internal_token: SecretString,
    /// Where a stream's ingest pod listens; `{stream_id}` and `{namespace}` are filled in (the
    /// operator's RTMP Service for the apiserver's LiveStream `stream-{stream_id}`).
    #[arg(
        long,
        env = "ONAIR_INGEST_UPSTREAM",
        default_value = "stream-{stream_id}-ingest.{namespace}.svc.cluster.local:1935"
    )]
    pub upstream: String,
    #[arg(long, env = "ONAIR_STREAMS_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Seconds a publisher is held while its pod is not ready yet.
    #[arg(long, env = "ONAIR_INGEST_HOLD_SECS", default_value_t = 20)]
    pub hold_secs: u64,
    #[arg(long, env = "ONAIR_RTMP_READ_TIMEOUT", default_value_t = 15)]
    pub read_timeout_secs: u64,
    /// Publishers handled at once; more wait in the listen backlog until one leaves.
    #[arg(long, env = "ONAIR_GATEWAY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Publishers from one address at once (0: no limit); more are closed at once.
    #[arg(long, env = "ONAIR_GATEWAY_MAX_PER_IP", default_value_t = crate::accept::DEFAULT_MAX_PER_IP)]
    pub max_per_ip: usize,
    /// Seconds a publisher has to finish its handshake and ask to publish.
    #[arg(long, env = "ONAIR_RTMP_PUBLISH_DEADLINE", default_value_t = onair_rtmp::DEFAULT_PUBLISH_DEADLINE_SECS)]
    pub publish_deadline_secs: u64,
}

impl GatewayConfig {
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        onair_config::parse_args("ingest-gateway", args)
    }

    fn upstream_for(&self, stream: uuid::Uuid) -> String {
        self.upstream.replace("{stream_id}", &stream.to_string()).replace("{namespace}", &self.namespace)
    }
}

#[derive(Clone)]
struct Gateway {
    config: std::sync::Arc<GatewayConfig>,
    api: ApiClient,
    refused: Family<ReasonLabels, Counter>,
    forwarding: Gauge,
    held: Counter,
}

pub struct IngestGateway {
    rtmp: TcpListener,
    http: TcpListener,
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    gw: Gateway,
    registry: std::sync::Arc<prometheus_client::registry::Registry>,
}

impl IngestGateway {
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let api = ApiClient::new(&config.apiserver_url, config.internal_token.clone())?;
        let mut registry = onair_telemetry::registry("ingest_gateway");
        let refused = Family::<ReasonLabels, Counter>::default();
        let forwarding = Gauge::default();
        let held = Counter::default();
        registry.register("refused", "Publishers refused, by reason", refused.clone());
        registry.register("forwarding", "Publishers being forwarded to their ingest pod", forwarding.clone());
        registry.register("held", "Publishers held until their pod was ready", held.clone());
        let rtmp = TcpListener::bind(config.rtmp_listen).await?;
        let http = TcpListener::bind(config.http_listen).await?;
        let (rtmp_addr, http_addr) = (rtmp.local_addr()?, http.local_addr()?);
        let gw = Gateway { config: std::sync::Arc::new(config), api, refused, forwarding, held };
        Ok(Self { rtmp, http, rtmp_addr, http_addr, gw, registry: std::sync::Arc::new(registry) })
    }

    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(rtmp = %self.rtmp_addr(), http = %self.http_addr(), "ingest gateway listening");
        let gw = self.gw.clone();
        let rtmp = self.rtmp;
        let limits = crate::accept::Limits { max: gw.config.max_connections, per_ip: gw.config.max_per_ip };
        let refuse = gw.clone();
        let refused = move |peer: SocketAddr| {
            tracing::debug!(%peer, "publisher refused: too many from its address");
            refuse.refuse("too_many_from_address");
        };
        let accept = tokio::spawn(crate::accept::serve(rtmp, limits, refused, move |tcp, peer| {
            let gw = gw.clone();
            async move {
                if let Err(e) = gw.handle(tcp).await {
                    tracing::info!(peer = %peer, error = %e, "ingest session ended");
                }
            }
        }));
        let registry = self.registry.clone();
        let router = axum::Router::new()
            .route("/healthz", axum::routing::get(onair_web::healthz))
            .route("/readyz", axum::routing::get(onair_web::healthz))
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let res = onair_web::metrics_response(&registry);
                    async move { res }
                }),
            );
        let result =
            onair_web::serve(self.http, onair_web::finish_router(router, onair_web::Limits::default()), shutdown).await;
        accept.abort();
        Ok(result?)
    }
}

fn rtmp_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("rtmp: {e:?}")
}

/// The publisher's side until its publish request: handshake, connect, createStream.
enum Start {
    Publish { request_id: u32, stream_key: String },
    Gone,
}

impl Gateway {
    fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    async fn handle(&self, mut tcp: TcpStream) -> anyhow::Result<()> {
        let _ = tcp.set_nodelay(true);
        let timeout = Duration::from_secs(self.config.read_timeout_secs.max(1));
        let mut buf = vec![0u8; 64 * 1024];
        // However steadily it trickles, a connection asks to publish within the deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.publish_deadline_secs.max(1));
        let handshake = tokio::time::timeout_at(deadline, server_handshake(&mut tcp, &mut buf, timeout));
        let Some(remaining) = handshake.await.map_err(|_| anyhow::anyhow!("no publish request in time"))?? else {
            return Ok(());
        };
        let (mut server, initial) = ServerSession::new(ServerSessionConfig::new()).map_err(rtmp_err)?;
        write_server(&mut tcp, initial).await?;
        // Up to the publish request, answer as a server would.
        let mut input = remaining;
        let start = loop {
            let results = if input.is_empty() { Vec::new() } else { onair_rtmp::server_input(&mut server, &input)? };
            input.clear();
            let mut found = None;
            for r in results {
                match r {
                    ServerSessionResult::OutboundResponse(p) => tcp.write_all(&p.bytes).await?,
                    ServerSessionResult::RaisedEvent(ServerSessionEvent::ConnectionRequested {
                        request_id,
                        app_name,
                    }) => {
                        if app_name != APP {
                            self.refuse("unknown_app");
                            let r = server.reject_request(
                                request_id,
                                "NetConnection.Connect.Rejected",
                                "unknown application",
                            );
                            write_server(&mut tcp, r.map_err(rtmp_err)?).await?;
                            return Ok(());
                        }
                        write_server(&mut tcp, server.accept_request(request_id).map_err(rtmp_err)?).await?;
                    }
                    ServerSessionResult::RaisedEvent(ServerSessionEvent::PublishStreamRequested {
                        request_id,
                        stream_key,
                        ..
                    }) => found = Some(Start::Publish { request_id, stream_key }),
                    _ => {}
                }
            }
            if let Some(s) = found {
                break s;
            }
            let until = deadline.min(tokio::time::Instant::now() + timeout);
            let n = tokio::time::timeout_at(until, tcp.read(&mut buf))
                .await
                .map_err(|_| anyhow::anyhow!("stalled before publishing"))??;
            if n == 0 {
                break Start::Gone;
            }
            input.extend_from_slice(&buf[..n]);
        };
        let Start::Publish { request_id, stream_key } = start else { return Ok(()) };

        // The key is checked here; a refused one never reaches a pod. It is never logged.
        let owner = match self.api.verify_key(&stream_key).await {
            Ok(o) => o,
            Err(r) => {
                self.refuse(r.label());
                tracing::warn!(reason = r.label(), "publisher refused at the gateway");
                let rej =
                    server.reject_request(request_id, "NetStream.Publish.BadName", r.label()).map_err(rtmp_err)?;
                write_server(&mut tcp, rej).await?;
                return Ok(());
            }
        };
        let upstream_addr = self.config.upstream_for(owner.stream_id.0);
        let (mut up, mut client) = match self.connect_upstream(&upstream_addr, &stream_key).await {
            Ok(u) => u,
            Err(e) => {
                self.refuse("pod_unavailable");
                tracing::warn!(stream_id = %owner.stream_id, error = %e, "ingest pod not reachable in time");
                let rej =
                    server.reject_request(request_id, "NetStream.Publish.Failed", "try again").map_err(rtmp_err)?;
                write_server(&mut tcp, rej).await?;
                return Ok(());
            }
        };
        write_server(&mut tcp, server.accept_request(request_id).map_err(rtmp_err)?).await?;
        tracing::info!(stream_id = %owner.stream_id, upstream = %upstream_addr, "publisher forwarded");
        self.forwarding.inc();
        let res = forward(&mut tcp, &mut server, &mut up, &mut client, timeout).await;
        self.forwarding.dec();
        res
    }

    /// Connect to the stream's pod as a publisher; retry until the hold runs out (the pod may be
    /// starting: the operator has only just been asked for it).
    async fn connect_upstream(&self, addr: &str, key: &str) -> anyhow::Result<(TcpStream, ClientSession)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.hold_secs);
        let mut first = true;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), publish_upstream(addr, key)).await {
                Ok(Ok(u)) => return Ok(u),
                Ok(Err(e)) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) if tokio::time::Instant::now() >= deadline => anyhow::bail!("upstream did not answer"),
                _ => {
                    if first {
                        self.held.inc();
                        first = false;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

async fn write_server(tcp: &mut TcpStream, results: Vec<ServerSessionResult>) -> anyhow::Result<()> {
    for r in results {
        if let ServerSessionResult::OutboundResponse(p) = r {
            tcp.write_all(&p.bytes).await?;
        }
    }
    Ok(())
}

async fn write_client(
    tcp: &mut TcpStream,
    results: Vec<ClientSessionResult>,
) -> anyhow::Result<Vec<ClientSessionEvent>> {
    let mut events = Vec::new();
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => tcp.write_all(&p.bytes).await?,
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            _ => {}
        }
    }
    Ok(events)
}

/// Handshake, connect to `live`, publish `key`: a session ready for media.
async fn publish_upstream(addr: &str, key: &str) -> anyhow::Result<(TcpStream, ClientSession)> {
    let mut up = TcpStream::connect(addr).await?;
    let _ = up.set_nodelay(true);
    let mut hs = Handshake::new(PeerType::Client);
    up.write_all(&hs.generate_outbound_p0_and_p1().map_err(rtmp_err)?).await?;
    let mut buf = vec![0u8; 16 * 1024];
    let remaining = loop {
        let n = up.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "upstream closed during the handshake");
        match hs.process_bytes(&buf[..n]).map_err(rtmp_err)? {
            HandshakeProcessResult::InProgress { response_bytes } => up.write_all(&response_bytes).await?,
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                up.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let (mut client, initial) = ClientSession::new(ClientSessionConfig::new()).map_err(rtmp_err)?;
    write_client(&mut up, initial).await?;
    write_client(&mut up, vec![client.request_connection(APP.to_string()).map_err(rtmp_err)?]).await?;
    let mut input = remaining;
    let mut asked_publish = false;
    loop {
        if !input.is_empty() {
            let results = client.handle_input(&input).map_err(rtmp_err)?;
            input.clear();
            for ev in write_client(&mut up, results).await? {
                match ev {
                    ClientSessionEvent::ConnectionRequestAccepted if !asked_publish => {
                        asked_publish = true;
                        let r =
                            client.request_publishing(key.to_string(), PublishRequestType::Live).map_err(rtmp_err)?;
                        write_client(&mut up, vec![r]).await?;
                    }
                    ClientSessionEvent::PublishRequestAccepted => return Ok((up, client)),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        anyhow::bail!("upstream refused the connection: {description}")
                    }
                    _ => {}
                }
            }
        }
        let n = up.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "upstream closed before accepting the publish");
        input.extend_from_slice(&buf[..n]);
    }
}

/// Publisher -> pod, message by message (metadata, audio, video), until either side ends.
async fn forward(
    tcp: &mut TcpStream,
    server: &mut ServerSession,
    up: &mut TcpStream,
    client: &mut ClientSession,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut up_buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = tokio::time::timeout(timeout, tcp.read(&mut buf)) => {
                let n = n.map_err(|_| anyhow::anyhow!("publisher sent nothing for {} s", timeout.as_secs()))??;
                if n == 0 {
                    return Ok(());
                }
                for r in onair_rtmp::server_input(server, &buf[..n])? {
                    let out = match r {
                        ServerSessionResult::OutboundResponse(p) => {
                            tcp.write_all(&p.bytes).await?;
                            continue;
                        }
                        ServerSessionResult::RaisedEvent(ServerSessionEvent::StreamMetadataChanged { metadata, .. }) => {
                            client.publish_metadata(&metadata).map_err(rtmp_err)?
                        }
                        ServerSessionResult::RaisedEvent(ServerSessionEvent::VideoDataReceived { data, timestamp, .. }) => {
                            client.publish_video_data(Bytes::from(data.to_vec()), timestamp, false).map_err(rtmp_err)?
                        }
                        ServerSessionResult::RaisedEvent(ServerSessionEvent::AudioDataReceived { data, timestamp, .. }) => {
                            client.publish_audio_data(Bytes::from(data.to_vec()), timestamp, false).map_err(rtmp_err)?
                        }
                        ServerSessionResult::RaisedEvent(ServerSessionEvent::PublishStreamFinished { .. }) => return Ok(()),
                        _ => continue,
                    };
                    write_client(up, vec![out]).await?;
                }
            }
            n = up.read(&mut up_buf) => {
                // The pod's acknowledgements and pings; a closed pod ends the session, and the
                // publisher's reconnect lands on its replacement through this gateway.
                let n = n?;
                anyhow::ensure!(n > 0, "the ingest pod closed the stream");
                let results = client.handle_input(&up_buf[..n]).map_err(rtmp_err)?;
                write_client(up, results).await?;
            }
        }
    }
}
