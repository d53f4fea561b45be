//! One JSON line per request on stdout.
//!
//! Lines go through a bounded queue to a writer thread, so a slow or blocked stdout never stalls
//! a connection worker; when the queue is full, lines are dropped and counted
//! (`portcullis_access_log_dropped_lines`).

use std::{
    io::{BufWriter, Write},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel},
    },
    time::{Duration, SystemTime},
};

use serde::Serialize;

/// What one access-log line says about a request.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// When the response ended, RFC 3339 UTC.
    pub ts: String,
    /// The client (trusted-proxy aware).
    pub client: String,
    /// The method.
    pub method: &'a str,
    /// The host, without port.
    pub host: &'a str,
    /// The normalized path (without query).
    pub path: &'a str,
    /// `namespace/name` of the Route, when one matched.
    pub route: Option<&'a str>,
    /// The authenticated consumer (an API key's consumer, the Basic user, the JWT's `sub`),
    /// when the rule authenticates. Never a credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<&'a str>,
    /// The backend, when one was chosen.
    pub backend: Option<&'a str>,
    /// The endpoint of the last attempt.
    pub endpoint: Option<&'a str>,
    /// The status sent to the client.
    pub status: u16,
    /// Milliseconds until the end of the response body.
    pub duration_ms: f64,
    /// Response body bytes sent.
    pub bytes: u64,
}

/// Lines waiting for the writer thread at most.
const QUEUE: usize = 16 * 1024;

static DROPPED: AtomicU64 = AtomicU64::new(0);

enum Message {
    Line(Vec<u8>),
    Flush(Sender<()>),
}

fn writer() -> Option<&'static SyncSender<Message>> {
    static WRITER: OnceLock<Option<SyncSender<Message>>> = OnceLock::new();
    WRITER
        .get_or_init(|| {
            let (sender, receiver) = sync_channel(QUEUE);
            std::thread::Builder::new()
                .name("access-log".to_owned())
                .spawn(move || drain_queue(&receiver))
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

fn drain_queue(receiver: &Receiver<Message>) {
    let mut out = BufWriter::new(std::io::stdout());
    let handle = |message: Message, out: &mut BufWriter<std::io::Stdout>| match message {
        Message::Line(line) => {
            let _ = out.write_all(&line);
        }
        Message::Flush(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    };
    while let Ok(message) = receiver.recv() {
        handle(message, &mut out);
        // Write whatever else is queued, then flush once: one syscall for a burst of lines.
        while let Ok(message) = receiver.try_recv() {
            handle(message, &mut out);
        }
        let _ = out.flush();
    }
}

/// Queues the record as one line. Logging never fails or slows a request: errors (a closed
/// stdout) are ignored and lines beyond the queue are dropped and counted.
pub fn write(record: &AccessRecord<'_>) {
    let Ok(mut line) = serde_json::to_vec(record) else {
        return;
    };
    line.push(b'\n');
    match writer() {
        Some(sender) => {
            if let Err(TrySendError::Full(_)) = sender.try_send(Message::Line(line)) {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            let _ = std::io::stdout().lock().write_all(&line);
        }
    }
}

/// Lines dropped because the queue was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Waits (up to a second) until every queued line is written: called before the process exits.
pub fn flush() {
    let Some(sender) = writer() else {
        return;
    };
    let (done, flushed) = channel();
    if sender.send(Message::Flush(done)).is_ok() {
        let _ = flushed.recv_timeout(Duration::from_secs(1));
    }
}

/// `SystemTime` as RFC 3339 with milliseconds, UTC (`2026-11-26T21:40:46.123Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_729_246_123);
        assert_eq!(rfc3339(t), "2026-11-26T21:40:46.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
