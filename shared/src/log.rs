//! Log lines besides the request's own: one JSON object per line on stdout, with the
//! time, level, function, request id, what happened and its (redacted) detail, so that
//! a log pipeline reads every line a function writes the same way (contract section 2).

use serde_json::json;

/// How bad a logged event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The JSON line of an event; `detail` is redacted and shortened.
pub fn event_line(
    level: Level,
    function: &str,
    request_id: Option<&str>,
    event: &str,
    detail: &str,
) -> String {
    json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "level": level.as_str(),
        "function": function,
        "request_id": request_id,
        "event": event,
        "detail": crate::http::redact(detail),
    })
    .to_string()
}

/// Writes an event's line to stdout.
pub fn event(level: Level, function: &str, request_id: Option<&str>, event: &str, detail: &str) {
    println!("{}", event_line(level, function, request_id, event, detail));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_json_line_with_the_request_id_and_no_secret() {
        let line = event_line(
            Level::Warn,
            "health",
            Some("req-1"),
            "database_probe_failed",
            "error connecting to postgres://app:hunter2@db:5432/app\nat line 2",
        );
        assert!(!line.contains('\n') || !line.contains("\n\""));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "warn");
        assert_eq!(value["function"], "health");
        assert_eq!(value["request_id"], "req-1");
        assert_eq!(value["event"], "database_probe_failed");
        assert!(!line.contains("hunter2"));
        assert!(value["time"].is_string());
    }
}
