//! The process limits tests that keep many sockets open need.

/// Raises this process's soft limit of open files towards `want`, up to the hard limit, and
/// returns the soft limit now in force. A newcomer's shell often has a soft limit of 1,024 or
/// 256; tests that keep many sockets open call this (and scale down, saying so, when the
/// result is still too low) instead of asking for `ulimit -n`.
///
/// ```
/// let limit = consul_lock_testkit::raise_open_files_limit(64);
/// assert!(limit >= 64);
/// ```
#[must_use]
pub fn raise_open_files_limit(want: u64) -> u64 {
    // 0 when the limit cannot even be read: the caller then scales down and says so.
    rlimit::increase_nofile_limit(want).unwrap_or(0)
}
