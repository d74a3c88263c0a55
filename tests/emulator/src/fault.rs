//! Faults a test queues per endpoint: each request to that endpoint takes the next one, and is
//! answered normally once the queue is empty.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The real error envelope with this HTTP status (500, 502, 503, 504, ...).
    Status(u16),
    /// 429 with the rate-limit envelope, and `Retry-After: <seconds>` when given.
    TooManyRequests { retry_after: Option<u64> },
    /// 503 with the error envelope and `Retry-After: <seconds>`: dbt Cloud in maintenance.
    Unavailable { retry_after: u64 },
    /// An HTML error page with this status, as proxies answer.
    HtmlPage(u16),
    /// Do the work at once but send the answer this late (longer than the client's timeout, say):
    /// a trigger delayed so has created its run although the client gave up on the answer.
    Delay(Duration),
    /// Close the connection without answering.
    Reset,
    /// The normal answer, with its full `Content-Length`, but the body stops halfway.
    CutBody,
    /// Trigger only: create the run, then close the connection without answering.
    CreateThenDrop,
    /// Answer 302 with this `Location` (for artifact downloads: a second host).
    Redirect(String),
    /// Answer this status with this JSON body: an answer shaped unlike the API's.
    Json(u16, serde_json::Value),
    /// The normal answer, with its full `Content-Length`, but `bytes` at a time every `tick`.
    Trickle { bytes: usize, tick: Duration },
    /// The normal answer, streamed without a `Content-Length`.
    NoLength,
    /// The normal answer with these fields of its `data` replaced (added, or set to null): a real
    /// answer's quirks on the emulator's run.
    Patch(serde_json::Map<String, serde_json::Value>),
    /// The normal answer with a field nothing reads added to its `data`: an array of about
    /// `bytes` bytes, generated while it is sent.
    Padded { bytes: u64 },
    /// The normal answer with a field the component does read grown huge (made for each answer,
    /// never kept in the queue).
    Bloated(Bloat),
}

/// How [`Fault::Bloated`] grows an answer's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bloat {
    /// `run_steps` of this many small steps (id, index, name and status).
    Steps(usize),
    /// `run_steps` of four steps whose `logs` and `debug_logs` hold about this many bytes in all.
    StepLogs(usize),
    /// This field (`trigger`, `job`) as an object of about this many bytes, in strings of 1 KB.
    Field { name: String, bytes: usize },
}
