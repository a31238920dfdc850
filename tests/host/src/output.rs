//! Guest stdout and stderr, line by line.
//!
//! Each instance gets its own pair of streams that cut the guest's bytes into lines.
//! A complete line is forwarded to the host's own stdout or stderr (as `spin up` shows
//! component output), appended to `<log dir>/<component>_stdout.txt` or `_stderr.txt`
//! (as `spin up --log-dir` does; `.spin/logs/` beside the manifest by default), and/or
//! kept in memory for the app, so that tests can read the log lines and print them
//! when they fail. A last line without a newline is delivered when the instance ends.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Which of the guest's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// Where guest output goes, for one app.
#[derive(Debug, Default)]
pub struct OutputSink {
    forward: bool,
    captured: Option<Mutex<Vec<String>>>,
    log_dir: Option<PathBuf>,
    files: Mutex<HashMap<(String, Stream), File>>,
}

impl OutputSink {
    /// A sink that forwards to the host's stdout/stderr and/or captures in memory.
    pub fn new(forward: bool, capture: bool) -> Arc<Self> {
        Self::with_log_dir(forward, capture, None)
    }

    /// Like [`OutputSink::new`], also appending each component's lines to its files in
    /// `log_dir` (created when missing).
    pub fn with_log_dir(forward: bool, capture: bool, log_dir: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            forward,
            captured: capture.then(|| Mutex::new(Vec::new())),
            log_dir,
            files: Mutex::new(HashMap::new()),
        })
    }

    fn append_to_file(&self, component: &str, stream: Stream, text: &str) {
        let Some(dir) = &self.log_dir else {
            return;
        };
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let key = (component.to_string(), stream);
        if !files.contains_key(&key) {
            let suffix = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            let opened = std::fs::create_dir_all(dir).and_then(|()| {
                File::options()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{component}_{suffix}.txt")))
            });
            match opened {
                Ok(file) => {
                    files.insert(key.clone(), file);
                }
                Err(_) => return,
            }
        }
        if let Some(file) = files.get_mut(&key) {
            // A log file that cannot be written has nowhere better to be reported.
            let _ = writeln!(file, "{text}");
        }
    }

    fn line(&self, component: &str, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        self.append_to_file(component, stream, text);
        if self.forward {
            // A failed write to our own stdout has nowhere better to be reported.
            let _ = match stream {
                Stream::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
                Stream::Stderr => writeln!(std::io::stderr().lock(), "{text}"),
            };
        }
        if let Some(captured) = &self.captured {
            captured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(text.to_string());
        }
    }

    /// A line from the host itself about a request (a trap, a guest that never
    /// answered): on stderr when forwarding, and among the captured lines.
    pub fn host_line(&self, text: &str) {
        if self.forward {
            eprintln!("{text}");
        }
        if let Some(captured) = &self.captured {
            captured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("[host] {text}"));
        }
    }

    /// The lines captured so far (stdout and stderr interleaved in arrival order).
    pub fn lines(&self) -> Vec<String> {
        match &self.captured {
            Some(captured) => captured.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => Vec::new(),
        }
    }

    /// A WASI stdout or stderr for one instance of `component`.
    pub fn stream(self: &Arc<Self>, component: &str, stream: Stream) -> GuestOutput {
        GuestOutput {
            sink: self.clone(),
            component: Arc::from(component),
            stream,
        }
    }
}

/// A WASI output stream factory handed to `WasiCtxBuilder::stdout`/`stderr`.
pub struct GuestOutput {
    sink: Arc<OutputSink>,
    component: Arc<str>,
    stream: Stream,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            sink: self.sink.clone(),
            component: self.component.clone(),
            stream: self.stream,
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            sink: self.sink.clone(),
            component: self.component.clone(),
            stream: self.stream,
            pending: Vec::new(),
        })
    }
}

/// Cuts bytes into lines for an [`OutputSink`].
struct LineWriter {
    sink: Arc<OutputSink>,
    component: Arc<str>,
    stream: Stream,
    pending: Vec<u8>,
}

/// Longest partial line kept before it is delivered anyway.
const MAX_LINE: usize = 64 * 1024;

impl LineWriter {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(newline) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(newline + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            self.sink
                .line(&self.component, self.stream, &line[..line.len() - 1]);
        }
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.sink.line(&self.component, self.stream, &line);
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.sink.line(&self.component, self.stream, &line);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(1024 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_cut_into_lines_and_the_last_partial_line_is_kept_on_drop() {
        let sink = OutputSink::new(false, true);
        let mut writer = LineWriter {
            sink: sink.clone(),
            component: Arc::from("probe"),
            stream: Stream::Stdout,
            pending: Vec::new(),
        };
        writer.push(b"first li");
        writer.push(b"ne\nsecond\r\nthi");
        assert_eq!(sink.lines(), ["first line", "second"]);
        drop(writer);
        assert_eq!(sink.lines(), ["first line", "second", "thi"]);
    }
}
