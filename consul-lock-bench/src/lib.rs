//! Library part of the consul-lock benchmark harness: what the bench and the interoperability
//! tests share. [`peers`] finds and runs the peer programs (Consul's Go client, the Python
//! library consul-lock 0.1.6, the `consul lock` CLI) that consul-lock is measured and tested
//! against.

pub mod peers;
