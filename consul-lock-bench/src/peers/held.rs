//! A key held by a peer process (the `hold` mode).

use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout};

use super::{PeerError, PeerKind};

/// A key held by a peer process. Dropping it kills the process (Consul then frees the key
/// when the peer's session TTL runs out); [`release`](Self::release) unlocks it properly.
#[derive(Debug)]
pub struct HeldLock {
    pub(super) peer: PeerKind,
    pub(super) child: Child,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) stdout: BufReader<ChildStdout>,
    pub(super) fencing_index: u64,
}

impl HeldLock {
    /// The key's `ModifyIndex` read by the peer right after it locked the key.
    pub fn fencing_index(&self) -> u64 {
        self.fencing_index
    }

    /// Closes the peer's stdin, which makes it unlock, and waits for it to exit.
    ///
    /// # Errors
    /// [`PeerError::Failed`] when the peer does not exit cleanly (its stderr is in the error).
    pub fn release(mut self) -> Result<(), PeerError> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        let ok = matches!(&status, Ok(s) if s.success());
        let said_unlocked =
            self.peer == PeerKind::ConsulCli || rest.lines().any(|l| l.trim() == "unlocked");
        if ok && said_unlocked {
            Ok(())
        } else {
            Err(PeerError::Failed {
                peer: self.peer.label(),
                mode: "hold",
                detail: format!(
                    "unlock failed ({status:?}; stdout {:?}; stderr {:?})",
                    rest.trim(),
                    stderr.trim()
                ),
            })
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
