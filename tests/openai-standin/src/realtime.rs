//! The Realtime API's two server-side endpoints as OpenAI documents them (GA interface):
//! `POST /v1/realtime/client_secrets` (an ephemeral `ek_…` key bound to a session
//! configuration) and `POST /v1/realtime/calls` (the WebRTC "unified interface": an SDP
//! offer, as `multipart/form-data` with `sdp` and `session` or as a bare
//! `application/sdp` body, answered `201` with an SDP answer and the call's `Location`).
//! The session configuration is checked as OpenAI checks it: its `type`, its keys (the
//! beta API's `session.voice` is refused), the model, the voice, the tools.

use serde_json::{Map, Value, json};

use crate::catalog;
use crate::error::OpenAiError;
use crate::multipart;
use crate::random_id;

/// The TTL of a client secret when the request names none (OpenAI's default).
pub const DEFAULT_SECRET_TTL_SECONDS: u64 = 600;
/// The shortest TTL OpenAI accepts for a client secret.
pub const MIN_SECRET_TTL_SECONDS: u64 = 10;
/// The longest TTL OpenAI accepts for a client secret.
pub const MAX_SECRET_TTL_SECONDS: u64 = 7200;

/// Keys of a GA `realtime` session configuration.
const REALTIME_SESSION_KEYS: &[&str] = &[
    "type",
    "model",
    "instructions",
    "audio",
    "output_modalities",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "truncation",
    "prompt",
    "include",
    "tracing",
    "parallel_tool_calls",
    "reasoning",
];
/// Keys of a GA `transcription` session configuration.
const TRANSCRIPTION_SESSION_KEYS: &[&str] = &["type", "audio", "include"];

/// A minted client secret.
#[derive(Clone, Debug)]
pub struct ClientSecret {
    /// The `ek_…` value.
    pub value: String,
    /// When it stops being usable, unix seconds.
    pub expires_at: u64,
    /// OpenAI's answer: `{"value", "expires_at", "session"}`.
    pub body: Value,
}

/// An accepted call: what `POST /v1/realtime/calls` answers.
#[derive(Clone, Debug)]
pub struct Call {
    /// The `rtc_…` id, also the last segment of `Location`.
    pub id: String,
    /// The SDP answer.
    pub answer: String,
}

impl Call {
    /// The `Location` header of the answer.
    pub fn location(&self) -> String {
        format!("/v1/realtime/calls/{}", self.id)
    }
}

/// Checks a `POST /v1/realtime/client_secrets` body and mints the secret, valid from
/// `now` (unix seconds).
pub fn create_client_secret(body: &Value, now: u64) -> Result<ClientSecret, OpenAiError> {
    let request = body
        .as_object()
        .ok_or_else(|| OpenAiError::invalid_type("body", "an object"))?;
    if let Some(key) = request
        .keys()
        .find(|key| !["expires_after", "session"].contains(&key.as_str()))
    {
        return Err(OpenAiError::unknown_parameter(key));
    }
    let ttl = check_expires_after(request.get("expires_after"))?;
    let session = request
        .get("session")
        .ok_or_else(|| OpenAiError::missing_parameter("session.type"))?;
    check_session(session, "session")?;

    let value = random_id("ek_");
    let expires_at = now + ttl;
    Ok(ClientSecret {
        body: json!({
            "value": value,
            "expires_at": expires_at,
            "session": effective_session(session),
        }),
        value,
        expires_at,
    })
}

/// Checks a `POST /v1/realtime/calls` request (its content type, the body, the `model`
/// query parameter of the bare-SDP form) and answers the offer.
pub fn create_call(
    content_type: &str,
    body: &[u8],
    model_query: Option<&str>,
) -> Result<Call, OpenAiError> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let offer = match essence.as_str() {
        "multipart/form-data" => {
            let boundary = multipart::boundary(content_type).ok_or_else(|| {
                OpenAiError::unparsable_body("The multipart content type names no boundary.".into())
            })?;
            let fields = multipart::parse(body, &boundary).map_err(|problem| {
                OpenAiError::unparsable_body(format!(
                    "Could not parse the multipart body: {problem}."
                ))
            })?;
            let field = |name: &str| fields.iter().find(|field| field.name == name);
            let sdp = field("sdp").ok_or_else(|| OpenAiError::missing_parameter("sdp"))?;
            let session =
                field("session").ok_or_else(|| OpenAiError::missing_parameter("session"))?;
            let session: Value = serde_json::from_str(&session.value).map_err(|_| {
                OpenAiError::invalid_value(
                    "session",
                    "The 'session' field is not valid JSON.".into(),
                )
            })?;
            check_session(&session, "session")?;
            sdp.value.clone()
        }
        "application/sdp" => {
            if let Some(model) = model_query {
                check_realtime_model(model, "model")?;
            }
            String::from_utf8(body.to_vec()).map_err(|_| {
                OpenAiError::invalid_value("sdp", "The SDP offer is not UTF-8 text.".into())
            })?
        }
        _ => {
            return Err(OpenAiError::unparsable_body(format!(
                "Unsupported content type '{essence}': send multipart/form-data with 'sdp' \
                 and 'session' fields, or application/sdp."
            )));
        }
    };
    check_sdp_offer(&offer)?;
    Ok(Call {
        id: random_id("rtc_"),
        answer: sdp_answer(&offer),
    })
}

/// Checks a session configuration as OpenAI does; `param` is where it sits in the
/// request (`session`), for the error's `param`.
pub fn check_session(session: &Value, param: &str) -> Result<(), OpenAiError> {
    let object = session
        .as_object()
        .ok_or_else(|| OpenAiError::invalid_type(param, "an object"))?;
    let type_param = format!("{param}.type");
    let kind = match object.get("type") {
        None | Some(Value::Null) => return Err(OpenAiError::missing_parameter(&type_param)),
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(OpenAiError::invalid_type(&type_param, "a string")),
    };
    let allowed = match kind {
        "realtime" => REALTIME_SESSION_KEYS,
        "transcription" => TRANSCRIPTION_SESSION_KEYS,
        other => {
            return Err(OpenAiError::invalid_value(
                &type_param,
                format!(
                    "Invalid value: '{other}'. Supported values are: 'realtime' and 'transcription'."
                ),
            ));
        }
    };
    if let Some(key) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(OpenAiError::unknown_parameter(&format!("{param}.{key}")));
    }
    if kind == "realtime" {
        let model_param = format!("{param}.model");
        match object.get("model") {
            None | Some(Value::Null) => return Err(OpenAiError::missing_parameter(&model_param)),
            Some(Value::String(model)) => check_realtime_model(model, &model_param)?,
            Some(_) => return Err(OpenAiError::invalid_type(&model_param, "a string")),
        }
        optional_string(object, "instructions", param)?;
        check_output_modalities(object.get("output_modalities"), param)?;
        check_tools(object.get("tools"), param)?;
    }
    check_audio(object.get("audio"), param, kind)
}

fn check_realtime_model(model: &str, param: &str) -> Result<(), OpenAiError> {
    if catalog::is_realtime_model(model) {
        Ok(())
    } else {
        Err(OpenAiError::invalid_value(
            param,
            format!(
                "Invalid model '{model}'. Supported Realtime models: {} (or their dated snapshots).",
                catalog::REALTIME_MODELS.join(", ")
            ),
        ))
    }
}

fn optional_string(object: &Map<String, Value>, key: &str, param: &str) -> Result<(), OpenAiError> {
    match object.get(key) {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(OpenAiError::invalid_type(
            &format!("{param}.{key}"),
            "a string",
        )),
    }
}

fn check_output_modalities(modalities: Option<&Value>, param: &str) -> Result<(), OpenAiError> {
    let param = format!("{param}.output_modalities");
    let Some(modalities) = modalities else {
        return Ok(());
    };
    let list = modalities
        .as_array()
        .ok_or_else(|| OpenAiError::invalid_type(&param, "an array"))?;
    for modality in list {
        if !matches!(modality.as_str(), Some("audio" | "text")) {
            return Err(OpenAiError::invalid_value(
                &param,
                format!(
                    "Invalid output modality {modality}: supported values are 'audio' and 'text'."
                ),
            ));
        }
    }
    Ok(())
}

fn check_tools(tools: Option<&Value>, param: &str) -> Result<(), OpenAiError> {
    let Some(tools) = tools else {
        return Ok(());
    };
    let list = tools
        .as_array()
        .ok_or_else(|| OpenAiError::invalid_type(&format!("{param}.tools"), "an array"))?;
    for (index, tool) in list.iter().enumerate() {
        let tool_param = format!("{param}.tools[{index}]");
        let tool = tool
            .as_object()
            .ok_or_else(|| OpenAiError::invalid_type(&tool_param, "an object"))?;
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let named = tool
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| !name.is_empty());
                if !named {
                    return Err(OpenAiError::missing_parameter(&format!(
                        "{tool_param}.name"
                    )));
                }
                if tool
                    .get("parameters")
                    .is_some_and(|schema| !schema.is_object())
                {
                    return Err(OpenAiError::invalid_type(
                        &format!("{tool_param}.parameters"),
                        "an object",
                    ));
                }
            }
            Some("mcp") => {}
            Some(other) => {
                return Err(OpenAiError::invalid_value(
                    &format!("{tool_param}.type"),
                    format!(
                        "Invalid tool type '{other}': supported values are 'function' and 'mcp'."
                    ),
                ));
            }
            None => {
                return Err(OpenAiError::missing_parameter(&format!(
                    "{tool_param}.type"
                )));
            }
        }
    }
    Ok(())
}

fn check_audio(audio: Option<&Value>, param: &str, kind: &str) -> Result<(), OpenAiError> {
    let audio_param = format!("{param}.audio");
    let Some(audio) = audio else {
        return Ok(());
    };
    let audio = audio
        .as_object()
        .ok_or_else(|| OpenAiError::invalid_type(&audio_param, "an object"))?;
    let allowed: &[&str] = if kind == "realtime" {
        &["input", "output"]
    } else {
        &["input"]
    };
    if let Some(key) = audio.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(OpenAiError::unknown_parameter(&format!(
            "{audio_param}.{key}"
        )));
    }
    if audio.get("input").is_some_and(|input| !input.is_object()) {
        return Err(OpenAiError::invalid_type(
            &format!("{audio_param}.input"),
            "an object",
        ));
    }
    let Some(output) = audio.get("output") else {
        return Ok(());
    };
    let output = output
        .as_object()
        .ok_or_else(|| OpenAiError::invalid_type(&format!("{audio_param}.output"), "an object"))?;
    let voice_param = format!("{audio_param}.output.voice");
    match output.get("voice") {
        None => Ok(()),
        Some(Value::String(voice)) if catalog::is_voice(voice) => Ok(()),
        Some(Value::String(voice)) => Err(OpenAiError::invalid_value(
            &voice_param,
            format!(
                "Invalid value: '{voice}'. Supported values are: {}.",
                catalog::VOICES
                    .iter()
                    .map(|voice| format!("'{voice}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Some(_) => Err(OpenAiError::invalid_type(&voice_param, "a string")),
    }
}

/// Reads `expires_after`: the TTL in seconds (OpenAI's default when absent).
fn check_expires_after(expires_after: Option<&Value>) -> Result<u64, OpenAiError> {
    let Some(expires_after) = expires_after else {
        return Ok(DEFAULT_SECRET_TTL_SECONDS);
    };
    let object = expires_after
        .as_object()
        .ok_or_else(|| OpenAiError::invalid_type("expires_after", "an object"))?;
    if let Some(key) = object
        .keys()
        .find(|key| !["anchor", "seconds"].contains(&key.as_str()))
    {
        return Err(OpenAiError::unknown_parameter(&format!(
            "expires_after.{key}"
        )));
    }
    match object.get("anchor") {
        Some(Value::String(anchor)) if anchor == "created_at" => {}
        None => return Err(OpenAiError::missing_parameter("expires_after.anchor")),
        Some(other) => {
            return Err(OpenAiError::invalid_value(
                "expires_after.anchor",
                format!("Invalid value: {other}. Supported values are: 'created_at'."),
            ));
        }
    }
    let Some(seconds) = object.get("seconds") else {
        return Ok(DEFAULT_SECRET_TTL_SECONDS);
    };
    match seconds.as_u64() {
        Some(seconds) if (MIN_SECRET_TTL_SECONDS..=MAX_SECRET_TTL_SECONDS).contains(&seconds) => {
            Ok(seconds)
        }
        _ => Err(OpenAiError::invalid_value(
            "expires_after.seconds",
            format!(
                "Invalid 'expires_after.seconds': expected an integer between \
                 {MIN_SECRET_TTL_SECONDS} and {MAX_SECRET_TTL_SECONDS}, got {seconds}."
            ),
        )),
    }
}

/// The session object OpenAI answers with: the request's configuration over OpenAI's
/// defaults, with an id. Call only on a session `check_session` accepted.
pub fn effective_session(requested: &Value) -> Value {
    let turn_detection = json!({
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": null,
        "create_response": true,
        "interrupt_response": true,
    });
    let pcm = json!({"type": "audio/pcm", "rate": 24000});
    let input = json!({
        "format": pcm,
        "transcription": null,
        "noise_reduction": null,
        "turn_detection": turn_detection,
    });
    let mut session = if requested["type"] == "transcription" {
        json!({
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": random_id("sess_"),
            "expires_at": 0,
            "include": null,
            "audio": {"input": input},
        })
    } else {
        json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": random_id("sess_"),
            "expires_at": 0,
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": null,
            "truncation": "auto",
            "prompt": null,
            "include": null,
            "audio": {
                "input": input,
                "output": {"format": pcm, "voice": "alloy", "speed": 1.0},
            },
        })
    };
    overlay(&mut session, requested);
    session
}

/// Writes `top` over `base`, merging objects key by key.
fn overlay(base: &mut Value, top: &Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        overlay(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, top) => *base = top.clone(),
    }
}

/// Checks that `offer` looks like an SDP offer: it starts with the version line `v=0`.
pub fn check_sdp_offer(offer: &str) -> Result<(), OpenAiError> {
    if offer.trim().is_empty() {
        return Err(OpenAiError::missing_parameter("sdp"));
    }
    if offer.starts_with("v=0\r\n") || offer.starts_with("v=0\n") || offer == "v=0" {
        Ok(())
    } else {
        Err(OpenAiError::invalid_value(
            "sdp",
            "The SDP offer is not valid SDP: it must start with 'v=0'.".into(),
        ))
    }
}

/// One media section of an offer.
struct OfferedMedia {
    kind: String,
    mid: String,
    opus_payload: Option<String>,
}

fn offered_media(offer: &str) -> Vec<OfferedMedia> {
    let mut media: Vec<OfferedMedia> = Vec::new();
    for line in offer.lines().map(str::trim_end) {
        if let Some(description) = line.strip_prefix("m=") {
            let kind = description.split(' ').next().unwrap_or("audio").to_owned();
            media.push(OfferedMedia {
                kind,
                mid: media.len().to_string(),
                opus_payload: None,
            });
        } else if let Some(current) = media.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                current.mid = mid.trim().to_owned();
            } else if let Some((payload, codec)) = line
                .strip_prefix("a=rtpmap:")
                .and_then(|rtpmap| rtpmap.split_once(' '))
                && codec.to_ascii_lowercase().starts_with("opus/48000")
            {
                current
                    .opus_payload
                    .get_or_insert_with(|| payload.to_owned());
            }
        }
    }
    if media.is_empty() {
        media.push(OfferedMedia {
            kind: "audio".into(),
            mid: "0".into(),
            opus_payload: None,
        });
    }
    media
}

/// An SDP answer to `offer`: one section per offered media section, in order and with
/// the offer's `mid`s, as a WebRTC peer would answer (opus for audio, SCTP for the data
/// channel). Its ICE candidate points nowhere: no media ever flows to a stand-in.
pub fn sdp_answer(offer: &str) -> String {
    let media = offered_media(offer);
    let ice_ufrag = &random_id("")[..8];
    let ice_pwd = &random_id("")[..24];
    let fingerprint_hex = format!("{}{}", random_id(""), random_id(""));
    let fingerprint: Vec<&str> = (0..32)
        .map(|byte| &fingerprint_hex[byte * 2..byte * 2 + 2])
        .collect();
    let fingerprint = fingerprint.join(":").to_ascii_uppercase();
    let session_version: u64 = u64::from_str_radix(&random_id("")[..12], 16).unwrap_or(1);

    let mut lines = vec![
        "v=0".to_owned(),
        format!("o=- {session_version} 2 IN IP4 127.0.0.1"),
        "s=-".to_owned(),
        "t=0 0".to_owned(),
        format!(
            "a=group:BUNDLE {}",
            media
                .iter()
                .map(|section| section.mid.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "a=msid-semantic: WMS *".to_owned(),
    ];
    for section in &media {
        let transport = [
            "c=IN IP4 0.0.0.0".to_owned(),
            format!("a=ice-ufrag:{ice_ufrag}"),
            format!("a=ice-pwd:{ice_pwd}"),
            format!("a=fingerprint:sha-256 {fingerprint}"),
            "a=setup:active".to_owned(),
            format!("a=mid:{}", section.mid),
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host".to_owned(),
        ];
        if section.kind == "application" {
            lines.push("m=application 9 UDP/DTLS/SCTP webrtc-datachannel".to_owned());
            lines.extend(transport);
            lines.push("a=sctp-port:5000".to_owned());
            lines.push("a=max-message-size:262144".to_owned());
        } else if section.kind == "audio" {
            let payload = section.opus_payload.as_deref().unwrap_or("111");
            lines.push(format!("m=audio 9 UDP/TLS/RTP/SAVPF {payload}"));
            lines.extend(transport);
            lines.push("a=sendrecv".to_owned());
            lines.push("a=rtcp-mux".to_owned());
            lines.push(format!("a=rtpmap:{payload} opus/48000/2"));
            lines.push(format!("a=fmtp:{payload} minptime=10;useinbandfec=1"));
        } else {
            // Media OpenAI does not take (video) is rejected with port 0, as WebRTC does.
            lines.push(format!("m={} 0 UDP/TLS/RTP/SAVPF 0", section.kind));
            lines.push("c=IN IP4 0.0.0.0".to_owned());
            lines.push(format!("a=mid:{}", section.mid));
            lines.push("a=inactive".to_owned());
        }
    }
    let mut answer = lines.join("\r\n");
    answer.push_str("\r\n");
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_760_000_000;

    fn request(session: Value) -> Value {
        json!({"expires_after": {"anchor": "created_at", "seconds": 60}, "session": session})
    }

    fn realtime_session() -> Value {
        json!({
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "Be a tutor.",
            "audio": {"output": {"voice": "ash"}},
        })
    }

    fn error_param(result: Result<ClientSecret, OpenAiError>) -> String {
        result.unwrap_err().param.unwrap_or_default()
    }

    #[test]
    fn client_secret_answers_value_expiry_and_effective_session() {
        let secret = create_client_secret(&request(realtime_session()), NOW).unwrap();
        assert!(secret.value.starts_with("ek_"));
        assert_eq!(secret.expires_at, NOW + 60);
        assert_eq!(secret.body["value"], secret.value.as_str());
        assert_eq!(secret.body["expires_at"], NOW + 60);
        let session = &secret.body["session"];
        assert_eq!(session["object"], "realtime.session");
        assert!(session["id"].as_str().unwrap().starts_with("sess_"));
        assert_eq!(session["instructions"], "Be a tutor.");
        assert_eq!(session["audio"]["output"]["voice"], "ash");
        assert_eq!(session["audio"]["output"]["speed"], 1.0);
        assert_eq!(
            session["audio"]["input"]["turn_detection"]["type"],
            "server_vad"
        );
    }

    #[test]
    fn ttl_defaults_to_ten_minutes() {
        let secret = create_client_secret(&json!({"session": realtime_session()}), NOW).unwrap();
        assert_eq!(secret.expires_at, NOW + DEFAULT_SECRET_TTL_SECONDS);
    }

    #[test]
    fn ttl_outside_10_to_7200_is_refused() {
        for seconds in [json!(9), json!(7201), json!(-1), json!(60.5), json!("60")] {
            let body = json!({"expires_after": {"anchor": "created_at", "seconds": seconds},
                              "session": realtime_session()});
            assert_eq!(
                error_param(create_client_secret(&body, NOW)),
                "expires_after.seconds"
            );
        }
        for seconds in [10, 7200] {
            let body = json!({"expires_after": {"anchor": "created_at", "seconds": seconds},
                              "session": realtime_session()});
            assert!(create_client_secret(&body, NOW).is_ok());
        }
    }

    #[test]
    fn anchor_other_than_created_at_is_refused() {
        let body = json!({"expires_after": {"anchor": "now", "seconds": 60}, "session": realtime_session()});
        assert_eq!(
            error_param(create_client_secret(&body, NOW)),
            "expires_after.anchor"
        );
    }

    #[test]
    fn missing_session_type_is_refused() {
        let mut session = realtime_session();
        session.as_object_mut().unwrap().remove("type");
        let error = create_client_secret(&request(session), NOW).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("session.type"));
        assert_eq!(error.code, Some("missing_required_parameter"));
        assert_eq!(
            error_param(create_client_secret(&json!({}), NOW)),
            "session.type"
        );
    }

    #[test]
    fn unknown_session_type_is_refused() {
        let mut session = realtime_session();
        session["type"] = json!("conversation");
        assert_eq!(
            error_param(create_client_secret(&request(session), NOW)),
            "session.type"
        );
    }

    #[test]
    fn unknown_or_missing_model_is_refused() {
        let mut session = realtime_session();
        session["model"] = json!("gpt-4.1-mini");
        assert_eq!(
            error_param(create_client_secret(&request(session.clone()), NOW)),
            "session.model"
        );
        session.as_object_mut().unwrap().remove("model");
        assert_eq!(
            error_param(create_client_secret(&request(session), NOW)),
            "session.model"
        );
    }

    #[test]
    fn unknown_voice_is_refused() {
        let mut session = realtime_session();
        session["audio"]["output"]["voice"] = json!("nova");
        assert_eq!(
            error_param(create_client_secret(&request(session), NOW)),
            "session.audio.output.voice"
        );
    }

    #[test]
    fn beta_style_top_level_voice_is_an_unknown_parameter() {
        let mut session = realtime_session();
        session["voice"] = json!("ash");
        let error = create_client_secret(&request(session), NOW).unwrap_err();
        assert_eq!(error.code, Some("unknown_parameter"));
        assert_eq!(error.param.as_deref(), Some("session.voice"));
    }

    #[test]
    fn function_tool_without_name_is_refused() {
        let mut session = realtime_session();
        session["tools"] =
            json!([{"type": "function", "name": "ok", "parameters": {}}, {"type": "function"}]);
        assert_eq!(
            error_param(create_client_secret(&request(session), NOW)),
            "session.tools[1].name"
        );
    }

    #[test]
    fn transcription_session_needs_no_model() {
        let session = json!({"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}});
        let secret = create_client_secret(&request(session), NOW).unwrap();
        assert_eq!(
            secret.body["session"]["object"],
            "realtime.transcription_session"
        );
        assert_eq!(
            secret.body["session"]["audio"]["input"]["transcription"]["model"],
            "gpt-4o-transcribe"
        );
    }

    #[test]
    fn sdp_offer_must_start_with_version_line() {
        assert!(check_sdp_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n").is_ok());
        assert!(check_sdp_offer("v=0\no=-\n").is_ok());
        assert_eq!(
            check_sdp_offer("hello").unwrap_err().param.as_deref(),
            Some("sdp")
        );
        assert_eq!(
            check_sdp_offer(" v=0\r\n").unwrap_err().param.as_deref(),
            Some("sdp")
        );
        assert_eq!(
            check_sdp_offer("").unwrap_err().code,
            Some("missing_required_parameter")
        );
    }

    #[test]
    fn sdp_answer_mirrors_offered_sections_and_mids() {
        let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 109 0\r\na=mid:a0\r\na=rtpmap:109 opus/48000/2\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d1\r\n";
        let answer = sdp_answer(offer);
        assert!(answer.starts_with("v=0\r\n"));
        assert!(answer.ends_with("\r\n"));
        assert!(answer.contains("a=group:BUNDLE a0 d1\r\n"));
        assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 109\r\n"));
        assert!(answer.contains("a=rtpmap:109 opus/48000/2\r\n"));
        assert!(answer.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
        assert!(answer.find("a=mid:a0").unwrap() < answer.find("a=mid:d1").unwrap());
        assert!(
            !answer.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
    }

    #[test]
    fn bare_offer_gets_one_audio_section() {
        let answer = sdp_answer("v=0");
        assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
        assert!(answer.contains("a=mid:0\r\n"));
    }

    #[test]
    fn multipart_call_checks_session_and_answers() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
            \r\n--b\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n\
            {\"type\":\"realtime\",\"model\":\"gpt-realtime\",\"audio\":{\"output\":{\"voice\":\"marin\"}}}\r\n--b--\r\n";
        let call = create_call("multipart/form-data; boundary=b", body.as_bytes(), None).unwrap();
        assert!(call.id.starts_with("rtc_"));
        assert_eq!(call.location(), format!("/v1/realtime/calls/{}", call.id));
        assert!(call.answer.starts_with("v=0\r\n"));

        let bad_voice = body.replace("marin", "nova");
        let error = create_call(
            "multipart/form-data; boundary=b",
            bad_voice.as_bytes(),
            None,
        )
        .unwrap_err();
        assert_eq!(error.param.as_deref(), Some("session.audio.output.voice"));
    }

    #[test]
    fn multipart_call_without_session_field_is_refused() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0\r\n--b--\r\n";
        let error =
            create_call("multipart/form-data; boundary=b", body.as_bytes(), None).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("session"));
    }

    #[test]
    fn bare_sdp_call_checks_the_model_query() {
        assert!(create_call("application/sdp", b"v=0\r\n", None).is_ok());
        assert!(create_call("application/sdp", b"v=0\r\n", Some("gpt-realtime-mini")).is_ok());
        let error = create_call("application/sdp", b"v=0\r\n", Some("gpt-4o")).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("model"));
    }

    #[test]
    fn call_with_json_content_type_is_refused() {
        let error = create_call("application/json", b"{}", None).unwrap_err();
        assert_eq!(error.status, hyper::StatusCode::BAD_REQUEST);
    }
}
