//! Support for the code that `#[leader]` generates (not a public API).

use core::future::Future;

pub use consul_lock_runtime::{Election, Leadership};

use consul_lock_runtime::Error;

/// The election of `#[leader(name = ..., key = ..., lock_timeout_seconds = ..., grace_ms = ...)]`.
#[must_use]
pub fn election(
    name: &str,
    key: Option<&str>,
    lock_timeout_seconds: Option<u64>,
    grace_ms: Option<u64>,
) -> Election {
    let mut election = Election::new(name);
    if let Some(key) = key {
        election = election.key(key);
    }
    if let Some(ttl) = lock_timeout_seconds {
        election = election.ttl(core::time::Duration::from_secs(ttl));
    }
    if let Some(grace) = grace_ms {
        election = election.grace(core::time::Duration::from_millis(grace));
    }
    election
}

/// What `value = <expr>` may give.
#[diagnostic::on_unimplemented(
    message = "`value = ...` must give the leader's value as text, not `{Self}`",
    label = "not a `String` or `&str`",
    note = "give a `String` or `&str` (an address, a host name): it is written into the leader key"
)]
pub trait LeaderValue {
    /// The value as a `String`.
    fn into_value(self) -> String;
}

impl LeaderValue for String {
    fn into_value(self) -> String {
        self
    }
}

impl LeaderValue for &str {
    fn into_value(self) -> String {
        self.to_owned()
    }
}

impl LeaderValue for &String {
    fn into_value(self) -> String {
        self.clone()
    }
}

/// `value = <expr>` as the election's value.
pub fn leader_value(value: impl LeaderValue) -> String {
    value.into_value()
}

/// The return types of a `#[leader]` function: `Result<T, E>` with `E: From<consul_lock::Error>`.
#[diagnostic::on_unimplemented(
    message = "a `#[leader]` function cannot return an election error through `{Self}`",
    label = "this return type has no place for a `consul_lock::Error`",
    note = "return `Result<T, E>` with `E: From<consul_lock::Error>`"
)]
pub trait LeaderResult: Sized {
    /// The value of a body that returned.
    type Value;
    /// The error type.
    type Error: From<Error>;
    /// As a `Result`.
    fn into_result(self) -> Result<Self::Value, Self::Error>;
    /// From a `Result`.
    fn from_result(result: Result<Self::Value, Self::Error>) -> Self;
}

impl<T, E: From<Error>> LeaderResult for Result<T, E> {
    type Value = T;
    type Error = E;
    fn into_result(self) -> Result<T, E> {
        self
    }
    fn from_result(result: Result<T, E>) -> Self {
        result
    }
}

/// The conversions of the return type `R`, checked where the type is written (the call is
/// spanned there, and nothing else needs `R: LeaderResult`, so a wrong type is one error).
pub type Conversions<R> = (
    fn(R) -> Result<<R as LeaderResult>::Value, <R as LeaderResult>::Error>,
    fn(Result<<R as LeaderResult>::Value, <R as LeaderResult>::Error>) -> R,
);

/// See [`Conversions`].
#[inline]
#[must_use]
pub fn leader_result<R: LeaderResult>() -> Conversions<R> {
    (R::into_result, R::from_result)
}

/// The conversions to and from `Result<T, E>` of a return type `R`.
pub type Convert<R, T, E> = (fn(R) -> Result<T, E>, fn(Result<T, E>) -> R);

/// [`Election::run`] for the attribute.
pub async fn run_leader<F, Fut, R, T, E>(
    election: Election,
    (into_result, from_result): Convert<R, T, E>,
    mut work: F,
) -> R
where
    F: FnMut(Leadership) -> Fut,
    Fut: Future<Output = R>,
    E: From<Error>,
{
    let result = election
        .run(|leadership| {
            let turn = work(leadership);
            async move { into_result(turn.await) }
        })
        .await;
    from_result(result)
}
