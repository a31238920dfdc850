//! Who is serving: an id drawn once per instance, how many requests the instance has
//! started, and how many it has in progress, for the request's log line
//! (`"instance": {"id", "served", "concurrent"}`).
//!
//! Under Spin 4.1 an instance of a WASIp3 component serves up to 128 requests, up to
//! 16 at once; the log line shows which requests shared an instance and how many were
//! in it together, which is what an operator (and the isolation test,
//! `tests/integration/tests/instance_isolation.rs`) needs to see reuse happen. These
//! counters are instance state about the instance; no request logic reads them.

use std::cell::{Cell, OnceCell};

thread_local! {
    static ID: OnceCell<String> = const { OnceCell::new() };
    static SERVED: Cell<u64> = const { Cell::new(0) };
    static IN_PROGRESS: Cell<u64> = const { Cell::new(0) };
}

/// A request in progress in this instance, from [`enter`] until dropped.
#[derive(Debug)]
pub struct InProgress {
    /// The instance's id: 16 hex digits, random.
    pub id: String,
    /// Requests this instance has started, this one included.
    pub served: u64,
    /// Requests in progress in this instance when this one started, itself included.
    pub concurrent: u64,
}

/// Counts a request in, until the returned value is dropped.
pub fn enter() -> InProgress {
    let id = ID.with(|id| id.get_or_init(draw_id).clone());
    let served = SERVED.with(|served| {
        served.set(served.get() + 1);
        served.get()
    });
    let concurrent = IN_PROGRESS.with(|in_progress| {
        in_progress.set(in_progress.get() + 1);
        in_progress.get()
    });
    InProgress {
        id,
        served,
        concurrent,
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        IN_PROGRESS.with(|in_progress| in_progress.set(in_progress.get().saturating_sub(1)));
    }
}

impl InProgress {
    /// `log_line` (one JSON object) with this request's `"instance"` field added.
    pub fn annotate(&self, mut log_line: String) -> String {
        if !log_line.ends_with('}') {
            return log_line;
        }
        log_line.pop();
        let separator = if log_line.ends_with('{') { "" } else { "," };
        log_line.push_str(&format!(
            "{separator}\"instance\":{{\"id\":\"{}\",\"served\":{},\"concurrent\":{}}}}}",
            self.id, self.served, self.concurrent
        ));
        log_line
    }
}

fn draw_id() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness the id is still an id, only not unique across instances.
    let _ = getrandom::getrandom(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_in_and_out_and_the_id_stays() {
        let first = enter();
        let second = enter();
        assert_eq!(first.id, second.id);
        assert_eq!(first.id.len(), 16);
        assert_eq!(
            (second.served - first.served, second.concurrent),
            (1, first.concurrent + 1)
        );
        drop(second);
        let third = enter();
        assert_eq!(third.concurrent, first.concurrent + 1);
    }

    #[test]
    fn the_instance_field_is_added_to_the_log_object() {
        let request = InProgress {
            id: "00ff".into(),
            served: 3,
            concurrent: 2,
        };
        let line = request.annotate(r#"{"status":200}"#.into());
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["status"], 200);
        assert_eq!(
            parsed["instance"],
            serde_json::json!({"id": "00ff", "served": 3, "concurrent": 2})
        );
        let empty: serde_json::Value =
            serde_json::from_str(&request.annotate("{}".into())).unwrap();
        assert_eq!(empty["instance"]["served"], 3);
    }
}
