//! The switches tests turn: per endpoint, how the stand-in answers (normally, `429`,
//! `500`, not at all, with a refusal, without a message) and how long it waits first.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};

/// An OpenAI endpoint the stand-in serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/realtime/client_secrets`.
    ClientSecrets,
    /// `POST /v1/realtime/calls`.
    Calls,
    /// `POST /v1/responses`.
    Responses,
    /// `GET /v1/models` and `GET /v1/models/{model}`.
    Models,
}

impl Endpoint {
    /// Every endpoint, in a fixed order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::ClientSecrets,
        Endpoint::Calls,
        Endpoint::Responses,
        Endpoint::Models,
    ];

    /// The name used by the HTTP control API (`client_secrets`, `calls`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ClientSecrets => "client_secrets",
            Endpoint::Calls => "calls",
            Endpoint::Responses => "responses",
            Endpoint::Models => "models",
        }
    }

    /// Which endpoint serves `path`, if any.
    pub fn for_path(path: &str) -> Option<Endpoint> {
        match path {
            "/v1/realtime/client_secrets" => Some(Endpoint::ClientSecrets),
            "/v1/realtime/calls" => Some(Endpoint::Calls),
            "/v1/responses" => Some(Endpoint::Responses),
            "/v1/models" => Some(Endpoint::Models),
            _ => path
                .strip_prefix("/v1/models/")
                .filter(|model| !model.is_empty() && !model.contains('/'))
                .map(|_| Endpoint::Models),
        }
    }

    /// The HTTP method the endpoint answers.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::Models => "GET",
            _ => "POST",
        }
    }

    fn index(self) -> usize {
        match self {
            Endpoint::ClientSecrets => 0,
            Endpoint::Calls => 1,
            Endpoint::Responses => 2,
            Endpoint::Models => 3,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .into_iter()
            .find(|endpoint| endpoint.as_str() == name)
            .ok_or_else(|| format!("unknown endpoint {name:?}"))
    }
}

/// How an endpoint answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Checks the request and answers as OpenAI does.
    #[default]
    Normal,
    /// `429` with OpenAI's rate-limit body and `retry-after`.
    RateLimited,
    /// `500` with OpenAI's server-error body.
    ServerError,
    /// Accepts the request and never answers, holding the connection until the client
    /// gives up or the stand-in stops.
    Silent,
    /// `/v1/responses` answers with a `refusal` content item instead of text (other
    /// endpoints answer normally).
    Refusal,
    /// `/v1/responses` answers without a `message` item (other endpoints answer normally).
    NoMessage,
}

impl Mode {
    /// The name used by the HTTP control API (`normal`, `429`, `500`, `silent`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::RateLimited => "429",
            Mode::ServerError => "500",
            Mode::Silent => "silent",
            Mode::Refusal => "refusal",
            Mode::NoMessage => "no_message",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            Mode::Normal,
            Mode::RateLimited,
            Mode::ServerError,
            Mode::Silent,
            Mode::Refusal,
            Mode::NoMessage,
        ]
        .into_iter()
        .find(|mode| mode.as_str() == name)
        .ok_or_else(|| format!("unknown mode {name:?}"))
    }
}

/// One endpoint's switch: its mode and the delay before it answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switch {
    /// How it answers.
    pub mode: Mode,
    /// How long it waits before answering (or before going silent).
    pub delay: Duration,
}

/// The switches of every endpoint.
#[derive(Clone, Debug, Default)]
pub struct Switches([Switch; 4]);

impl Switches {
    /// The switch of `endpoint`.
    pub fn get(&self, endpoint: Endpoint) -> Switch {
        self.0[endpoint.index()]
    }

    /// Sets the mode of `endpoint`, or of all when `None`.
    pub fn set_mode(&mut self, endpoint: Option<Endpoint>, mode: Mode) {
        self.each(endpoint, |switch| switch.mode = mode);
    }

    /// Sets the delay of `endpoint`, or of all when `None`.
    pub fn set_delay(&mut self, endpoint: Option<Endpoint>, delay: Duration) {
        self.each(endpoint, |switch| switch.delay = delay);
    }

    fn each(&mut self, endpoint: Option<Endpoint>, change: impl Fn(&mut Switch)) {
        for candidate in Endpoint::ALL {
            if endpoint.is_none_or(|endpoint| endpoint == candidate) {
                change(&mut self.0[candidate.index()]);
            }
        }
    }

    /// `{"client_secrets": {"mode": "normal", "delay_ms": 0}, …}`.
    pub fn to_json(&self) -> Value {
        let entries = Endpoint::ALL.into_iter().map(|endpoint| {
            let switch = self.get(endpoint);
            (
                endpoint.as_str().to_owned(),
                json!({"mode": switch.mode.as_str(), "delay_ms": switch.delay.as_millis() as u64}),
            )
        });
        Value::Object(entries.collect())
    }
}

/// A `PUT /__standin/mode` body, checked: `{"endpoint", "mode"?, "delay_ms"?}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeChange {
    /// The endpoint, or `None` for `"all"`.
    pub endpoint: Option<Endpoint>,
    /// The new mode, when given.
    pub mode: Option<Mode>,
    /// The new delay, when given.
    pub delay: Option<Duration>,
}

impl ModeChange {
    /// Reads a control request body; the error says what is wrong.
    pub fn from_json(body: &Value) -> Result<ModeChange, String> {
        let endpoint = match body.get("endpoint").and_then(Value::as_str) {
            Some("all") => None,
            Some(name) => Some(name.parse::<Endpoint>()?),
            None => {
                return Err(
                    "'endpoint' is required: client_secrets, calls, responses, models or all"
                        .into(),
                );
            }
        };
        let mode = match body.get("mode") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.parse::<Mode>()?),
            Some(_) => return Err("'mode' must be a string".into()),
        };
        let delay = match body.get("delay_ms") {
            None | Some(Value::Null) => None,
            Some(value) => Some(Duration::from_millis(
                value
                    .as_u64()
                    .ok_or("'delay_ms' must be a non-negative integer")?,
            )),
        };
        if mode.is_none() && delay.is_none() {
            return Err("give 'mode', 'delay_ms' or both".into());
        }
        Ok(ModeChange {
            endpoint,
            mode,
            delay,
        })
    }

    /// Applies the change.
    pub fn apply(&self, switches: &mut Switches) {
        if let Some(mode) = self.mode {
            switches.set_mode(self.endpoint, mode);
        }
        if let Some(delay) = self.delay {
            switches.set_delay(self.endpoint, delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(endpoint.as_str().parse::<Endpoint>().unwrap(), endpoint);
        }
        for name in ["normal", "429", "500", "silent", "refusal", "no_message"] {
            assert_eq!(name.parse::<Mode>().unwrap().as_str(), name);
        }
        assert!("slow".parse::<Mode>().is_err());
        assert!("all".parse::<Endpoint>().is_err());
    }

    #[test]
    fn paths_map_to_endpoints() {
        assert_eq!(
            Endpoint::for_path("/v1/realtime/calls"),
            Some(Endpoint::Calls)
        );
        assert_eq!(
            Endpoint::for_path("/v1/models/gpt-realtime"),
            Some(Endpoint::Models)
        );
        assert_eq!(Endpoint::for_path("/v1/models"), Some(Endpoint::Models));
        assert_eq!(Endpoint::for_path("/v1/models/"), None);
        assert_eq!(Endpoint::for_path("/v1/realtime/calls/rtc_1"), None);
        assert_eq!(Endpoint::for_path("/v1/chat/completions"), None);
    }

    #[test]
    fn change_for_one_endpoint_leaves_others() {
        let mut switches = Switches::default();
        let change = ModeChange::from_json(&json!({"endpoint": "calls", "mode": "429"})).unwrap();
        change.apply(&mut switches);
        assert_eq!(switches.get(Endpoint::Calls).mode, Mode::RateLimited);
        assert_eq!(switches.get(Endpoint::Responses).mode, Mode::Normal);
    }

    #[test]
    fn change_for_all_sets_every_endpoint_and_keeps_unnamed_fields() {
        let mut switches = Switches::default();
        ModeChange::from_json(&json!({"endpoint": "all", "delay_ms": 250}))
            .unwrap()
            .apply(&mut switches);
        ModeChange::from_json(&json!({"endpoint": "all", "mode": "silent"}))
            .unwrap()
            .apply(&mut switches);
        for endpoint in Endpoint::ALL {
            assert_eq!(
                switches.get(endpoint),
                Switch {
                    mode: Mode::Silent,
                    delay: Duration::from_millis(250)
                }
            );
        }
        assert_eq!(
            switches.to_json()["models"],
            json!({"mode": "silent", "delay_ms": 250})
        );
    }

    #[test]
    fn malformed_changes_are_refused() {
        for body in [
            json!({"mode": "429"}),
            json!({"endpoint": "chat", "mode": "429"}),
            json!({"endpoint": "all", "mode": "slow"}),
            json!({"endpoint": "all", "delay_ms": -5}),
            json!({"endpoint": "all"}),
        ] {
            assert!(ModeChange::from_json(&body).is_err(), "{body}");
        }
    }
}
