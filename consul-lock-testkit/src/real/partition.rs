//! Network partitions on loopback: nftables rules that drop every packet between two sets of
//! loopback addresses, in a table of their own that is deleted when the partition heals (or
//! is dropped). They touch only the addresses given (a [`RealCluster`](super::RealCluster)'s
//! agents have addresses of their own), nothing else on the machine.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::Error;

/// A partition in force: packets between its two sides are dropped until it is healed or
/// dropped.
///
/// ```no_run
/// use std::net::Ipv4Addr;
/// use consul_lock_testkit::real::Partition;
/// if let Err(why) = Partition::available() {
///     eprintln!("no partitions here ({why}); the test uses freezes instead");
///     return;
/// }
/// let cut = Partition::between(&[Ipv4Addr::new(127, 150, 7, 11)], &[Ipv4Addr::new(127, 150, 7, 1)]).unwrap();
/// // … 127.150.7.11 and 127.150.7.1 cannot reach each other …
/// cut.heal();
/// ```
#[derive(Debug)]
pub struct Partition {
    table: String,
}

impl Partition {
    /// Whether partitions can be made here: `nft` is installed and this process may add a
    /// table (root, or `CAP_NET_ADMIN`). `Err` says why not.
    ///
    /// # Errors
    ///
    /// A text saying what is missing (install the `nftables` package, run as root).
    pub fn available() -> Result<(), String> {
        let probe = Partition::new_table().map_err(|e| e.to_string())?;
        drop(probe);
        Ok(())
    }

    /// Drops every packet from an address of `a` to one of `b` and back (in nftables' output
    /// hook, which loopback traffic passes once), so that established connections hang as in
    /// a real cut, and new ones time out.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when `nft` is missing or refuses the rules (install `nftables`,
    /// run as root), or a side is empty or not on loopback.
    pub fn between(a: &[Ipv4Addr], b: &[Ipv4Addr]) -> Result<Partition, Error> {
        if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|ip| !ip.is_loopback()) {
            return Err(Error::RealConsul(format!(
                "a partition needs two non-empty sets of loopback addresses, got {a:?} and {b:?}"
            )));
        }
        let partition = Partition::new_table()?;
        let set = |ips: &[Ipv4Addr]| {
            let list = ips
                .iter()
                .map(Ipv4Addr::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            format!("{{ {list} }}")
        };
        let (a, b) = (set(a), set(b));
        let table = &partition.table;
        for rule in [
            format!("add rule inet {table} out ip saddr {a} ip daddr {b} drop"),
            format!("add rule inet {table} out ip saddr {b} ip daddr {a} drop"),
        ] {
            nft(&rule)?;
        }
        Ok(partition)
    }

    /// Heals the partition (deletes its table).
    pub fn heal(self) {
        drop(self);
    }

    /// An empty table with an output chain, named for this process.
    fn new_table() -> Result<Partition, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let table = format!("consul_lock_test_{}_{n}", std::process::id());
        nft(&format!("add table inet {table}"))?;
        let partition = Partition { table };
        let table = &partition.table;
        nft(&format!(
            "add chain inet {table} out {{ type filter hook output priority 0; policy accept; }}"
        ))?;
        Ok(partition)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(e) = nft(&format!("delete table inet {}", self.table)) {
            eprintln!(
                "consul-lock-testkit: could not delete the nftables table {}: {e}",
                self.table
            );
        }
    }
}

/// Runs one `nft` command.
fn nft(command: &str) -> Result<(), Error> {
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = Command::new("nft").args(&args).output().map_err(|e| {
        Error::RealConsul(format!(
            "cannot run nft ({e}): install the nftables package to make loopback partitions"
        ))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::RealConsul(format!(
            "nft {command} failed ({}): {}; partitions need root (or CAP_NET_ADMIN)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
