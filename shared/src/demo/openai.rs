//! The demo relay's two calls to OpenAI, and how their failures map to our errors.
//!
//! - [`relay_offer`]: `POST {openai_base_url}/v1/realtime/calls` with a
//!   `multipart/form-data` body of two parts, `sdp` (the browser's offer) and `session`
//!   (the session configuration as JSON), authorised with the server's key. OpenAI
//!   answers `201` with the SDP answer as body and the call's URL in `Location`, whose
//!   last segment is the call id.
//! - [`mint_client_secret`]: `POST {openai_base_url}/v1/realtime/client_secrets` for
//!   clients that send their offer to OpenAI themselves, with the demo session's whole
//!   configuration; its answer is read by the token function's
//!   [`token::openai::interpret`], the one reading of that endpoint's answers.
//!
//! Failures map as the token function's do (contract section 3): no key configured is
//! `503` with `"mode": "demo"`; OpenAI's `429` is `503` with `Retry-After`; any other
//! OpenAI error is `502`; no answer within 10 s is `504`. Upstream bodies and the key
//! go to neither the response nor the log.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::config::OpenAiConfig;
use crate::error::ApiError;
use crate::openai::{demo_mode, status_failure};
use crate::outbound::{self, OutboundError, OutboundRequest, OutboundResponse};
use crate::token;
use crate::token::openai::ClientSecret;

/// How long OpenAI has to answer: the token function's limit (contract section 3).
pub const UPSTREAM_TIMEOUT: Duration = token::openai::UPSTREAM_TIMEOUT;

/// OpenAI's answer to a relayed offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedAnswer {
    /// The SDP answer, for the browser's `setRemoteDescription`.
    pub sdp: String,
    /// From `Location`; `None` when OpenAI sent none.
    pub call_id: Option<String>,
}

/// The API key, or the contract's `503` "demo mode" answer when none is configured.
pub fn require_api_key(openai: &OpenAiConfig) -> Result<&str, ApiError> {
    openai.api_key.as_deref().ok_or_else(|| {
        demo_mode(
            "OpenAI is not configured on this server; voice demos are unavailable",
            Map::new(),
            "openai_api_key is empty",
        )
    })
}

/// A boundary that cannot occur in `parts`.
pub fn boundary_for(parts: &[&str]) -> String {
    loop {
        let boundary = format!("voice-edge-{}", uuid::Uuid::new_v4().simple());
        if parts.iter().all(|part| !part.contains(&boundary)) {
            return boundary;
        }
    }
}

/// The `multipart/form-data` body for `/v1/realtime/calls`.
pub fn calls_multipart_body(boundary: &str, sdp: &str, session: &Value) -> Vec<u8> {
    let session = session.to_string();
    let mut body = String::with_capacity(sdp.len() + session.len() + 400);
    for (name, content_type, content) in [
        ("sdp", "application/sdp", sdp),
        ("session", "application/json", session.as_str()),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
             Content-Type: {content_type}\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body.into_bytes()
}

/// The call id: the last path segment of `Location` (`/v1/realtime/calls/rtc_…`).
pub fn call_id_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next().unwrap_or_default();
    let id = path.trim_end_matches('/').rsplit('/').next()?.trim();
    let plausible = !id.is_empty()
        && id.len() <= 200
        && id != "calls"
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plausible.then(|| id.to_string())
}

/// The body of a client-secret request for `session`.
pub fn client_secret_body(session: &Value, ttl_seconds: i64) -> Value {
    json!({
        "expires_after": {"anchor": "created_at", "seconds": ttl_seconds},
        "session": session,
    })
}

/// Turns a refused or failed exchange into our error.
pub fn outbound_failure(error: OutboundError) -> ApiError {
    match error {
        OutboundError::Timeout => ApiError::UpstreamTimeout {
            detail: "OpenAI did not answer in time".into(),
        },
        OutboundError::NotAllowed(detail) | OutboundError::Invalid(detail) => ApiError::Config {
            detail: format!("outbound request to OpenAI refused: {detail}"),
        },
        OutboundError::Failed(detail) => ApiError::Upstream {
            detail: format!("OpenAI request failed: {detail}"),
        },
    }
}

/// Maps a non-success answer from OpenAI.
pub fn upstream_status_failure(response: &OutboundResponse, what: &str) -> ApiError {
    status_failure(
        response,
        "OpenAI is busy; try again shortly",
        format!("{what}: OpenAI answered {}", response.status),
    )
}

/// Reads OpenAI's answer to `/v1/realtime/calls`.
pub fn parse_calls_answer(response: &OutboundResponse) -> Result<RelayedAnswer, ApiError> {
    if !(200..300).contains(&response.status) {
        return Err(upstream_status_failure(response, "realtime call"));
    }
    let sdp = String::from_utf8(response.body.clone()).map_err(|_| ApiError::Upstream {
        detail: "realtime call: the answer is not UTF-8".into(),
    })?;
    if !sdp.starts_with("v=0") {
        return Err(ApiError::Upstream {
            detail: "realtime call: the answer is not SDP".into(),
        });
    }
    let call_id = response.header("location").and_then(call_id_from_location);
    Ok(RelayedAnswer { sdp, call_id })
}

/// Relays an SDP offer with the session configuration and the server's key.
pub async fn relay_offer(
    openai: &OpenAiConfig,
    sdp: &str,
    session: &Value,
) -> Result<RelayedAnswer, ApiError> {
    let key = require_api_key(openai)?;
    let session_text = session.to_string();
    let boundary = boundary_for(&[sdp, &session_text]);
    let request = OutboundRequest {
        method: "POST",
        url: format!("{}/v1/realtime/calls", openai.base_url),
        headers: vec![
            ("authorization".into(), format!("Bearer {key}")),
            (
                "content-type".into(),
                format!("multipart/form-data; boundary={boundary}"),
            ),
            ("accept".into(), "application/sdp".into()),
        ],
        body: calls_multipart_body(&boundary, sdp, session),
        timeout: UPSTREAM_TIMEOUT,
    };
    let response = outbound::send(&request).await.map_err(outbound_failure)?;
    parse_calls_answer(&response)
}

/// Mints an ephemeral client secret for the session configuration.
pub async fn mint_client_secret(
    openai: &OpenAiConfig,
    session: &Value,
    ttl_seconds: i64,
) -> Result<ClientSecret, ApiError> {
    let key = require_api_key(openai)?;
    let request = OutboundRequest {
        method: "POST",
        url: format!("{}/v1/realtime/client_secrets", openai.base_url),
        headers: vec![
            ("authorization".into(), format!("Bearer {key}")),
            ("content-type".into(), "application/json".into()),
        ],
        body: serde_json::to_vec(&client_secret_body(session, ttl_seconds))
            .expect("JSON values always serialise"),
        timeout: UPSTREAM_TIMEOUT,
    };
    token::openai::interpret(outbound::send(&request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::DEFAULT_RETRY_AFTER_SECS;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn multipart_body_has_the_sdp_and_session_parts() {
        let session = json!({"type": "realtime", "model": "gpt-realtime"});
        let body = calls_multipart_body("b0undary", "v=0\r\nm=audio 9\r\n", &session);
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "--b0undary\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\
             Content-Type: application/sdp\r\n\r\nv=0\r\nm=audio 9\r\n\r\n\
             --b0undary\r\nContent-Disposition: form-data; name=\"session\"\r\n\
             Content-Type: application/json\r\n\r\n{\"model\":\"gpt-realtime\",\"type\":\"realtime\"}\r\n\
             --b0undary--\r\n"
        );
    }

    #[test]
    fn the_boundary_never_occurs_in_the_parts() {
        let boundary = boundary_for(&["v=0", "{}"]);
        assert!(boundary.starts_with("voice-edge-"));
        assert!(
            boundary.len() < 70,
            "RFC 2046 limits boundaries to 70 characters"
        );
    }

    #[test]
    fn call_id_is_the_last_segment_of_location() {
        assert_eq!(
            call_id_from_location("/v1/realtime/calls/rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"),
            Some("rtc_u1_9c6574da8b8a41a18da9308f4ad974ce".into())
        );
        assert_eq!(
            call_id_from_location("https://api.openai.com/v1/realtime/calls/rtc_abc/?x=1"),
            Some("rtc_abc".into())
        );
        assert_eq!(call_id_from_location("/v1/realtime/calls/"), None);
        assert_eq!(call_id_from_location(""), None);
        assert_eq!(call_id_from_location("/v1/realtime/calls/rtc abc"), None);
    }

    #[test]
    fn a_created_call_gives_the_answer_and_the_call_id() {
        let answer = parse_calls_answer(&response(
            201,
            &[
                ("location", "/v1/realtime/calls/rtc_123"),
                ("content-type", "application/sdp"),
            ],
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        ))
        .unwrap();
        assert_eq!(answer.call_id.as_deref(), Some("rtc_123"));
        assert!(answer.sdp.starts_with("v=0"));
    }

    #[test]
    fn openai_429_is_503_with_retry_after() {
        let error = parse_calls_answer(&response(429, &[("retry-after", "7")], "{}")).unwrap_err();
        assert_eq!(error.status(), 503);
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "7".to_string())]
        );
        let error =
            parse_calls_answer(&response(429, &[("retry-after", "1.5")], "{}")).unwrap_err();
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "2".to_string())]
        );
        let error = parse_calls_answer(&response(429, &[], "{}")).unwrap_err();
        assert_eq!(
            error.headers(),
            vec![(
                "retry-after".to_string(),
                DEFAULT_RETRY_AFTER_SECS.to_string()
            )]
        );
    }

    #[test]
    fn other_openai_failures_are_502_without_the_upstream_body() {
        for status in [400, 401, 500, 503] {
            let error =
                parse_calls_answer(&response(status, &[], "{\"error\": \"secret detail\"}"))
                    .unwrap_err();
            assert_eq!(error.status(), 502, "{status}");
            assert!(!error.body().to_string().contains("secret detail"));
            assert!(!error.log_detail().unwrap().contains("secret detail"));
        }
        let error = parse_calls_answer(&response(201, &[], "<html>")).unwrap_err();
        assert_eq!(error.status(), 502);
    }

    #[test]
    fn timeouts_are_504_and_refused_destinations_are_configuration_errors() {
        assert_eq!(outbound_failure(OutboundError::Timeout).status(), 504);
        assert_eq!(
            outbound_failure(OutboundError::Failed("refused".into())).status(),
            502
        );
        assert_eq!(
            outbound_failure(OutboundError::NotAllowed("x".into())).status(),
            500
        );
    }

    #[test]
    fn no_api_key_is_503_in_demo_mode() {
        let openai = OpenAiConfig {
            api_key: None,
            base_url: "http://127.0.0.1:1".into(),
        };
        let error = require_api_key(&openai).unwrap_err();
        assert_eq!(error.status(), 503);
        assert_eq!(error.body()["mode"], "demo");
        assert_eq!(error.body()["error"], "service_unavailable");
    }

    #[test]
    fn client_secret_body_carries_the_ttl_and_the_session() {
        let body = client_secret_body(&json!({"type": "realtime"}), 120);
        assert_eq!(
            body,
            json!({"expires_after": {"anchor": "created_at", "seconds": 120},
                   "session": {"type": "realtime"}})
        );
    }
}
