//! The `#[consul_lock]` and `#[leader]` attributes. Use them through the `consul-lock` crate,
//! which re-exports them as `consul_lock::consul_lock` and `consul_lock::leader`; their
//! documentation is there.

mod args;
mod check;
mod expand;
mod func;
mod key;
mod leader;
mod placeholder;
mod shape;
mod steps;
mod suggest;
mod template;

use proc_macro::TokenStream;

/// Runs a function while holding a distributed lock in HashiCorp Consul.
///
/// The lock is taken after the arguments are bound and before the body runs, and released
/// on every way out: normal return, `return`, `?`, a panic, and (for async code) the future
/// being dropped. The function's signature is not changed; only its body is.
///
/// ```no_run
/// use consul_lock::consul_lock;
///
/// # struct Mailer;
/// # #[derive(Debug)] enum AppError { Lock(consul_lock::Error) }
/// # impl From<consul_lock::Error> for AppError { fn from(e: consul_lock::Error) -> Self { AppError::Lock(e) } }
/// #[consul_lock(key = "send/user-<user_id>/welcome-email", acquire_timeout_ms = 500)]
/// async fn send_welcome_email(user_id: u64, mailer: &Mailer) -> Result<(), AppError> {
///     // At most one process runs this for a given user at a time.
///     Ok(())
/// }
/// ```
///
/// # Options
///
/// | option | value | when omitted |
/// | --- | --- | --- |
/// | `key = "…"` | **required**: the key template, see below; repeated (up to 64), every key is locked at once: see *Several keys* | |
/// | `acquire_timeout_ms = N` | how long to wait for a held key, `0..=86_400_000` ms; `0` tries once | `consul_lock::defaults::acquire_timeout()` (one try) |
/// | `lock_timeout_seconds = N` | the lock's maximum lifespan without renewal (the session TTL), `10..=86400` | `consul_lock::defaults::lock_timeout()` (180 s) |
/// | `renew`, `renew = bool` | renew the session while the body runs, so it may outlive the lock timeout | off |
/// | `consul_cli`, `consul_cli = bool` | the key is the PREFIX of `consul lock PREFIX …`: the lock is on `PREFIX/.lock`, with no key prefix, and excludes the CLI's (see *Sharing a lock with `consul lock`*) | off |
/// | `client = <expr>` | the `consul_lock::Client` to use: any expression, evaluated after the arguments are bound (`self.consul`, `&state.client`, `clients::main()`); a `Client` or a reference, `Box`, `Rc` or `Arc` of one | `consul_lock::defaults::client()` |
/// | `fail_soft`, `fail_soft = bool` | "not acquired" is a value, not an error: see *Return types* | off |
/// | `guard = name` | the body sees `name: &consul_lock::LockGuard` (with several keys, `&consul_lock::MultiLockGuard`): see *Seeing the lock* | |
/// | `crate = "path"` | where the `consul-lock` crate is, when it is renamed in `Cargo.toml` | `::consul_lock` |
///
/// Literal values are checked at compile time. Omitted options are read from
/// `consul_lock::defaults` when the lock is acquired, so `defaults::set_*` at start-up applies
/// to every attribute that does not set the option itself.
///
/// # Key templates
///
/// The key is relative to the key prefix (`consul_lock::defaults::key_prefix()`, by default
/// `locks/ephemeral/`). `<name>` inserts a parameter, `<name.field>` (also `<pair.0>`,
/// `<a.b.c>`) a field of one, and `<self.field>` a field of the receiver. Any step may be a
/// method called without arguments, a getter, for fields that are private:
/// `<order.customer_id()>`, `<self.account().owner_id()>`, `<order.items.first_id()>`. A
/// getter may return a reference (`fn customer_id(&self) -> &str`) or an owned value.
/// Values are formatted with [`Display`](std::fmt::Display) and escaped at run time, so a
/// value always stays inside its segment (`a/b` becomes `a%2Fb`); a value that renders empty
/// is a run-time error (`consul_lock::Error::InvalidKey`), reported like any lock error.
///
/// Every placeholder is evaluated once per call, after the arguments are bound and before the
/// lock is acquired (also when it is then not acquired); its borrows end there, so the body
/// may move the parameters it read. In a function returning a future this happens when the
/// function is called, not when the future is polled.
///
/// Checked at compile time, with the error at the key: unknown names (with a suggestion),
/// unknown fields and methods, method calls with arguments (`<order.line(1)>`: pass such a
/// value as a parameter), `<>`, an unclosed `<`, a stray `>`, an empty segment (`//`), a
/// leading or trailing `/`, a `.` or `..` segment, control characters, and values that are
/// not `Display`.
///
/// ```no_run
/// # use consul_lock::consul_lock;
/// pub struct Order {
///     customer: String,
/// }
///
/// impl Order {
///     pub fn customer_id(&self) -> &str {
///         &self.customer
///     }
/// }
///
/// #[consul_lock(key = "orders/<order.customer_id()>")]
/// async fn ship(order: Order) -> Result<Order, consul_lock::Error> {
///     Ok(order)
/// }
/// ```
///
/// # Several keys
///
/// With `key` repeated the function takes every key at once, or none: one Consul session
/// locks all of them in one transaction (`consul_lock::MultiLock`), so two calls that lock the
/// same keys in opposite order never deadlock. While any key is held the call waits (up to
/// `acquire_timeout_ms`) and tries the whole set again; the release frees every key.
/// `guard = name` gives `name: &consul_lock::MultiLockGuard`, with `keys()`,
/// `fencing_tokens()` (one per key), `fencing_token(key)`, `session_id()`, `is_held()` and
/// `lost()`. Each template is checked as above; more than 64 keys (Consul 1.10's transaction
/// limit) or a template written twice is a compile error. Keys that render the same at run
/// time (a transfer from an account to itself) are locked once.
///
/// ```no_run
/// # use consul_lock::consul_lock;
/// #[consul_lock(key = "accounts/<from>", key = "accounts/<to>", acquire_timeout_ms = 2000)]
/// async fn transfer(from: u64, to: u64, amount: u64) -> Result<(), consul_lock::Error> {
///     // Both accounts are ours: no other transfer touches either.
///     Ok(())
/// }
/// ```
///
/// # Return types
///
/// A lock error must have somewhere to go, so the return type decides what happens when the
/// lock is not acquired. This is checked at compile time, with the error at the return type:
///
/// - Without `fail_soft`: `Result<T, E>` where `E: From<consul_lock::Error>`. A lock error
///   (not acquired within the timeout: `consul_lock::Error::NotAcquired`; Consul unreachable;
///   …) is returned as `Err(E::from(error))`, as `?` would, and the body does not run.
/// - With `fail_soft` (the Python library's `fail_hard=False`), not acquiring the lock is a
///   normal outcome the caller sees:
///   - `Result<Option<T>, E>`: `Ok(None)` when the key stayed held past the acquire timeout,
///     `Err(E::from(error))` for any other lock error; the body returns `Ok(Some(…))` itself.
///   - `Option<T>`: `None` when the lock was not acquired *or* could not be tried (the
///     runtime logs the error); the body returns `Some(…)` itself.
///
/// # Release
///
/// When the body completes (with any value, through `return` or `?` too), the lock is
/// released and the function waits for the release (`release().await`, or
/// `release_blocking()` in a sync function), so that calling the function twice in a row
/// finds the key free. A failed release does not replace the body's result: the runtime
/// logs it with `tracing`, and the lock timeout (TTL) frees the key. On a panic, or when the
/// future is dropped, the guard's `Drop` releases the lock in the background.
///
/// # Seeing the lock
///
/// `guard = name` gives the body `name: &consul_lock::LockGuard`, with the lock's
/// `fencing_token()`, `key()`, `session_id()`, `is_held()`, `lost()` and `handle()` (a
/// cloneable `'static` `LockHandle` for spawned tasks). Pass the fencing token to the systems
/// you write to, so that they reject a holder whose lock expired. The name must not be a
/// parameter's (it would hide it).
///
/// ```no_run
/// # use consul_lock::consul_lock;
/// # struct Store; impl Store { async fn write(&self, _: &str, _: u64) -> Result<(), consul_lock::Error> { Ok(()) } }
/// #[consul_lock(key = "reports/<day>", guard = lock, lock_timeout_seconds = 60, renew)]
/// async fn build_report(day: &str, store: &Store) -> Result<(), consul_lock::Error> {
///     store.write(day, lock.fencing_token()).await?;
///     assert!(lock.is_held());
///     Ok(())
/// }
/// ```
///
/// # Calling a locked function from under the same lock
///
/// A task (or, in sync code outside a task, a thread) that holds a key and asks for it again,
/// for instance a locked function calling another one with the same key, gets
/// `consul_lock::Error::Reentrant` at once, instead of waiting its whole acquire timeout for
/// itself. Pass the guard (`guard = name`) down, or call the body's unlocked part instead. A
/// task it spawns is another holder and waits for the key like any other client.
///
/// ```no_run
/// # use consul_lock::consul_lock;
/// #[consul_lock(key = "accounts/<id>", acquire_timeout_ms = 5_000)]
/// async fn close_account(id: u64) -> Result<(), consul_lock::Error> {
///     // Same key, same task: Err(Error::Reentrant { .. }) at once, not after 5 s.
///     let again = close_account_part(id).await;
///     assert!(matches!(again, Err(consul_lock::Error::Reentrant { .. })));
///     Ok(())
/// }
/// #[consul_lock(key = "accounts/<id>", acquire_timeout_ms = 5_000)]
/// async fn close_account_part(id: u64) -> Result<(), consul_lock::Error> { Ok(()) }
/// ```
///
/// # Sharing a lock with `consul lock`
///
/// With `consul_cli`, the key template renders `consul lock`'s PREFIX and the function locks
/// `PREFIX/.lock`, the key the CLI locks, as a full key (the key prefix is not added). The
/// lock key carries Go's lock flag, so the function and `consul lock PREFIX …` (and Go's
/// `api.Lock` on that key) wait for each other.
///
/// ```no_run
/// # use consul_lock::consul_lock;
/// // Excludes `consul lock jobs/reindex-<shard> ./reindex.sh` (key jobs/reindex-<shard>/.lock).
/// #[consul_lock(key = "jobs/reindex-<shard>", consul_cli, acquire_timeout_ms = 60_000)]
/// fn reindex(shard: u32) -> Result<(), consul_lock::Error> { Ok(()) }
/// ```
///
/// # Supported functions
///
/// - `async fn` and plain `fn` (the sync form blocks the calling thread while it waits; it
///   is safe inside a tokio runtime). The body runs inside an `async move` block or a
///   closure, so `return` and `?` leave only the body.
/// - Methods with `self`, `&self`, `&mut self`; generics, where-clauses, `impl Trait`
///   arguments, pattern arguments (`(a, b): (u32, u32)` binds `<a>` and `<b>`), `unsafe fn`.
/// - `async fn` in traits (with a default body) and in impl blocks.
/// - A sync `fn` returning a future — `impl Future<Output = R>`, `Pin<Box<dyn Future<Output
///   = R> + …>>` or `BoxFuture<'_, R>` — where `R` follows the rules above: the lock is taken
///   when the future is first polled, not when the function is called. If the body is one
///   `async move { … }` block (or `Box::pin(async move { … })`), the lock wraps that block
///   and `guard` works; otherwise the body is called first to build the future and the
///   future is awaited under the lock (and `guard` is not available).
/// - `#[async_trait]` methods, written in either order: `#[async_trait]` on the `impl` block
///   expands first and leaves `Box::pin(async move { … })` bodies, which the previous point
///   covers. In such methods templates may name `self` fields and plain parameters, not
///   bindings inside pattern parameters (`#[async_trait]` renames those).
///
/// `const fn`, `extern fn` and trait methods without a body are compile errors.
///
/// # Renamed dependency
///
/// Generated code names everything by absolute path, `::consul_lock::__private::…`. If the
/// crate is renamed (`locks = { package = "consul-lock", … }`), say so:
/// `#[consul_lock(key = "…", crate = "locks")]`.
#[proc_macro_attribute]
pub fn consul_lock(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::consul_lock(attr.into(), item.into()).into()
}

/// Runs an `async fn` only while this process leads an election, cancels it within the grace
/// when the leadership ends, and campaigns again.
///
/// ```no_run
/// use consul_lock::Leadership;
///
/// # #[derive(Debug)] enum AppError { Lock(consul_lock::Error) }
/// # impl From<consul_lock::Error> for AppError { fn from(e: consul_lock::Error) -> Self { AppError::Lock(e) } }
/// #[consul_lock::leader(name = "scheduler")]
/// async fn scheduler(leadership: Leadership) -> Result<(), AppError> {
///     // One process in the cluster runs this at a time.
///     leadership.stopping().await; // … schedule until told to stop …
///     Ok(())
/// }
/// ```
///
/// Calling `scheduler()` campaigns (key `service/scheduler/leader`, waiting in the key's
/// queue behind other candidates), runs the body with the [`Leadership`] once elected, and
/// when the leadership ends tells the body to stop (`leadership.stopping()` completes), waits
/// for it at most the grace (never longer than the lease has left; not at all once the
/// leadership is lost), drops it, and campaigns again. It returns when the body returns by
/// itself (after resigning), with the body's value. It is `consul_lock::Election::run`.
///
/// # Options
///
/// | option | value | when omitted |
/// | --- | --- | --- |
/// | `name = "…"` | **required**: the election's name; the key is `service/<name>/leader` | |
/// | `key = "…"` | the whole leader key instead (for `consul lock PREFIX`: `"PREFIX/.lock"`) | `service/<name>/leader` |
/// | `lock_timeout_seconds = N` | the lease (session TTL), `10..=86400`: a dead leader is replaced 1–2 × this later | 15 |
/// | `grace_ms = N` | how long before the lease would run out the body is told to stop, and how long it then has; at most a third of the lease | a fifth of the lease |
/// | `value = <expr>` | the leader's value in the key (a `String` or `&str`; an address, a host) | the library's JSON (host, pid, time) |
/// | `client = <expr>` | the `consul_lock::Client` to use (as the lock attribute's) | `consul_lock::defaults::client()` |
/// | `crate = "path"` | where the `consul-lock` crate is, when renamed | `::consul_lock` |
///
/// # The function
///
/// - an `async fn` returning `Result<T, E>` with `E: From<consul_lock::Error>`;
/// - one parameter of type `Leadership` (`consul_lock::Leadership`): it is taken out of the
///   signature (callers call `scheduler()`), and the body gets it for each leadership;
/// - other parameters are plain names (`jobs: Jobs`) of `Clone` types (references are):
///   the body runs once per leadership, with a clone of each; methods take `&self`.
///
/// [`Leadership`]: https://docs.rs/consul-lock/latest/consul_lock/struct.Leadership.html
#[proc_macro_attribute]
pub fn leader(attr: TokenStream, item: TokenStream) -> TokenStream {
    leader::leader(attr.into(), item.into()).into()
}
