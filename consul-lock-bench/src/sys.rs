//! What the operating system tells about this process and machine: CPU time, memory, facts.

use std::time::Duration;

use serde::Serialize;

fn rusage() -> Option<libc::rusage> {
    // SAFETY: `getrusage` only writes into the zeroed struct we own.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }
}

/// Context switches (voluntary + involuntary) of every thread of this process so far: each
/// time a thread blocks to wait for another (a hop to the library's worker thread and back)
/// counts one.
pub fn context_switches() -> u64 {
    rusage().map_or(0, |u| (u.ru_nvcsw.max(0) + u.ru_nivcsw.max(0)) as u64)
}

/// CPU time (user + system) of every thread of this process so far (`getrusage(RUSAGE_SELF)`).
/// Child processes (the embedded server) are not included.
pub fn process_cpu() -> Duration {
    let Some(usage) = rusage() else {
        return Duration::ZERO;
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`), if the system has it.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resets the peak RSS (`VmHWM`) to the current RSS (Linux ≥ 4.0). Returns whether it did.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The 1-minute load average (other work on the machine skews every number).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine and build the numbers were measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub target: String,
    pub os: String,
    pub rustc: String,
    pub profile: String,
    /// 1-minute load average when the run started and when it ended.
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            target: env!("BENCH_TARGET").to_owned(),
            os: format!("{} {kernel}", std::env::consts::OS)
                .trim()
                .to_owned(),
            rustc: env!("BENCH_RUSTC").to_owned(),
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
            load_average_start: load_average(),
            load_average_end: None,
        }
    }
}

/// How many TCP connections this process holds open to `port` on any address, counted
/// exactly: every socket among `/proc/self/fd` whose peer (`getpeername`) has that port. Cheap
/// (one system call per open descriptor), unlike reading `/proc/net/tcp`, which lists every
/// socket of the machine. `None` where `/proc/self/fd` is missing.
pub fn connections_to(port: u16) -> Option<usize> {
    let mut n = 0;
    for fd in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = fd.file_name().to_str().and_then(|f| f.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: `getpeername` writes at most `len` bytes into the zeroed storage we own; a
        // descriptor that is not a connected socket (or was closed meanwhile) just fails.
        let peer_port = unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(fd, (&raw mut addr).cast(), &mut len) != 0 {
                continue;
            }
            match i32::from(addr.ss_family) {
                libc::AF_INET => {
                    let a: &libc::sockaddr_in = &*(&raw const addr).cast();
                    u16::from_be(a.sin_port)
                }
                libc::AF_INET6 => {
                    let a: &libc::sockaddr_in6 = &*(&raw const addr).cast();
                    u16::from_be(a.sin6_port)
                }
                _ => continue,
            }
        };
        if peer_port == port {
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows() {
        let before = process_cpu();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu() >= before);
    }

    #[test]
    fn rss_is_read() {
        if cfg!(target_os = "linux") {
            assert!(status_kib("VmRSS").unwrap() > 0);
            assert!(status_kib("VmHWM").unwrap() > 0);
            assert_eq!(status_kib("NoSuchField"), None);
        }
    }
}
