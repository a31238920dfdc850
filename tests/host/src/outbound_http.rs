//! Outbound HTTP for guests over pooled connections, as Spin's outbound HTTP factor
//! sends it: one `hyper_util` legacy client per app, keyed by scheme and authority, so
//! that a guest's request reuses a kept-alive connection that an earlier request (of any
//! instance of any component of the app) opened to the same server.
//!
//! What a guest can observe is what it was with a new connection per request: the
//! allow-list is checked before this module is reached (see `state.rs`); HTTP/1.1 on
//! plain TCP or on TLS (rustls, Mozilla's roots from `webpki-roots`); the request
//! options' timeouts are honoured — the connect timeout bounds a new connection (name
//! lookup, TCP and the TLS handshake) and fails with `connection-timeout`; the first-byte
//! timeout bounds everything up to the response head and fails with
//! `connection-read-timeout`, as in Spin (whose first-byte timer also covers opening the
//! connection); the between-bytes timeout bounds each wait for more of the body and
//! fails with `connection-read-timeout`. Errors map to the same codes as wasmtime's
//! default client gives them. A connection whose response body is not read to the end
//! is closed rather than reused.

use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What wasmtime and Spin use for a timeout the guest did not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an idle pooled connection is kept (hyper's default, which Spin keeps).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The app's outbound HTTP clients: one pool for `http`, one for `https`. Cloning shares
/// the pools.
#[derive(Clone)]
pub struct OutboundClients {
    http: Client<TcpConnector, WasiBody>,
    https: Client<TlsConnector, WasiBody>,
}

impl std::fmt::Debug for OutboundClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClients").finish_non_exhaustive()
    }
}

impl Default for OutboundClients {
    fn default() -> Self {
        Self::new()
    }
}

impl OutboundClients {
    /// Empty pools; connections open on first use.
    pub fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let builder = || {
            let mut builder = Client::builder(TokioExecutor::new());
            builder
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(IDLE_TIMEOUT);
            builder
        };
        Self {
            http: builder().build(TcpConnector),
            https: builder().build(TlsConnector {
                config: Arc::new(tls),
            }),
        }
    }

    /// Sends `request` (whose URI is absolute) over a pooled or new connection, within
    /// the timeouts of `options`; the response body enforces the between-bytes timeout.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let timeouts = Timeouts::of(options);
        if request.uri().authority().is_none() {
            return Err(Error::HttpRequestUriInvalid);
        }
        let https = request.uri().scheme() == Some(&Scheme::HTTPS);
        let sent = CONNECT_TIMEOUT.scope(timeouts.connect, async {
            if https {
                self.https.request(request).await
            } else {
                self.http.request(request).await
            }
        });
        let response = tokio::time::timeout(timeouts.first_byte, sent)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(|error| client_error(&error))?;
        Ok(response.map(|body| BetweenBytes::new(body, timeouts.between_bytes).boxed_unsync()))
    }
}

/// The three timeouts of `wasi:http/types.request-options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn of(options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        Self {
            connect: options.connect_timeout.unwrap_or(DEFAULT_TIMEOUT),
            first_byte: options.first_byte_timeout.unwrap_or(DEFAULT_TIMEOUT),
            between_bytes: options.between_bytes_timeout.unwrap_or(DEFAULT_TIMEOUT),
        }
    }
}

tokio::task_local! {
    /// The connect timeout of the request being sent. The legacy client takes no
    /// per-request connector options, so the connector reads it from the sending task
    /// (as Spin's does); it is read when the connection starts, which happens inside
    /// the sending task even when the pool later finishes that connection in the
    /// background.
    static CONNECT_TIMEOUT: Duration;
}

fn connect_timeout() -> Duration {
    CONNECT_TIMEOUT
        .try_with(|timeout| *timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Why a new connection could not be opened; carried through the legacy client's error
/// to become the code the guest sees.
#[derive(Debug)]
enum ConnectFailure {
    Timeout,
    Tcp(std::io::Error),
    Tls(std::io::Error),
    InvalidDnsName,
    NoHost,
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("connect timed out"),
            Self::Tcp(error) => write!(f, "connect failed: {error}"),
            Self::Tls(error) => write!(f, "TLS handshake failed: {error}"),
            Self::InvalidDnsName => f.write_str("invalid DNS name"),
            Self::NoHost => f.write_str("no host in the URI"),
        }
    }
}

impl StdError for ConnectFailure {}

impl ConnectFailure {
    /// The error wasmtime's default client reports for the same failure.
    fn to_wasi(&self) -> Error {
        // `io::Error` is not `Clone`; kind and text are all wasmtime's mapping reads.
        let copy = |error: &std::io::Error| std::io::Error::new(error.kind(), error.to_string());
        match self {
            Self::Timeout => Error::ConnectionTimeout,
            Self::Tcp(error) => Error::Connect(copy(error)),
            Self::Tls(error) => Error::Tls(copy(error)),
            Self::InvalidDnsName => Error::DnsError {
                rcode: Some("invalid dns name".into()),
                info_code: None,
            },
            Self::NoHost => Error::HttpRequestUriInvalid,
        }
    }
}

/// The code for a failed `Client::request`: a connect failure as it happened, an error
/// code raised inside (a body the guest failed), else a protocol error — what wasmtime
/// gives a `hyper::Error` that carries no code.
fn client_error(error: &hyper_util::client::legacy::Error) -> Error {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(failure) = cause.downcast_ref::<ConnectFailure>() {
            return failure.to_wasi();
        }
        if let Some(code) = cause.downcast_ref::<ErrorCode>() {
            return Error::from(code.clone());
        }
        source = cause.source();
    }
    Error::HttpProtocolError
}

/// `host:port` of `uri`, with the scheme's port when it names none.
fn host_and_port(uri: &Uri, default_port: u16) -> Result<String, ConnectFailure> {
    let authority = uri.authority().ok_or(ConnectFailure::NoHost)?;
    Ok(match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None => format!("{}:{default_port}", authority.host()),
    })
}

async fn connect_tcp(
    uri: &Uri,
    default_port: u16,
    timeout: Duration,
) -> Result<TcpStream, ConnectFailure> {
    let address = host_and_port(uri, default_port)?;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectFailure::Timeout)?
        .map_err(ConnectFailure::Tcp)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The name the server's certificate must carry: an IP literal or a DNS name.
fn server_name(uri: &Uri) -> Result<ServerName<'static>, ConnectFailure> {
    let host = uri.host().ok_or(ConnectFailure::NoHost)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_string()).map_err(|_| ConnectFailure::InvalidDnsName)
}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, ConnectFailure>> + Send>>;

/// Opens plain TCP connections for the `http` pool.
#[derive(Clone)]
struct TcpConnector;

impl tower_service::Service<Uri> for TcpConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectFailure;
    type Future = Connecting<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = connect_timeout();
        Box::pin(async move { Ok(TokioIo::new(connect_tcp(&uri, 80, timeout).await?)) })
    }
}

/// Opens TLS connections for the `https` pool.
#[derive(Clone)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsConnection>;
    type Error = ConnectFailure;
    type Future = Connecting<Self::Response>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = connect_timeout();
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        Box::pin(async move {
            let name = server_name(&uri)?;
            let connect = async {
                let tcp = connect_tcp(&uri, 443, timeout).await?;
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(ConnectFailure::Tls)
            };
            let stream = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| ConnectFailure::Timeout)??;
            Ok(TokioIo::new(TlsConnection(stream)))
        })
    }
}

/// A TLS stream the pool can hold (the pool asks each connection what it is).
struct TlsConnection(TlsStream<TcpStream>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        self.0.get_ref().0.connected()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// A response body that fails with `connection-read-timeout` when no frame arrives
/// within the between-bytes timeout. On that failure the connection is dropped, never
/// returned to the pool half read.
struct BetweenBytes {
    body: Option<Incoming>,
    timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BetweenBytes {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body: Some(body),
            timeout,
            timer: None,
        }
    }
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|frame| {
                    frame.map_err(|error| {
                        if error.is_timeout() {
                            Error::HttpResponseTimeout
                        } else {
                            Error::Hyper(error)
                        }
                    })
                }))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.body = None;
                        this.timer = None;
                        Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A keep-alive HTTP/1.1 server on loopback: each request gets `first`, then,
    /// `pause` later, `rest`. Returns its port and how many connections it accepted.
    fn server(
        first: &'static [u8],
        pause: Duration,
        rest: &'static [u8],
    ) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut buffer = [0u8; 4096];
                    loop {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buffer) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buffer[..n]),
                            }
                        }
                        seen.clear();
                        if stream.write_all(first).is_err() {
                            return;
                        }
                        std::thread::sleep(pause);
                        if stream.write_all(rest).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    fn get(port: u16, path: &str) -> http::Request<WasiBody> {
        http::Request::get(format!("http://127.0.0.1:{port}{path}"))
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    fn options(first_byte: Option<u64>, between_bytes: Option<u64>) -> Option<RequestOptions> {
        Some(RequestOptions {
            connect_timeout: None,
            first_byte_timeout: first_byte.map(Duration::from_millis),
            between_bytes_timeout: between_bytes.map(Duration::from_millis),
        })
    }

    async fn read_all(response: http::Response<WasiBody>) -> Result<Bytes, Error> {
        Ok(response.into_body().collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn sequential_requests_to_one_server_share_a_connection() {
        let (port, accepted) = server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            Duration::ZERO,
            b"",
        );
        let clients = OutboundClients::new();
        for _ in 0..3 {
            let response = clients.send(get(port, "/"), None).await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(read_all(response).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_not_reused() {
        let (port, accepted) = server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            Duration::ZERO,
            b"",
        );
        let clients = OutboundClients::new();
        for _ in 0..2 {
            let response = clients.send(get(port, "/"), None).await.unwrap();
            assert_eq!(read_all(response).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_slow_response_head_is_a_read_timeout() {
        let (port, _) = server(
            b"",
            Duration::from_secs(2),
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        );
        let clients = OutboundClients::new();
        let error = clients
            .send(get(port, "/"), options(Some(100), None))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::ConnectionReadTimeout), "{error:?}");
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_read_timeout_and_its_connection_is_not_reused() {
        let (port, accepted) = server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok",
            Duration::from_millis(500),
            b"ok",
        );
        let clients = OutboundClients::new();
        let response = clients
            .send(get(port, "/"), options(None, Some(100)))
            .await
            .unwrap();
        let error = read_all(response).await.unwrap_err();
        assert!(matches!(error, Error::ConnectionReadTimeout), "{error:?}");
        let response = clients
            .send(get(port, "/"), options(None, Some(2_000)))
            .await
            .unwrap();
        assert_eq!(read_all(response).await.unwrap(), "okok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let error = OutboundClients::new()
            .send(get(port, "/"), None)
            .await
            .unwrap_err();
        match error {
            Error::Connect(io) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_connection_not_accepted_in_time_is_a_connect_timeout() {
        // A listener whose accept queue is full: the kernel drops further handshakes.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let address = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..8 {
            match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(address))
                .await
            {
                Ok(Ok(stream)) => queued.push(stream),
                _ => break,
            }
        }
        let started = std::time::Instant::now();
        let error = OutboundClients::new()
            .send(
                get(address.port(), "/"),
                Some(RequestOptions {
                    connect_timeout: Some(Duration::from_millis(200)),
                    first_byte_timeout: None,
                    between_bytes_timeout: None,
                }),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, Error::ConnectionTimeout), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop((listener, queued));
    }

    #[tokio::test]
    async fn https_to_a_server_that_does_not_speak_tls_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let request = http::Request::get(format!("https://127.0.0.1:{port}/"))
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let error = OutboundClients::new()
            .send(request, options(Some(5_000), None))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Tls(_)), "{error:?}");
    }

    #[test]
    fn server_names_are_ip_literals_or_dns_names() {
        let name = |uri: &str| server_name(&uri.parse().unwrap());
        assert_eq!(
            name("https://127.0.0.1:8443/").unwrap(),
            ServerName::from(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            name("https://[::1]:8443/").unwrap(),
            ServerName::from("::1".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            name("https://api.openai.com/v1").unwrap(),
            ServerName::try_from("api.openai.com").unwrap()
        );
    }

    #[test]
    fn a_missing_port_is_the_schemes() {
        let uri: Uri = "https://api.openai.com/v1".parse().unwrap();
        assert_eq!(host_and_port(&uri, 443).unwrap(), "api.openai.com:443");
        let uri: Uri = "http://127.0.0.1:9100/x".parse().unwrap();
        assert_eq!(host_and_port(&uri, 80).unwrap(), "127.0.0.1:9100");
    }

    #[test]
    fn unset_timeouts_are_wasmtimes_default() {
        assert_eq!(
            Timeouts::of(options(Some(5), None)),
            Timeouts {
                connect: DEFAULT_TIMEOUT,
                first_byte: Duration::from_millis(5),
                between_bytes: DEFAULT_TIMEOUT,
            }
        );
    }
}
