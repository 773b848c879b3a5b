//! A monotonic clock whose readings can be compared between processes.
//!
//! `std::time::Instant` is opaque and cannot be sent to another process. On Linux,
//! `CLOCK_MONOTONIC` is one system-wide clock, so nanosecond readings taken in different
//! processes on the same machine are comparable.

/// Nanoseconds of `CLOCK_MONOTONIC`, comparable between processes on the same machine.
///
/// ```
/// let a = consul_lock_reliability::clock::monotonic_ns();
/// let b = consul_lock_reliability::clock::monotonic_ns();
/// assert!(b >= a);
/// ```
#[must_use]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always available on
    // the platforms this crate runs on.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Milliseconds between two [`monotonic_ns`] readings (negative when `to` is earlier).
#[must_use]
pub fn ms_between(from_ns: u64, to_ns: u64) -> f64 {
    (to_ns as f64 - from_ns as f64) / 1e6
}
