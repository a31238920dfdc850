//! An application loaded from its manifest, and the HTTP server that serves it.
//!
//! Each request is routed as Spin routes it and gets Spin's `spin-*` headers and full
//! URL. A WASIp2 component (`wasi:http/incoming-handler@0.2.x`) handles it in a fresh
//! instance, created from a pre-instantiated component so that instantiation is cheap.
//! A WASIp3 component (`wasi:http/handler@0.3.x`, e.g. spin-sdk 7) is served as Spin
//! serves it, through `wasmtime_wasi_http::handler::ProxyHandler`: its instances are
//! reused, sequentially and concurrently, within the limits of [`InstanceReuse`]
//! (Spin's `--max-instance-reuse-count`, `--max-instance-concurrent-reuse-count`,
//! `--idle-instance-timeout`, `--request-timeout`; see [`crate::reuse`]). A request
//! that matches no route gets `404` with an empty body; a guest that traps or never
//! answers (or, for WASIp3, outlives `--request-timeout`) gets `500` with an empty
//! body, as in Spin.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::allowed_hosts::AllowedHosts;
use crate::engine;
use crate::manifest::Manifest;
use crate::outbound_http::OutboundClients;
use crate::output::OutputSink;
use crate::pg::pool::PgPools;
use crate::reuse::{InstanceReuse, ReuseHandlerState};
use crate::routes::{ListedRoute, RouteMatch, Router};
use crate::state::{ComponentRuntime, Ctx};
use crate::variables::{ResolvedVariables, VariableProviders};

/// How to load and run an app.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The `spin.toml`.
    pub manifest: PathBuf,
    /// Where variable values come from.
    pub providers: VariableProviders,
    /// Print guest stdout/stderr on the host's stdout/stderr.
    pub forward_output: bool,
    /// Keep guest output lines in memory ([`App::logs`]).
    pub capture_output: bool,
    /// Where compiled components are kept between processes (`None`: memory only).
    pub cache_dir: Option<PathBuf>,
    /// Where each component's output is appended (`<id>_stdout.txt`, `<id>_stderr.txt`),
    /// as `spin up --log-dir`; `None`: no files.
    pub log_dir: Option<PathBuf>,
    /// How WASIp3 components' instances are reused (Spin's defaults:
    /// `InstanceReuse::default()`); WASIp2 components always get a fresh instance.
    pub reuse: InstanceReuse,
}

/// How a component's requests reach it.
enum Handler {
    /// WASIp2: a fresh instance of this pre-instance per request.
    P2(ProxyPre<Ctx>),
    /// WASIp3: instances reused by the handler, as in Spin.
    P3(ProxyHandler<ReuseHandlerState>),
}

struct LoadedComponent {
    handler: Handler,
    runtime: Arc<ComponentRuntime>,
}

/// A loaded application: compiled components, routes, resolved variables.
pub struct App {
    manifest: Manifest,
    router: Router,
    components: HashMap<String, LoadedComponent>,
    output: Arc<OutputSink>,
    pg_pools: Arc<PgPools>,
    self_authority: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.manifest.name)
            .field("components", &self.components.keys().collect::<Vec<_>>())
            .finish()
    }
}

type Response = hyper::Response<HyperOutgoingBody>;

fn empty(status: u16) -> Response {
    text(status, "")
}

fn text(status: u16, body: &str) -> Response {
    let body = Full::new(Bytes::copy_from_slice(body.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

impl App {
    /// Reads the manifest, resolves variables (failing as Spin does when a required one
    /// has no value), compiles every component (all at once) and prepares its
    /// instances. Its components share one set of outbound HTTP connection pools.
    pub fn load(options: &HostOptions) -> anyhow::Result<Self> {
        let manifest = Manifest::load(&options.manifest)?;
        let variables = ResolvedVariables::resolve(&manifest, &options.providers)?;
        let router = Router::build(manifest.http_triggers.iter().filter_map(|trigger| {
            trigger
                .route
                .as_deref()
                .map(|route| (route, trigger.component.as_str()))
        }))?;
        let output = OutputSink::with_log_dir(
            options.forward_output,
            options.capture_output,
            options.log_dir.clone(),
        );
        let pg_pools = Arc::new(PgPools::new());
        let http_clients = OutboundClients::new();
        let self_authority = Arc::new(OnceLock::new());
        let sources: Vec<&Path> = manifest
            .components
            .values()
            .map(|decl| decl.source.as_path())
            .collect();
        let mut compiled =
            engine::load_components(&sources, options.cache_dir.as_deref()).into_iter();
        let mut components = HashMap::new();
        for (id, decl) in &manifest.components {
            let component = compiled.next().expect("one compiled result per component");
            let allowed_hosts =
                AllowedHosts::resolve(&decl.allowed_outbound_hosts, variables.app_values())
                    .with_context(|| format!("component {id:?}: invalid allowed_outbound_hosts"))?;
            if let Some(problem) = allowed_hosts.configuration_error() {
                eprintln!(
                    "voice-edge-host: component {id:?}: every outbound request will be refused: {problem}"
                );
            }
            let component = component.with_context(|| format!("component {id:?}"))?;
            let pre = engine::linker()
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id:?} imports something this host does not provide")
                })?;
            let runtime = Arc::new(ComponentRuntime {
                id: id.clone(),
                variables: variables.component(id),
                allowed_hosts,
                pg_pools: pg_pools.clone(),
                http_clients: http_clients.clone(),
                output: output.clone(),
                environment: decl
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                self_authority: self_authority.clone(),
            });
            // As Spin: a component exporting `wasi:http/handler@0.3.x` is served with
            // instance reuse, one exporting `wasi:http/incoming-handler@0.2.x` without.
            let handler = match ServicePre::new(pre.clone()) {
                Ok(service) => Handler::P3(ProxyHandler::new(ReuseHandlerState::new(
                    service,
                    runtime.clone(),
                    options.reuse,
                ))),
                Err(_) => Handler::P2(ProxyPre::new(pre).map_err(anyhow::Error::from).with_context(
                    || {
                        format!(
                            "component {id:?} exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.x"
                        )
                    },
                )?),
            };
            components.insert(id.clone(), LoadedComponent { handler, runtime });
        }
        Ok(Self {
            manifest,
            router,
            components,
            output,
            pg_pools,
            self_authority,
        })
    }

    /// The routes, in manifest order.
    pub fn routes(&self) -> Vec<ListedRoute> {
        self.router.listed()
    }

    /// What `spin up` prints once it listens on `addr`.
    pub fn banner(&self, addr: SocketAddr) -> String {
        let base_url = format!("http://{addr}");
        let mut banner = format!("\nServing {base_url}\nAvailable Routes:\n");
        for route in self.routes() {
            banner.push_str(&format!("  {}: {base_url}{route}\n", route.component));
            if let Some(description) = self
                .manifest
                .components
                .get(&route.component)
                .and_then(|c| c.description.as_ref())
            {
                banner.push_str(&format!("    {description}\n"));
            }
        }
        banner
    }

    /// Captured guest output lines (when capture is on).
    pub fn logs(&self) -> Vec<String> {
        self.output.lines()
    }

    /// Closes the app's Postgres connections.
    pub async fn close(&self) {
        self.pg_pools.close().await;
    }

    /// Answers one HTTP request.
    pub async fn handle(
        &self,
        request: hyper::Request<Incoming>,
        client_addr: SocketAddr,
    ) -> Response {
        let path = request.uri().path().to_string();
        if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
            return match well_known {
                "health" => text(200, "OK"),
                "info" => {
                    let info = serde_json::json!({
                        "name": self.manifest.name,
                        "version": self.manifest.version,
                    });
                    let mut response = text(
                        200,
                        &serde_json::to_string_pretty(&info).unwrap_or_default(),
                    );
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    response
                }
                _ => empty(404),
            };
        }
        let Some(route) = self.router.route(&path) else {
            return empty(404);
        };
        match self.execute(request, &route, client_addr).await {
            Ok(response) => response,
            Err(error) => {
                self.output
                    .host_line(&format!("Error processing request: {error:?}"));
                empty(500)
            }
        }
    }

    fn prepare_request(
        mut request: hyper::Request<Incoming>,
        route: &RouteMatch,
        client_addr: SocketAddr,
    ) -> anyhow::Result<hyper::Request<Incoming>> {
        request.headers_mut().remove(http::header::CONNECTION);

        // The URI the guest sees is absolute: scheme, and the authority from `Host`.
        let header_authority = request
            .headers()
            .get(http::header::HOST)
            .map(|value| -> anyhow::Result<http::uri::Authority> {
                let text = value.to_str().context("'Host' header is not valid UTF-8")?;
                text.parse()
                    .context("'Host' header contains an invalid authority")
            })
            .transpose()?;
        let mut parts = request.uri().clone().into_parts();
        let authority = match (header_authority, parts.authority.take()) {
            (None, None) => anyhow::bail!("no 'Host' header present in request"),
            (None, Some(a)) | (Some(a), None) => a,
            (Some(a), Some(b)) if a != b => {
                anyhow::bail!("authority in 'Host' header does not match authority in URI")
            }
            (Some(a), Some(_)) => a,
        };
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *request.uri_mut() = http::Uri::from_parts(parts)?;

        let host = match request.headers().get(http::header::HOST) {
            Some(value) => value.to_str()?.to_string(),
            None => "localhost".to_string(),
        };
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let mut headers = http::HeaderMap::new();
        for (name, value) in request.headers() {
            value
                .to_str()
                .with_context(|| format!("header {name} is not valid UTF-8"))?;
            headers.append(name.clone(), value.clone());
        }
        let mut spin_headers = vec![
            ("spin-path-info".to_string(), route.path_info.clone()),
            (
                "spin-full-url".to_string(),
                format!("http://{host}{path_and_query}"),
            ),
            ("spin-matched-route".to_string(), route.based_route.clone()),
            ("spin-base-path".to_string(), "/".to_string()),
            (
                "spin-raw-component-route".to_string(),
                route.raw_route.clone(),
            ),
            (
                "spin-component-route".to_string(),
                route.component_route().to_string(),
            ),
            ("spin-client-addr".to_string(), client_addr.to_string()),
        ];
        for (name, value) in &route.named_wildcards {
            spin_headers.push((
                format!(
                    "spin-path-match-{}",
                    name.to_ascii_lowercase().replace('_', "-")
                ),
                value.clone(),
            ));
        }
        for (name, value) in spin_headers {
            let (Ok(name), Ok(value)) = (
                name.parse::<http::HeaderName>(),
                http::HeaderValue::from_str(&value),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        *request.headers_mut() = headers;
        Ok(request)
    }

    async fn execute(
        &self,
        request: hyper::Request<Incoming>,
        route: &RouteMatch,
        client_addr: SocketAddr,
    ) -> anyhow::Result<Response> {
        let component = self
            .components
            .get(&route.component)
            .ok_or_else(|| anyhow!("unknown component ID {:?}", route.component))?;
        let request = Self::prepare_request(request, route, client_addr)?;
        let pre = match &component.handler {
            Handler::P2(pre) => pre,
            Handler::P3(handler) => {
                let request = request
                    .map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
                return handler
                    .handle((), request)
                    .await
                    .map_err(anyhow::Error::from)
                    .context("guest invocation failed");
            }
        };
        let mut store = Store::new(engine::engine(), Ctx::new(component.runtime.clone()));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let proxy = pre.instantiate_async(&mut store).await?;
        let output = self.output.clone();
        let guest = tokio::spawn(async move {
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => {
                tokio::spawn(async move {
                    match guest.await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => output.host_line(&format!(
                            "Component error after response started: {error:?}"
                        )),
                        Err(error) => output
                            .host_line(&format!("Component error after response started: {error}")),
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => Err(anyhow!("guest failed to produce a response: {code:?}")),
            Err(_) => {
                guest
                    .await
                    .context("guest invocation panicked")?
                    .map_err(anyhow::Error::from)
                    .context("guest invocation failed")?;
                Err(anyhow!(
                    "guest failed to produce a response prior to returning"
                ))
            }
        }
    }

    /// Instantiates `component` `iterations` times without calling it, and reports how
    /// long each instantiation took (store creation included): the per-request overhead
    /// of the host, for benchmarks.
    pub async fn measure_instantiation(
        &self,
        component: &str,
        iterations: usize,
    ) -> anyhow::Result<InstantiationReport> {
        let loaded = self
            .components
            .get(component)
            .ok_or_else(|| anyhow!("no component {component:?}"))?;
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            match &loaded.handler {
                Handler::P2(pre) => {
                    let mut store = Store::new(engine::engine(), Ctx::new(loaded.runtime.clone()));
                    let _proxy = pre.instantiate_async(&mut store).await?;
                    drop(store);
                }
                Handler::P3(handler) => handler.state().instantiate_only().await?,
            }
            samples.push(started.elapsed());
        }
        Ok(InstantiationReport::from_samples(samples))
    }
}

/// Timings of repeated instantiations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantiationReport {
    /// How many instances were made.
    pub iterations: usize,
    /// Mean time per instance.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl InstantiationReport {
    fn from_samples(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let iterations = samples.len();
        if iterations == 0 {
            return Self {
                iterations,
                mean: Duration::ZERO,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                max: Duration::ZERO,
            };
        }
        let total: Duration = samples.iter().sum();
        let at = |fraction: f64| {
            samples[((iterations as f64 * fraction).ceil() as usize).clamp(1, iterations) - 1]
        };
        Self {
            iterations,
            mean: total / iterations as u32,
            p50: at(0.5),
            p99: at(0.99),
            max: samples[iterations - 1],
        }
    }
}

impl std::fmt::Display for InstantiationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} instantiations: mean {:?}, p50 {:?}, p99 {:?}, max {:?}",
            self.iterations, self.mean, self.p50, self.p99, self.max
        )
    }
}

/// A running server; dropping it does not stop it: call [`Server::shutdown`].
pub struct Server {
    app: Arc<App>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts serving `app` on `listener`.
    pub fn start(app: Arc<App>, listener: TcpListener) -> anyhow::Result<Self> {
        let local_addr = listener.local_addr()?;
        let _ = app.self_authority.set(local_addr.to_string());
        let (stop, mut stopped) = watch::channel(false);
        let serving = app.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, client_addr) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => break,
                };
                // No TCP_NODELAY, as in Spin (its HTTP trigger never sets it): a response
                // whose head is flushed before its body then waits for the client's
                // delayed ACK, and a client can tell.
                let app = serving.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request, client_addr).await) }
                    });
                    // HTTP/1.1 with keep-alive, and HTTP/2 with prior knowledge, as Spin.
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
            connections.shutdown().await;
        });
        Ok(Self {
            app,
            local_addr,
            stop,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The app it serves.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting, ends open connections and closes the Postgres pools.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.app.close().await;
    }

    /// Waits until the server stops (it only stops through [`Server::shutdown`]).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instantiation_report_orders_samples() {
        let report = InstantiationReport::from_samples(
            [3, 1, 2, 100]
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        );
        assert_eq!(report.iterations, 4);
        assert_eq!(report.p50, Duration::from_millis(2));
        assert_eq!(report.max, Duration::from_millis(100));
        assert_eq!(report.p99, Duration::from_millis(100));
    }
}
