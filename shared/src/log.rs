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
        "detail": redact(detail),
    })
    .to_string()
}

/// Writes an event's line to stdout.
pub fn event(level: Level, function: &str, request_id: Option<&str>, event: &str, detail: &str) {
    println!("{}", event_line(level, function, request_id, event, detail));
}

/// Masks what must never reach a log: passwords in URLs, bearer tokens, API keys.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, word) in text.split(' ').enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(&redact_word(word));
    }
    out.chars().take(500).collect()
}

fn redact_word(word: &str) -> String {
    if let Some(scheme_end) = word.find("://") {
        let rest = &word[scheme_end + 3..];
        if let Some(at) = rest.find('@') {
            let userinfo = &rest[..at];
            if let Some((user, _password)) = userinfo.split_once(':') {
                return format!(
                    "{}{user}:[redacted]{}",
                    &word[..scheme_end + 3],
                    &rest[at..]
                );
            }
        }
    }
    let key_like = ["sk-", "ek_", "whsec_", "eyJ"].iter().any(|prefix| {
        word.trim_start_matches(['"', '\'', '('])
            .starts_with(prefix)
    });
    if key_like && word.len() > 12 {
        return "[redacted]".to_string();
    }
    if word.starts_with("password=") {
        return "password=[redacted]".to_string();
    }
    word.to_string()
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

    #[test]
    fn redact_masks_url_passwords_and_keys() {
        assert_eq!(
            redact("failed postgres://u:pw@h:5432/db now"),
            "failed postgres://u:[redacted]@h:5432/db now"
        );
        assert_eq!(redact("key sk-abcdefghijklmnop"), "key [redacted]");
    }
}
