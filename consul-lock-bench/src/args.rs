//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: consul-lock-bench [--smoke] [--duration-secs N] [--json PATH] [--locks N] [--sections LIST]

Measures consul-lock against the bare minimum (three plain HTTP calls per lock cycle):
uncontended cycle, contention (hand-off, utilisation, fairness), many keys, client CPU
and memory. Talks to the Consul agent at CONSUL_HTTP_ADDR, or, when it is unset, to the
embedded test server, which it starts in a child process.

options:
  --smoke            a few seconds in total: every section, tiny durations, up to 4 workers;
                     exits non-zero only if something is broken, not on target misses
  --duration-secs N  seconds per measurement (default 5; 0.25 with --smoke); N may be a
                     decimal such as 0.5
  --json PATH        where to write the JSON results (default bench-results/latest.json,
                     relative to the current directory)
  --locks N          how many locks to hold at once for the memory measurement
                     (default 10000; 200 with --smoke)
  --sections LIST    run only these sections, comma-separated, of: cycle, contention, many,
                     memory (default all; targets are checked on what ran)
  -h, --help         this text";

/// The sections of a run, in order.
pub const SECTIONS: [&str; 4] = ["cycle", "contention", "many", "memory"];

#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub smoke: bool,
    /// Per measurement.
    pub duration: Duration,
    pub json: PathBuf,
    pub locks: usize,
    /// Which of [`SECTIONS`] to run.
    pub sections: Vec<&'static str>,
    /// Internal: run as the embedded server (see `server.rs`).
    pub serve: bool,
    pub help: bool,
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut smoke = false;
    let mut duration = None;
    let mut json = None;
    let mut locks = None;
    let mut sections = SECTIONS.to_vec();
    let mut serve = false;
    let mut help = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value ({what})"))
        };
        match name.as_str() {
            "--smoke" => smoke = true,
            "--serve" => serve = true,
            "-h" | "--help" => help = true,
            "--duration-secs" => {
                let v = value("seconds")?;
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("--duration-secs: {v:?} is not a number of seconds"))?;
                if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
                    return Err(format!(
                        "--duration-secs: {v} is out of range; give more than 0 and at most 3600"
                    ));
                }
                duration = Some(Duration::from_secs_f64(secs));
            }
            "--json" => {
                let v = value("a file path")?;
                if v.is_empty() {
                    return Err("--json: the path is empty".into());
                }
                json = Some(PathBuf::from(v));
            }
            "--locks" => {
                let v = value("a count")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--locks: {v:?} is not a whole number"))?;
                if !(1..=1_000_000).contains(&n) {
                    return Err(format!("--locks: {n} is out of range 1..=1000000"));
                }
                locks = Some(n);
            }
            "--sections" => {
                let v = value("a comma-separated list")?;
                sections = Vec::new();
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let known = SECTIONS.iter().find(|s| **s == name).ok_or_else(|| {
                        format!(
                            "--sections: unknown section {name:?}; use {}",
                            SECTIONS.join(", ")
                        )
                    })?;
                    sections.push(*known);
                }
                if sections.is_empty() {
                    return Err("--sections: the list is empty".into());
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        smoke,
        duration: duration.unwrap_or(if smoke {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        }),
        json: json.unwrap_or_else(|| PathBuf::from("bench-results/latest.json")),
        locks: locks.unwrap_or(if smoke { 200 } else { 10_000 }),
        sections,
        serve,
        help,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let a = p(&[]).unwrap();
        assert!(!a.smoke);
        assert_eq!(a.duration, Duration::from_secs(5));
        assert_eq!(a.json, PathBuf::from("bench-results/latest.json"));
        assert_eq!(a.locks, 10_000);
        let s = p(&["--smoke"]).unwrap();
        assert_eq!(s.duration, Duration::from_millis(250));
        assert_eq!(s.locks, 200);
    }

    #[test]
    fn values() {
        let a = p(&[
            "--duration-secs",
            "0.5",
            "--json=out/x.json",
            "--locks",
            "50",
        ])
        .unwrap();
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.json, PathBuf::from("out/x.json"));
        assert_eq!(a.locks, 50);
        assert_eq!(
            p(&["--sections", "many, cycle"]).unwrap().sections,
            ["many", "cycle"]
        );
        assert_eq!(p(&[]).unwrap().sections, SECTIONS);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(p(&["--duration-secs"])
            .unwrap_err()
            .contains("needs a value"));
        assert!(p(&["--duration-secs", "abc"]).is_err());
        assert!(p(&["--duration-secs", "0"]).is_err());
        assert!(p(&["--duration-secs", "-1"]).is_err());
        assert!(p(&["--duration-secs", "NaN"]).is_err());
        assert!(p(&["--locks", "0"]).is_err());
        assert!(p(&["--json", ""]).is_err());
        assert!(p(&["--sections", "cpu"]).is_err());
        assert!(p(&["--sections", ","]).is_err());
        assert!(p(&["--fast"]).unwrap_err().contains("unknown"));
    }
}
