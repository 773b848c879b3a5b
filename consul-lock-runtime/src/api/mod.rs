//! Consul's HTTP API as plain calls, without policy: no retries, no waiting, no decision about
//! where they run. Each call is one request, bounded by the timeout its caller gives, and
//! answers with Consul's reply or an [`Error`](crate::Error) naming the key and the operation.
//!
//! - [`http`]: the request plumbing ([`Call`](http::Call));
//! - [`session`]: create, renew, destroy, list;
//! - [`kv`]: reads of one key or a tree (blocking when an index is given), key names;
//! - [`kv_write`]: a check-and-set put and an acquire with flags (the semaphore's writes);
//! - [`txn`]: the lock transaction (lock + leave the queue + read it), unlock, and the lock of
//!   several keys at once;
//! - [`waiters`]: the transaction that joins a key's queue and reads it;
//! - [`fenced`]: a transaction that checks that sessions hold their keys, then writes;
//! - [`agent`]: whether the agent is a server, and how many servers the cluster has.

pub(crate) mod agent;
pub(crate) mod fenced;
pub(crate) mod http;
pub(crate) mod kv;
pub(crate) mod kv_write;
pub(crate) mod session;
pub(crate) mod tls;
pub(crate) mod txn;
pub(crate) mod waiters;

pub use kv::KvEntry;
pub use session::SessionInfo;
pub use txn::GO_LOCK_FLAG;
pub(crate) use txn::{LockAttempt, MultiAttempt};
