//! The event log: what a processor printed on stdout and stderr and wrote with `log`, in one
//! buffer capped at `Limits::log_bytes`. Past the cap, output is counted and dropped, never
//! refused, so a chatty processor still completes; the log ends with a marker saying how
//! much was cut.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A capped log shared by the guest's stdout, stderr and the `log` host function.
#[derive(Clone)]
pub struct EventLog(Arc<Mutex<Buffer>>);

struct Buffer {
    bytes: Vec<u8>,
    cap: usize,
    dropped: usize,
}

impl EventLog {
    pub fn new(cap: usize) -> Self {
        EventLog(Arc::new(Mutex::new(Buffer {
            bytes: Vec::new(),
            cap,
            dropped: 0,
        })))
    }

    /// Append raw output; whatever does not fit under the cap is counted as dropped.
    pub fn write(&self, data: &[u8]) {
        let mut buffer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = buffer.cap.saturating_sub(buffer.bytes.len());
        let kept = room.min(data.len());
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += data.len() - kept;
    }

    /// Append one line written through the `log` host function.
    pub fn line(&self, level: &str, message: &str) {
        self.write(format!("[{level}] {message}\n").as_bytes());
    }

    /// The text so far, with a marker when output was dropped.
    pub fn text(&self) -> String {
        let buffer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.dropped > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[twinsync: {} more bytes of log dropped; the log limit is {} bytes]\n",
                buffer.dropped, buffer.cap
            ));
        }
        text
    }
}

impl IsTerminal for EventLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for EventLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for EventLog {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        EventLog::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept: output past the cap is dropped, not refused.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for EventLog {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for EventLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        EventLog::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_is_dropped_with_a_marker() {
        let log = EventLog::new(8);
        log.write(b"12345");
        log.write(b"6789abc");
        assert_eq!(
            log.text(),
            "12345678\n[twinsync: 4 more bytes of log dropped; the log limit is 8 bytes]\n"
        );
    }
}
