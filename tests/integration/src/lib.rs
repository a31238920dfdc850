//! `voice-edge-integration`: real HTTP through the host to the built components, against
//! a real PostgreSQL. The tests live in `tests/`; this library holds what they share:
//! an HTTP client that takes every status as an answer, a reader of responses off a raw
//! connection, HS256 tokens minted as Supabase Auth mints them, the variables every app
//! start needs, and users in `auth.users`.
//!
//! ```sh
//! make build-components
//! cargo test --profile host -p voice-edge-integration
//! ```

use std::io::{self, BufRead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use voice_edge_testkit::app::TestApp;
use voice_edge_testkit::pg::TestDb;

/// The ClassConnect webhook secret every app is started with (32 bytes of key).
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------------------------------
// HTTP

/// An answer of the app, whatever its status.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub text: String,
    /// The body as JSON; a body that is not JSON is a JSON string of its text.
    pub body: Value,
}

impl Response {
    fn from_text(status: u16, headers: Vec<(String, String)>, text: String) -> Response {
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Response {
            status,
            headers,
            text,
            body,
        }
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

/// Sends one request and returns the answer; only a failure to get one panics.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.to_vec()).expect("a valid request");
    let mut response = agent.run(request).expect("the app answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Response::from_text(status, headers, text)
}

/// The address of `url` (`http://host:port/…`) and the head of a `POST` to it with
/// `headers`, a `content-length` of `length` and `connection: close`.
fn post_head<'a>(url: &'a str, headers: &[(&str, &str)], length: usize) -> (&'a str, String) {
    let rest = url.trim_start_matches("http://");
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {address}\r\ncontent-length: {length}\r\nconnection: close\r\n",
        if path.is_empty() { "/" } else { path },
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    (address, head)
}

/// Posts `body` with its `content-length` over a raw connection, writing it from another
/// thread while this one reads the answer. For bodies the app refuses before reading
/// them whole (`413`): the app answers and closes while the client is still sending, so a
/// client that must finish writing before it reads (ureq) can fail with a broken pipe on
/// a loaded machine instead of seeing the answer.
pub fn post_while_sending(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
    let (address, head) = post_head(url, headers, body.len());
    let mut stream = std::net::TcpStream::connect(address).expect("connecting to the app");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    io::Write::write_all(&mut stream, head.as_bytes()).expect("sending the head");
    let mut writer = stream
        .try_clone()
        .expect("a second handle on the connection");
    // The app may stop reading at its limit: a failed write is expected, not an error.
    let sender = std::thread::spawn(move || {
        let _ = io::Write::write_all(&mut writer, &body);
    });
    let mut reader = io::BufReader::new(stream);
    let answer = read_response(&mut reader).expect("the app answers while the body is sent");
    let _ = reader.get_ref().shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    answer
}

/// Posts `body` over a raw connection in two halves, `pause` apart, and reads the
/// answer: the request stays in the app, waiting for the rest of its body, for at least
/// `pause`, so that many such requests are in progress at once.
pub fn post_slowly(url: &str, headers: &[(&str, &str)], body: &[u8], pause: Duration) -> Response {
    let (address, head) = post_head(url, headers, body.len());
    let (first, second) = body.split_at(body.len() / 2);
    let mut stream = std::net::TcpStream::connect(address).expect("connecting to the app");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    stream.set_nodelay(true).expect("no delay");
    io::Write::write_all(&mut stream, head.as_bytes()).expect("sending the head");
    io::Write::write_all(&mut stream, first).expect("sending the first half");
    std::thread::sleep(pause);
    io::Write::write_all(&mut stream, second).expect("sending the second half");
    let mut reader = io::BufReader::new(stream);
    read_response(&mut reader).expect("the app answers")
}

/// Reads one response off a raw HTTP/1.1 connection, for tests that write requests by
/// hand: the status line, the headers (names lower-cased), and as many body bytes as
/// `content-length` says, which must be UTF-8 (the app answers JSON or text). The app
/// gives every response a `content-length` (`voice_edge_shared::http::send`;
/// `tests/response_framing.rs` checks it), so a response without one, or chunked, is an
/// `InvalidData` error, never a second way of reading; a connection that closes before
/// the response is whole is `UnexpectedEof`.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let mut read_line = |part: &str| {
        let mut line = String::new();
        match reader.read_line(&mut line)? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the connection closed before the response's {part}"),
            )),
            _ => Ok(line.trim_end().to_string()),
        }
    };
    let status_line = read_line("status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line("headers")?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("not a header line: {line:?}")))?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if let Some(encoding) = header("transfer-encoding") {
        return Err(invalid(format!(
            "a {status} response with transfer-encoding: {encoding}, not framed by content-length"
        )));
    }
    let length = header("content-length")
        .ok_or_else(|| invalid(format!("a {status} response without content-length")))?;
    let length: usize = length
        .parse()
        .map_err(|_| invalid(format!("a {status} response with content-length: {length}")))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let text = String::from_utf8(body)
        .map_err(|_| invalid(format!("a {status} response whose body is not UTF-8")))?;
    Ok(Response::from_text(status, headers, text))
}

/// `Bearer {token}`, for an `authorization` header.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------
// JWTs, minted with the secret the app is given

/// Now, in unix seconds.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Waits, when needed, until at least `needed` seconds are left in `db`'s current
/// minute, so that a burst of requests falls in one rate-limit window (the windows
/// follow the database's clock).
pub fn wait_for_room_in_the_window(db: &TestDb, needed: f64) {
    let left: f64 = db
        .client()
        .query_one(
            "SELECT extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now())::float8",
            &[],
        )
        .expect("reading the database's clock")
        .get(0);
    if left < needed {
        std::thread::sleep(Duration::from_secs_f64(left + 0.2));
    }
}

/// Base64url without padding, as JWTs encode their parts.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 JWT of `claims` signed with `secret`.
pub fn hs256(claims: &Value, secret: &str) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
}

/// The claims of a signed-in user's token, valid for an hour.
pub fn user_claims(user_id: Uuid, is_anonymous: bool, app_metadata: Value) -> Value {
    let now = now_unix();
    json!({
        "sub": user_id.to_string(), "role": "authenticated", "aud": "authenticated",
        "iat": now, "exp": now + 3600, "is_anonymous": is_anonymous,
        "app_metadata": app_metadata, "user_metadata": {},
    })
}

/// A token of a user signed in with email, without a platform role.
pub fn user_jwt(user_id: Uuid, secret: &str) -> String {
    hs256(
        &user_claims(user_id, false, json!({"provider": "email"})),
        secret,
    )
}

/// A project key: role `role` (`anon`, `service_role`), no `sub`.
pub fn key_jwt(role: &str, secret: &str) -> String {
    let now = now_unix();
    hs256(
        &json!({"iss": "supabase", "role": role, "iat": now, "exp": now + 3600}),
        secret,
    )
}

/// The project's anon key.
pub fn anon_jwt(secret: &str) -> String {
    key_jwt("anon", secret)
}

// ---------------------------------------------------------------------------------------
// The app and its database

/// The variables of an app on `db`: the database's, `supabase_jwt_secret`,
/// [`WEBHOOK_SECRET`], `openai_api_key` when given, then `overrides` in order (a name
/// given again replaces the earlier value).
pub fn app_vars(
    db: &TestDb,
    jwt_secret: &str,
    api_key: Option<&str>,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut vars = db.app_vars();
    let base = [
        ("supabase_jwt_secret", jwt_secret),
        ("classconnect_webhook_secret", WEBHOOK_SECRET),
    ];
    let api_key = api_key.map(|key| ("openai_api_key", key));
    for (name, value) in base
        .into_iter()
        .chain(api_key)
        .chain(overrides.iter().copied())
    {
        vars.retain(|(key, _)| key != name);
        vars.push((name.to_string(), value.to_string()));
    }
    vars
}

/// Starts the app with `vars`.
pub fn start_app(vars: &[(String, String)]) -> TestApp {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::start(&pairs)
}

/// A row of `auth.users`, as Supabase holds it.
pub struct AuthUser {
    /// `id`.
    pub id: Uuid,
    /// `email`; none for an anonymous user.
    pub email: Option<String>,
    /// `is_anonymous`.
    pub is_anonymous: bool,
    /// `raw_app_meta_data`.
    pub app_metadata: Value,
}

impl AuthUser {
    /// A new user signed in with an address at `domain`, with empty app metadata.
    pub fn with_email(domain: &str) -> AuthUser {
        let id = Uuid::new_v4();
        AuthUser {
            id,
            email: Some(format!("{id}@{domain}")),
            is_anonymous: false,
            app_metadata: json!({}),
        }
    }

    /// A new anonymous user: no email.
    pub fn anonymous() -> AuthUser {
        AuthUser {
            id: Uuid::new_v4(),
            email: None,
            is_anonymous: true,
            app_metadata: json!({}),
        }
    }

    /// Inserts the row into `db`; the user's id.
    pub fn insert(&self, db: &TestDb) -> Uuid {
        db.client()
            .execute(
                "INSERT INTO auth.users (id, email, is_anonymous, raw_app_meta_data) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    &self.id,
                    &self.email,
                    &self.is_anonymous,
                    &self.app_metadata,
                ],
            )
            .expect("inserting a user");
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hs256_token_verifies_with_its_secret_and_carries_its_claims() {
        let claims = json!({"sub": "u1", "exp": 2_000_000_000});
        let token = hs256(&claims, "s3cret");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload, claims);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .expect("the signature verifies");
    }

    #[test]
    fn a_raw_response_is_read_by_its_content_length_and_nothing_else_is_taken() {
        let mut wire: &[u8] =
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n\
            content-length: 16\r\n\r\n{\"error\":\"big\"}\nHTTP/1.1 200 OK\r\n";
        let response = read_response(&mut wire).expect("a framed response");
        assert_eq!(response.status, 413);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body, json!({"error": "big"}));
        assert_eq!(response.text, "{\"error\":\"big\"}\n");
        assert_eq!(
            wire, b"HTTP/1.1 200 OK\r\n",
            "the next response is left unread"
        );

        let refused = |wire: &[u8]| {
            read_response(&mut &wire[..])
                .err()
                .map(|error| error.kind())
        };
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(refused(chunked), Some(io::ErrorKind::InvalidData));
        let unframed = b"HTTP/1.1 200 OK\r\n\r\nok";
        assert_eq!(refused(unframed), Some(io::ErrorKind::InvalidData));
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok";
        assert_eq!(refused(cut), Some(io::ErrorKind::UnexpectedEof));
        assert_eq!(refused(b""), Some(io::ErrorKind::UnexpectedEof));
    }

    #[test]
    fn later_variables_replace_earlier_ones_of_the_same_name() {
        let db = TestDb::create();
        let vars = app_vars(
            &db,
            "jwt",
            Some("sk-1"),
            &[("openai_api_key", ""), ("token_ttl_seconds", "60")],
        );
        let value = |name: &str| {
            let found: Vec<&str> = vars
                .iter()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .collect();
            assert_eq!(found.len(), 1, "{name} once");
            found[0].to_string()
        };
        assert_eq!(value("openai_api_key"), "");
        assert_eq!(value("token_ttl_seconds"), "60");
        assert_eq!(value("supabase_jwt_secret"), "jwt");
        assert_eq!(value("classconnect_webhook_secret"), WEBHOOK_SECRET);
        assert_eq!(value("db_url"), db.url());
    }
}
