//! The one upstream call of the token function: `POST {openai_base_url}/v1/realtime/client_secrets`.
//!
//! [`client_secret_request`] builds the request (pure), [`interpret`] turns whatever
//! came back into a [`ClientSecret`] or the contract's error (pure), and
//! [`mint_client_secret`] joins them with [`outbound::send`]. The mapping: OpenAI `429`
//! is `503` with `Retry-After`; any other refusal, a broken connection or a malformed
//! answer is `502 upstream_error`; no answer within 10 s is `504`. Upstream bodies and
//! the API key never reach a response; the log gets the status and OpenAI's error type.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::openai::{error_type, status_failure};
use crate::outbound::{self, OutboundError, OutboundRequest, OutboundResponse};

/// How long OpenAI has to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// What the Realtime session behind a token is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    pub model: String,
    pub voice: String,
    pub instructions: String,
    /// Lifetime of the token, seconds (10–7200).
    pub ttl_seconds: i64,
}

/// An ephemeral key. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret {
    /// The `ek_…` value handed to the browser.
    pub value: String,
    /// When it expires, unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecret")
            .field("value", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The body OpenAI is sent.
pub fn client_secret_body(settings: &SessionSettings) -> Value {
    json!({
        "expires_after": {"anchor": "created_at", "seconds": settings.ttl_seconds},
        "session": {
            "type": "realtime",
            "model": settings.model,
            "instructions": settings.instructions,
            "audio": {"output": {"voice": settings.voice}},
        },
    })
}

/// The whole request, with the API key as a bearer token.
pub fn client_secret_request(
    base_url: &str,
    api_key: &str,
    settings: &SessionSettings,
) -> OutboundRequest {
    OutboundRequest {
        method: "POST",
        url: format!(
            "{}/v1/realtime/client_secrets",
            base_url.trim_end_matches('/')
        ),
        headers: vec![
            ("authorization".into(), format!("Bearer {api_key}")),
            ("content-type".into(), "application/json".into()),
            ("accept".into(), "application/json".into()),
        ],
        body: serde_json::to_vec(&client_secret_body(settings))
            .expect("JSON values always serialise"),
        timeout: UPSTREAM_TIMEOUT,
    }
}

#[derive(Deserialize)]
struct SecretAnswer {
    value: String,
    expires_at: i64,
}

/// Turns the outcome of the upstream call into a secret or the contract's error.
pub fn interpret(
    outcome: Result<OutboundResponse, OutboundError>,
) -> Result<ClientSecret, ApiError> {
    let response = match outcome {
        Ok(response) => response,
        Err(OutboundError::Timeout) => {
            return Err(ApiError::UpstreamTimeout {
                detail: format!(
                    "OpenAI client_secrets gave no answer within {}s",
                    UPSTREAM_TIMEOUT.as_secs()
                ),
            });
        }
        Err(other) => {
            return Err(ApiError::Upstream {
                detail: format!("OpenAI client_secrets: {other}"),
            });
        }
    };
    match response.status {
        200..=299 => {
            let answer: SecretAnswer =
                serde_json::from_slice(&response.body).map_err(|error| ApiError::Upstream {
                    detail: format!(
                        "OpenAI client_secrets answered {} with an unexpected body: {error}",
                        response.status
                    ),
                })?;
            if answer.value.trim().is_empty() {
                return Err(ApiError::Upstream {
                    detail: "OpenAI client_secrets answered without an ephemeral key".into(),
                });
            }
            Ok(ClientSecret {
                value: answer.value,
                expires_at: answer.expires_at,
            })
        }
        status => Err(status_failure(
            &response,
            "OpenAI is rate limiting requests; try again shortly",
            format!(
                "OpenAI client_secrets answered {status} ({})",
                error_type(&response)
            ),
        )),
    }
}

/// Calls OpenAI for an ephemeral key.
pub async fn mint_client_secret(
    base_url: &str,
    api_key: &str,
    settings: &SessionSettings,
) -> Result<ClientSecret, ApiError> {
    interpret(outbound::send(&client_secret_request(base_url, api_key, settings)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SessionSettings {
        SessionSettings {
            model: "gpt-realtime".into(),
            voice: "ash".into(),
            instructions: "Be a tutor. Speak German.".into(),
            ttl_seconds: 60,
        }
    }

    fn answer(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<OutboundResponse, OutboundError> {
        Ok(OutboundResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn the_request_is_the_contracts_ga_client_secret_request() {
        let request = client_secret_request("http://127.0.0.1:9100/", "sk-test-key", &settings());
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.url,
            "http://127.0.0.1:9100/v1/realtime/client_secrets"
        );
        assert!(
            request
                .headers
                .contains(&("authorization".into(), "Bearer sk-test-key".into()))
        );
        assert_eq!(request.timeout, Duration::from_secs(10));
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "expires_after": {"anchor": "created_at", "seconds": 60},
                "session": {
                    "type": "realtime",
                    "model": "gpt-realtime",
                    "instructions": "Be a tutor. Speak German.",
                    "audio": {"output": {"voice": "ash"}},
                },
            })
        );
    }

    #[test]
    fn a_good_answer_gives_the_key_and_its_expiry() {
        let secret = interpret(answer(
            200,
            &[],
            r#"{"value": "ek_68af1234abcd", "expires_at": 1756310470, "session": {"type": "realtime"}}"#,
        ))
        .unwrap();
        assert_eq!(secret.value, "ek_68af1234abcd");
        assert_eq!(secret.expires_at, 1756310470);
        assert!(!format!("{secret:?}").contains("ek_68af"));
    }

    #[test]
    fn openai_429_is_503_with_its_retry_after() {
        let error = interpret(answer(
            429,
            &[("retry-after", "2.5")],
            r#"{"error": {"type": "rate_limit_exceeded"}}"#,
        ))
        .unwrap_err();
        assert_eq!(error.status(), 503);
        assert_eq!(error.code(), "service_unavailable");
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "3".to_string())]
        );
        let error = interpret(answer(429, &[], "")).unwrap_err();
        assert_eq!(
            error.headers(),
            vec![("retry-after".to_string(), "5".to_string())]
        );
    }

    #[test]
    fn other_upstream_errors_are_502_without_the_upstream_body() {
        let body = r#"{"error": {"message": "Incorrect API key provided: sk-live-abcdefgh1234", "type": "invalid_request_error", "code": "invalid_api_key"}}"#;
        for status in [400, 401, 500, 503] {
            let error = interpret(answer(status, &[], body)).unwrap_err();
            assert_eq!(error.status(), 502, "status {status}");
            assert_eq!(error.code(), "upstream_error");
            assert!(!error.body().to_string().contains("sk-live"));
            let detail = error.log_detail().unwrap();
            assert!(
                detail.contains("invalid_request_error/invalid_api_key"),
                "{detail}"
            );
            assert!(!detail.contains("sk-live"), "{detail}");
        }
    }

    #[test]
    fn a_malformed_success_is_502() {
        for body in [
            "not json",
            r#"{"expires_at": 1}"#,
            r#"{"value": "", "expires_at": 1}"#,
        ] {
            let error = interpret(answer(200, &[], body)).unwrap_err();
            assert_eq!(error.status(), 502, "{body}");
        }
    }

    #[test]
    fn silence_is_504_and_a_broken_connection_502() {
        assert_eq!(
            interpret(Err(OutboundError::Timeout)).unwrap_err().status(),
            504
        );
        let error = interpret(Err(OutboundError::Failed("connection refused".into()))).unwrap_err();
        assert_eq!(error.status(), 502);
        let error =
            interpret(Err(OutboundError::NotAllowed("HttpRequestDenied".into()))).unwrap_err();
        assert_eq!(error.status(), 502);
    }
}
