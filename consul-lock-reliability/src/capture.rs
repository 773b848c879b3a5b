//! Captures everything the process logs, at TRACE level, into a buffer that tests search:
//! `tracing` events and spans (with their fields) from every thread, including the library's
//! background worker, and `log` records (reqwest and hyper-util log through `log`).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn append(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
    }
}

struct BufferWriter(Buffer);

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = BufferWriter;
    fn make_writer(&'a self) -> BufferWriter {
        BufferWriter(self.clone())
    }
}

struct LogToBuffer(Buffer);

impl log::Log for LogToBuffer {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.append(
            format!(
                "log {} {}: {}\n",
                record.level(),
                record.target(),
                record.args()
            )
            .as_bytes(),
        );
    }
    fn flush(&self) {}
}

/// The process-wide capture. Get it with [`capture`].
#[derive(Clone)]
pub struct Capture {
    buffer: Buffer,
}

impl Capture {
    /// Everything captured so far.
    #[must_use]
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.0.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// How many bytes were captured so far (to look only at what comes after).
    #[must_use]
    pub fn len(&self) -> usize {
        self.buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was captured yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What was captured after `offset` (a value [`len`](Self::len) returned).
    #[must_use]
    pub fn since(&self, offset: usize) -> String {
        let buf = self.buffer.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&buf[offset.min(buf.len())..]).into_owned()
    }
}

/// Installs (once per process) a global TRACE-level `tracing` subscriber and `log` logger that
/// write into one buffer, and returns the capture.
///
/// # Panics
///
/// When another global subscriber or logger was installed first.
pub fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let buffer = Buffer::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_thread_names(true)
                .with_writer(buffer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global tracing subscriber");
            log::set_boxed_logger(Box::new(LogToBuffer(buffer.clone()))).expect("no other logger");
            log::set_max_level(log::LevelFilter::Trace);
            Capture { buffer }
        })
        .clone()
}
