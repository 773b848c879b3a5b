//! How locks are printed: a table and a detail view for people, JSON for scripts.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

use crate::exit::{Failure, CONSUL};
use crate::state::{Holder, LockInfo};

/// A duration in milliseconds, as people read an age: `850ms`, `42s`, `3m12s`, `2h05m`, `3d04h`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

/// `host`, `pid 42`, or the raw value when it is not the library's default.
fn who(h: &Holder) -> String {
    match (&h.host, h.pid, &h.value) {
        (Some(host), Some(pid), _) => format!("pid {pid} on {host}"),
        (Some(host), None, _) => host.clone(),
        (None, Some(pid), _) => format!("pid {pid}"),
        (None, None, Some(value)) => format!("value {value:?}"),
        (None, None, None) => "-".to_owned(),
    }
}

/// The `list` table.
pub fn table(locks: &[LockInfo]) -> String {
    let header = [
        "KEY",
        "HOST",
        "PID",
        "LOCKED AT",
        "AGE",
        "TTL",
        "NODE",
        "WAITERS",
        "TOKEN",
    ];
    let rows: Vec<[String; 9]> = locks
        .iter()
        .map(|l| {
            [
                l.key.clone(),
                or_dash(
                    l.holder
                        .host
                        .clone()
                        .or_else(|| l.holder.value.as_ref().map(|v| format!("value {v:?}"))),
                ),
                or_dash(l.holder.pid.map(|p| p.to_string())),
                or_dash(l.holder.locked_at.clone()),
                or_dash(l.holder.age_ms.map(age)),
                or_dash(l.session.ttl.clone().map(|ttl| {
                    if l.session.shared {
                        format!("{ttl}(shared)")
                    } else {
                        ttl
                    }
                })),
                or_dash(l.session.node.clone()),
                l.waiters.to_string(),
                l.fencing_token.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// The `show` detail view.
pub fn detail(l: &LockInfo) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "{:<15}{value}", format!("{name}:"));
    };
    field("key", l.key.clone());
    field("consul key", l.consul_key.clone());
    field("held by", who(&l.holder));
    if l.holder.host.is_some() || l.holder.pid.is_some() {
        if let Some(value) = &l.holder.value {
            field("value", value.clone());
        }
    }
    field(
        "locked at",
        match (&l.holder.locked_at, l.holder.age_ms) {
            (Some(at), Some(ms)) => format!("{at} ({} ago)", age(ms)),
            (Some(at), None) => at.clone(),
            _ => "- (the value does not say)".to_owned(),
        },
    );
    field("session", l.session.id.clone());
    field(
        "session ttl",
        match &l.session.ttl {
            Some(ttl) if l.session.shared => format!(
                "{ttl} (the holder's shared session: its other locks use it too; the lock's \
                 own lock timeout is kept by the holder)"
            ),
            Some(ttl) => ttl.clone(),
            None => "- (the session was not listed: it may have just ended)".to_owned(),
        },
    );
    field("node", or_dash(l.session.node.clone()));
    field("fencing token", l.fencing_token.to_string());
    field("lock index", l.lock_index.to_string());
    field("waiters", l.waiters.to_string());
    for w in l.queue.iter().flatten() {
        let mut text = format!(
            "  {}. session {}  queued at index {}",
            w.position, w.session.id, w.queued_index
        );
        if let Some(node) = &w.session.node {
            let _ = write!(text, "  node {node}");
        }
        if let Some(ttl) = &w.session.ttl {
            let _ = write!(text, "  ttl {ttl}");
        }
        if w.holder.host.is_some() || w.holder.pid.is_some() {
            let _ = write!(text, "  {}", who(&w.holder));
        }
        if let Some(ms) = w.holder.age_ms {
            let _ = write!(text, "  waiting {}", age(ms));
        }
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// Who holds a lock, in one line: `pid 42 on web-3, session …, locked at … (3m12s ago),
/// fencing token 57`.
pub fn whose(lock: &LockInfo) -> String {
    let h = &lock.holder;
    let mut text = match (&h.host, h.pid, &h.value) {
        (None, None, Some(v)) => format!("the holder that wrote {v:?}"),
        (None, None, None) => "an unnamed holder".to_owned(),
        _ => who(h),
    };
    let _ = write!(text, ", session {}", lock.session.id);
    if let Some(at) = &h.locked_at {
        let _ = write!(text, ", locked at {at}");
        if let Some(ms) = h.age_ms {
            let _ = write!(text, " ({} ago)", age(ms));
        }
    }
    let _ = write!(text, ", fencing token {}", lock.fencing_token);
    text
}

/// Writes to stdout. A closed stdout (`consul-lock list | head -1`) is not an error.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Pretty JSON, ending with a newline.
pub fn json(value: &impl Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Failure::new(CONSUL, format!("cannot write JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(age(850), "850ms");
        assert_eq!(age(42_000), "42s");
        assert_eq!(age(192_000), "3m12s");
        assert_eq!(age(7_500_000), "2h05m");
        assert_eq!(age(273_600_000), "3d04h");
    }
}
