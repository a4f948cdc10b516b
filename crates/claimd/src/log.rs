//! Standard error, written in batches.
//!
//! The access log writes a line per request. Written one by one, each costs a system call, and
//! handing each to a logging thread costs a thread wake-up; under load either is a fifth of the
//! time a cheap request takes. Here a line is appended to a buffer in memory under a lock held
//! for the copy only, and a thread writes the buffer out every [`INTERVAL`], or the writing
//! thread does at once when [`LIMIT`] bytes have piled up (so memory stays bounded and nothing
//! is dropped). Dropping the [`Flush`] guard writes whatever is left; a process killed outright
//! loses at most the last interval's lines.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a line waits in memory.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// Bytes held before the line's own thread writes them out.
pub const LIMIT: usize = 256 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    stop: AtomicBool,
    /// Where batches go: standard error, or a test's sink.
    sink: fn(&[u8]),
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        // Every change under the lock is one append or one swap: a panic cannot corrupt it.
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn write_out(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            (self.sink)(bytes);
        }
    }
}

fn to_stderr(bytes: &[u8]) {
    // Nowhere to report a failure to write the log.
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// The writer to give `tracing_subscriber::fmt().with_writer(…)`.
#[derive(Clone)]
pub struct BatchedStderr(Arc<Shared>);

/// Writes what is still pending when dropped, and stops the writing thread.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the writing thread.
pub fn batched_stderr() -> (BatchedStderr, Flush) {
    batched(to_stderr, true)
}

/// `thread: false` leaves emptying the buffer to a full buffer and the guard (for tests).
fn batched(sink: fn(&[u8]), thread: bool) -> (BatchedStderr, Flush) {
    let shared = Arc::new(Shared {
        pending: Mutex::default(),
        stop: AtomicBool::new(false),
        sink,
    });
    let worker = shared.clone();
    let thread = thread
        .then(|| {
            std::thread::Builder::new()
                .name("claimd-log".into())
                .spawn(move || {
                    while !worker.stop.load(Ordering::Acquire) {
                        std::thread::park_timeout(INTERVAL);
                        worker.write_out(&worker.take());
                    }
                })
                .ok()
        })
        .flatten();
    (BatchedStderr(shared.clone()), Flush { shared, thread })
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.shared.write_out(&self.shared.take());
    }
}

impl std::io::Write for BatchedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = self.0.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.extend_from_slice(line);
            (pending.len() >= LIMIT).then(|| std::mem::take(&mut *pending))
        };
        if let Some(bytes) = full {
            self.0.write_out(&bytes);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_memory_until_flushed_and_none_is_lost() {
        let (mut writer, flush) = batched(|_| {}, false);
        for i in 0..100 {
            writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let pending = flush.shared.pending.lock().unwrap().clone();
        let text = String::from_utf8(pending).unwrap();
        assert_eq!(text.lines().count(), 100);
        assert!(text.starts_with("line 0\n") && text.ends_with("line 99\n"));
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_filled_it() {
        static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let (mut writer, flush) = batched(
            |b| {
                WRITTEN.fetch_add(b.len(), Ordering::Relaxed);
            },
            false,
        );
        let line = vec![b'x'; 1024];
        for _ in 0..(LIMIT / 1024) {
            writer.write_all(&line).unwrap();
        }
        assert!(
            flush.shared.pending.lock().unwrap().len() < LIMIT,
            "memory stays bounded"
        );
        assert_eq!(
            WRITTEN.load(Ordering::Relaxed),
            LIMIT,
            "written, not dropped"
        );
    }

    #[test]
    fn dropping_the_guard_writes_what_is_pending() {
        static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let (mut writer, flush) = batched(
            |b| {
                WRITTEN.fetch_add(b.len(), Ordering::Relaxed);
            },
            true,
        );
        writer.write_all(b"last words\n").unwrap();
        drop(flush);
        assert_eq!(WRITTEN.load(Ordering::Relaxed), b"last words\n".len());
    }
}
