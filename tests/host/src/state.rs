//! What one instance's store holds: WASI, wasi:http with the outbound allow-list, and
//! the component's view of the app (variables, allowed hosts, Postgres pools, outbound
//! HTTP pools, where its output goes).

use std::future::Future;
use std::sync::{Arc, OnceLock};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::fermyon::spin::variables;
use crate::outbound_http::OutboundClients;
use crate::output::{OutputSink, Stream};
use crate::pg::pool::PgPools;
use crate::variables::{ComponentVariables, GetError};

/// Everything about one component that outlives its instances.
pub struct ComponentRuntime {
    /// The component id.
    pub id: String,
    /// What `fermyon:spin/variables.get` answers.
    pub variables: ComponentVariables,
    /// The resolved `allowed_outbound_hosts`.
    pub allowed_hosts: AllowedHosts,
    /// The app's Postgres pools.
    pub pg_pools: Arc<PgPools>,
    /// The app's outbound HTTP connection pools.
    pub http_clients: OutboundClients,
    /// Where guest stdout/stderr go.
    pub output: Arc<OutputSink>,
    /// WASI environment variables from the manifest.
    pub environment: Vec<(String, String)>,
    /// `host:port` the app listens on, for requests to the app itself.
    pub self_authority: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for ComponentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentRuntime")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The data of one instance's store.
pub struct Ctx {
    /// Resources of every interface.
    pub table: ResourceTable,
    /// WASI 0.2.
    pub wasi: WasiCtx,
    /// wasi:http.
    pub http: WasiHttpCtx,
    /// The outbound HTTP policy.
    pub hooks: OutboundHttp,
    /// The component this instance belongs to.
    pub component: Arc<ComponentRuntime>,
}

impl Ctx {
    /// Fresh state for one instance of `component`.
    pub fn new(component: Arc<ComponentRuntime>) -> Self {
        let mut builder = WasiCtx::builder();
        builder
            .stdout(component.output.stream(&component.id, Stream::Stdout))
            .stderr(component.output.stream(&component.id, Stream::Stderr))
            .envs(&component.environment);
        Self {
            table: ResourceTable::new(),
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp {
                component: component.clone(),
            },
            component,
        }
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl variables::Host for Ctx {
    async fn get(&mut self, name: String) -> Result<String, variables::Error> {
        self.component
            .variables
            .get(&name)
            .map_err(|error| match error {
                GetError::InvalidName(text) => variables::Error::InvalidName(text),
                GetError::Undefined(text) => variables::Error::Undefined(text),
            })
    }
}

/// Outbound HTTP for one instance: requests to hosts outside `allowed_outbound_hosts`
/// fail with `HttpRequestDenied` before any connection is made, as in Spin; the rest go
/// through the app's pooled clients ([`OutboundClients`]), which honour the request's
/// connect, first-byte and between-bytes timeouts.
pub struct OutboundHttp {
    component: Arc<ComponentRuntime>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let allowed = &self.component.allowed_hosts;
        let authority_host = request.uri().authority().map(|a| a.host().to_string());
        let to_self = match authority_host.as_deref() {
            None | Some("") | Some("self.alt") => true,
            Some(_) => false,
        };
        let permitted = if to_self {
            allowed.allows_self()
        } else {
            allowed.allows_url(&request.uri().to_string(), "https")
        };
        if !permitted {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if to_self {
            let Some(authority) = self.component.self_authority.get().cloned() else {
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid) });
            };
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            match format!("http://{authority}{path}").parse() {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => {
                    return Box::new(async {
                        Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid)
                    });
                }
            }
            if let Ok(value) = http::HeaderValue::from_str(&authority) {
                request.headers_mut().insert(http::header::HOST, value);
            }
        }
        let clients = self.component.http_clients.clone();
        Box::new(async move {
            let response = clients.send(request, options).await?;
            // The pool's own tasks drive the connection: nothing is left for the caller.
            let driven: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, driven))
        })
    }
}
