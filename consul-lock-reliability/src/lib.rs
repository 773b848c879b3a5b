//! Support code for the reliability tests of `consul-lock`: a clock shared by processes, the
//! hold history and its checker, the multi-process stress run, access to a Consul (the
//! embedded test server or a real agent) and a tracing capture.
//!
//! The tests live in `tests/`; the binaries in `src/bin/` are the processes they start
//! (`reliability-stress` for the stress workers and the long run, `crash-holder` for the
//! crash test, `history-holder` for the lease holders of the history checker,
//! `election-candidate` for the candidates and observers of the election workload).

#![warn(missing_docs)]

pub mod candidates;
pub mod capture;
pub mod clock;
pub mod election_candidate;
pub mod election_history;
pub mod failover;
pub mod history;
pub mod holder;
pub mod holders;
pub mod lease_history;
pub mod stress;
pub mod support;
