//! What `#[consul_lock]` does at run time, for each function shape, against the embedded test
//! server (or a real agent when `CONSUL_HTTP_ADDR` is set): the lock is held while the body
//! runs, a contended call fails (or returns "not acquired" in fail-soft mode) without running
//! the body, and the key is free again after every way out of the body.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consul_lock::{consul_lock, Client, Error, Lock, LockHandle};
use consul_lock_testkit::TestConsul;
use tokio::sync::oneshot;

/// A Consul for one test, a client for it, and a run id that makes this test's keys unique.
struct Env {
    consul: TestConsul,
    client: Client,
    /// Another client for the same Consul, standing for another process: the holder "from
    /// outside". (The attribute's task asking again through `client` would be refused as
    /// re-entry.)
    outsider: Client,
    run: String,
    calls: AtomicU32,
}

impl Env {
    fn new(name: &str) -> Arc<Env> {
        let consul = common::consul();
        Arc::new(Env {
            client: common::client(&consul),
            outsider: common::client(&consul),
            consul,
            run: common::run_name(name),
            calls: AtomicU32::new(0),
        })
    }

    /// The key relative to the prefix, as the attribute renders `macro-tests/<env.run>/<name>`.
    fn relative(&self, name: &str) -> String {
        format!("macro-tests/{}/{name}", self.run)
    }

    /// The full Consul key.
    fn full(&self, name: &str) -> String {
        format!(
            "{}{}",
            consul_lock::defaults::key_prefix(),
            self.relative(name)
        )
    }

    /// A lock on the same key as the attribute's, for holding it from outside (another
    /// client, as another process).
    fn lock(&self, name: &str) -> Lock {
        Lock::new(self.relative(name)).client(&self.outsider)
    }

    /// Counts a run of a body.
    fn ran(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    fn runs(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Whether the key exists in Consul now.
    async fn exists(&self, name: &str) -> bool {
        self.client
            .kv_get(&self.full(name))
            .await
            .expect("read the key")
            .is_some()
    }

    /// Waits for background releases (from panics and dropped futures), then checks the key
    /// is gone and can be taken at once.
    async fn assert_free(&self, name: &str) {
        consul_lock::flush_releases().await;
        assert!(
            !self.exists(name).await,
            "the key {} is left in Consul",
            self.full(name)
        );
        let guard = self
            .lock(name)
            .try_acquire()
            .await
            .expect("try the lock")
            .expect("the key is free");
        guard.release().await.expect("release");
    }

    /// How many sessions this library holds or waits with for the key.
    async fn sessions_for(&self, name: &str) -> usize {
        let marker = format!("consul-lock: {} #", self.full(name));
        self.client
            .sessions()
            .await
            .expect("list sessions")
            .into_iter()
            .filter(|s| s.name.starts_with(&marker))
            .count()
    }
}

#[derive(Debug)]
enum AppError {
    Lock(Error),
    Body(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Lock(e)
    }
}

// ---------------------------------------------------------------------------------------
// async fn

#[consul_lock(key = "macro-tests/<env.run>/async", client = env.client, guard = lock)]
async fn async_job(env: &Env, fail: bool) -> Result<u64, AppError> {
    env.ran();
    // Held while the body runs: the key is ours, and nobody else can take it.
    let entry = env
        .client
        .kv_get(lock.key())
        .await?
        .expect("the key exists while held");
    assert_eq!(entry.session.as_deref(), Some(lock.session_id()));
    assert_eq!(
        entry.modify_index,
        lock.fencing_token(),
        "the fencing token is the ModifyIndex"
    );
    assert!(lock.is_held());
    assert!(
        env.lock("async").try_acquire().await?.is_none(),
        "held while the body runs"
    );
    if fail {
        return Err(AppError::Body("early return"));
    }
    Ok(lock.fencing_token())
}

#[tokio::test]
async fn async_fn_holds_the_lock_and_releases_it_before_returning() {
    let env = Env::new("async");
    let first = async_job(&env, false).await.expect("first call");
    // Released and waited for: the key is gone at once, without flushing background work.
    assert!(
        !env.exists("async").await,
        "released before the function returned"
    );
    let second = async_job(&env, false)
        .await
        .expect("a second call in a row finds the key free");
    assert!(second > first, "fencing tokens grow: {first} then {second}");
    assert_eq!(env.runs(), 2);
    env.assert_free("async").await;
}

#[tokio::test]
async fn async_fn_releases_on_early_return() {
    let env = Env::new("async-return");
    let err = async_job(&env, true).await.unwrap_err();
    assert!(matches!(err, AppError::Body("early return")), "{err:?}");
    assert!(
        !env.exists("async").await,
        "released before the function returned"
    );
    env.assert_free("async").await;
}

#[tokio::test]
async fn async_fn_contended_returns_the_lock_error_without_running_the_body() {
    let env = Env::new("async-contended");
    let holder = env.lock("async").acquire().await.unwrap();
    let err = async_job(&env, false).await.unwrap_err();
    match err {
        AppError::Lock(Error::NotAcquired { key, .. }) => assert_eq!(key, env.full("async")),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    assert_eq!(env.runs(), 0, "the body does not run");
    holder.release().await.unwrap();
    async_job(&env, false).await.expect("free again");
    env.assert_free("async").await;
}

#[consul_lock(key = "macro-tests/<env.run>/question", client = env.client)]
async fn question_mark(env: &Env, input: &str) -> Result<u32, AppError> {
    env.ran();
    let n: u32 = input.parse().map_err(|_| AppError::Body("not a number"))?;
    Ok(n)
}

#[tokio::test]
async fn async_fn_releases_on_question_mark() {
    let env = Env::new("question");
    assert!(matches!(
        question_mark(&env, "x").await,
        Err(AppError::Body("not a number"))
    ));
    assert!(!env.exists("question").await);
    assert_eq!(question_mark(&env, "7").await.unwrap(), 7);
    env.assert_free("question").await;
}

#[consul_lock(key = "macro-tests/<env.run>/panic", client = env.client)]
async fn async_panics(env: Arc<Env>) -> Result<(), Error> {
    env.ran();
    panic!("the body panics");
}

#[tokio::test]
async fn async_fn_releases_on_panic() {
    let env = Env::new("async-panic");
    let err = tokio::spawn(async_panics(env.clone())).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(env.runs(), 1);
    env.assert_free("panic").await;
}

#[consul_lock(key = "macro-tests/<env.run>/dropped", client = env.client)]
async fn waits_forever(
    env: &Env,
    started: oneshot::Sender<()>,
    never: oneshot::Receiver<()>,
) -> Result<(), Error> {
    env.ran();
    started.send(()).expect("the test waits for the start");
    let _ = never.await;
    unreachable!("the test drops the future");
}

#[tokio::test]
async fn async_fn_releases_when_the_future_is_dropped() {
    let env = Env::new("dropped");
    let (started_tx, started_rx) = oneshot::channel();
    let (_never_tx, never_rx) = oneshot::channel();
    let mut call = Box::pin(waits_forever(&env, started_tx, never_rx));
    tokio::select! {
        _ = &mut call => panic!("the body never finishes"),
        started = started_rx => started.expect("the body started"),
    }
    assert!(env.exists("dropped").await, "held while the body waits");
    assert!(env.lock("dropped").try_acquire().await.unwrap().is_none());
    drop(call);
    env.assert_free("dropped").await;
}

#[consul_lock(
    key = "macro-tests/<env.run>/wait",
    client = env.client,
    acquire_timeout_ms = 20000,
    lock_timeout_seconds = 10
)]
async fn waits_for_the_key(env: Arc<Env>) -> Result<u32, Error> {
    env.ran();
    Ok(env.runs())
}

#[tokio::test]
async fn async_fn_waits_for_a_held_key_within_the_acquire_timeout() {
    let env = Env::new("wait");
    let holder = env.lock("wait").acquire().await.unwrap();
    let call = tokio::spawn(waits_for_the_key(env.clone()));
    // The waiter's session appears next to the holder's once it is waiting on the key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.sessions_for("wait").await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never started waiting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.runs(), 0, "the body waits for the lock");
    holder.release().await.unwrap();
    let runs = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the waiter wakes when the key is released")
        .unwrap()
        .expect("acquired after the release");
    assert_eq!(runs, 1);
    env.assert_free("wait").await;
}

// ---------------------------------------------------------------------------------------
// fail-soft

#[consul_lock(key = "macro-tests/<env.run>/soft", client = env.client, fail_soft)]
async fn soft_result(env: &Env) -> Result<Option<u32>, AppError> {
    env.ran();
    Ok(Some(42))
}

#[consul_lock(key = "macro-tests/<env.run>/soft", client = env.client, fail_soft)]
fn soft_option(env: &Env) -> Option<u32> {
    env.ran();
    Some(7)
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_soft_not_acquired_is_a_value() {
    let env = Env::new("soft");
    assert_eq!(soft_result(&env).await.unwrap(), Some(42));
    assert_eq!(soft_option(&env), Some(7));
    let holder = env.lock("soft").acquire().await.unwrap();
    assert_eq!(
        soft_result(&env).await.unwrap(),
        None,
        "Ok(None): not acquired"
    );
    assert_eq!(soft_option(&env), None, "None: not acquired");
    assert_eq!(
        env.runs(),
        2,
        "the body ran only when the lock was acquired"
    );
    holder.release().await.unwrap();
    env.assert_free("soft").await;
}

#[consul_lock(key = "macro-tests/<env.run>/soft-error/<value>", client = env.client, fail_soft)]
async fn soft_render_error(env: &Env, value: &str) -> Result<Option<u32>, AppError> {
    env.ran();
    Ok(Some(1))
}

#[tokio::test]
async fn fail_soft_reports_other_lock_errors() {
    let env = Env::new("soft-error");
    // An empty value is an error (it would make `//`), not "not acquired".
    match soft_render_error(&env, "").await {
        Err(AppError::Lock(Error::InvalidKey { key, .. })) => {
            assert!(key.contains("<value>"), "{key}")
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    assert_eq!(env.runs(), 0);
}

// ---------------------------------------------------------------------------------------
// sync fn

#[consul_lock(key = "macro-tests/<env.run>/sync", client = env.client, guard = lock)]
fn sync_job(env: &Env, mode: u8) -> Result<u64, AppError> {
    env.ran();
    assert!(lock.is_held());
    let other = env.lock("sync").try_acquire_blocking()?;
    assert!(other.is_none(), "held while the body runs");
    match mode {
        0 => Ok(lock.fencing_token()),
        1 => Err(AppError::Body("early return")),
        2 => {
            let parsed: Result<u64, AppError> = Err(AppError::Body("question mark"));
            let n = parsed?;
            Ok(n)
        }
        _ => panic!("the body panics"),
    }
}

#[test]
fn sync_fn_outside_any_runtime() {
    let env = Env::new("sync-plain");
    let first = sync_job(&env, 0).expect("first call");
    let second = sync_job(&env, 0).expect("a second call in a row finds the key free");
    assert!(second > first);
    assert!(matches!(
        sync_job(&env, 1),
        Err(AppError::Body("early return"))
    ));
    assert!(matches!(
        sync_job(&env, 2),
        Err(AppError::Body("question mark"))
    ));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_job(&env, 3)));
    assert!(panicked.is_err());
    assert_eq!(env.runs(), 5);
    consul_lock::flush_releases_blocking().unwrap();
    let guard = env
        .lock("sync")
        .try_acquire_blocking()
        .unwrap()
        .expect("free after the panic");
    guard.release_blocking().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn sync_fn_inside_a_current_thread_runtime() {
    let env = Env::new("sync-in-tokio");
    // Called directly on the runtime's only thread: the blocking API must not deadlock.
    sync_job(&env, 0).expect("acquired");
    assert!(
        !env.exists("sync").await,
        "released before the function returned"
    );
    assert!(matches!(
        sync_job(&env, 1),
        Err(AppError::Body("early return"))
    ));
    assert!(!env.exists("sync").await);
    let holder = env.lock("sync").acquire().await.unwrap();
    match sync_job(&env, 0) {
        Err(AppError::Lock(Error::NotAcquired { .. })) => {}
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    holder.release().await.unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync_job(&env, 3)));
    assert!(panicked.is_err());
    env.assert_free("sync").await;
    assert_eq!(env.runs(), 3);
}

// ---------------------------------------------------------------------------------------
// methods

struct Mailer {
    consul: Client,
    tenant: String,
    sent: u32,
}

impl Mailer {
    #[consul_lock(key = "macro-tests/<self.tenant>/<user>", client = self.consul, guard = lock)]
    async fn send(&self, user: u64) -> Result<String, Error> {
        Ok(lock.key().to_owned())
    }

    #[consul_lock(key = "macro-tests/<self.tenant>/count", client = &self.consul)]
    fn count(&mut self) -> Result<u32, Error> {
        self.sent += 1;
        Ok(self.sent)
    }

    #[consul_lock(key = "macro-tests/<self.tenant>/close", client = self.consul.clone())]
    async fn close(self) -> Result<u32, Error> {
        Ok(self.sent)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_render_self_fields_and_use_the_client_expression() {
    let env = Env::new("methods");
    let mut mailer = Mailer {
        consul: env.client.clone(),
        tenant: env.run.clone(),
        sent: 0,
    };
    let key = mailer.send(42).await.unwrap();
    assert_eq!(key, env.full("42"));
    assert_eq!(mailer.count().unwrap(), 1);
    assert_eq!(mailer.count().unwrap(), 2);
    let holder = env.lock("42").acquire().await.unwrap();
    assert!(matches!(
        mailer.send(42).await,
        Err(Error::NotAcquired { .. })
    ));
    holder.release().await.unwrap();
    assert_eq!(mailer.close().await.unwrap(), 2);
    for name in ["42", "count", "close"] {
        env.assert_free(name).await;
    }
}

// Values are escaped by the runtime so they stay inside their segment.
#[consul_lock(key = "macro-tests/<env.run>/<path>", client = env.client, guard = lock)]
async fn escaped(env: &Env, path: &str) -> Result<String, Error> {
    Ok(lock.key().to_owned())
}

#[tokio::test]
async fn values_are_escaped_into_one_segment() {
    let env = Env::new("escape");
    let key = escaped(&env, "../a/b").await.unwrap();
    assert_eq!(key, env.full("..%2Fa%2Fb"));
}

// ---------------------------------------------------------------------------------------
// getters in key templates

/// An order whose fields are private: templates reach them through getters, which count
/// their calls.
struct Order {
    run: String,
    customer: String,
    calls: Arc<AtomicU32>,
}

impl Order {
    fn new(env: &Env, customer: &str, calls: &Arc<AtomicU32>) -> Order {
        Order {
            run: env.run.clone(),
            customer: customer.to_owned(),
            calls: calls.clone(),
        }
    }

    fn run(&self) -> &str {
        &self.run
    }

    fn customer_id(&self) -> &str {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.customer
    }

    fn into_customer(self) -> String {
        self.customer
    }
}

// The owned order is moved into the body after its getters ran.
#[consul_lock(
    key = "macro-tests/<order.run()>/orders/<order.customer_id()>",
    client = env.client,
    guard = lock
)]
async fn process_order(env: &Env, order: Order) -> Result<(String, String), Error> {
    env.ran();
    // Held while the body runs: the key is in Consul, under this session.
    let entry = env
        .client
        .kv_get(lock.key())
        .await?
        .expect("the key exists while held");
    assert_eq!(entry.session.as_deref(), Some(lock.session_id()));
    Ok((lock.key().to_owned(), order.into_customer()))
}

#[consul_lock(
    key = "macro-tests/<order.run()>/orders/<order.customer_id()>",
    client = env.client,
    guard = lock
)]
fn process_order_blocking(env: &Env, order: &Order) -> Result<String, Error> {
    env.ran();
    Ok(lock.key().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn getters_render_the_key_once_before_the_lock() {
    let env = Env::new("getters");
    let calls = Arc::new(AtomicU32::new(0));
    let (key, customer) = process_order(&env, Order::new(&env, "c-1", &calls))
        .await
        .unwrap();
    assert_eq!(key, env.full("orders/c-1"));
    assert_eq!(customer, "c-1", "the body got the order");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the getter ran once");
    env.assert_free("orders/c-1").await;

    // Escaped like every value.
    let (key, _) = process_order(&env, Order::new(&env, "a/../b", &calls))
        .await
        .unwrap();
    assert_eq!(key, env.full("orders/a%2F..%2Fb"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Evaluated before the lock is taken: also when the lock is not acquired.
    let holder = env.lock("orders/c-1").acquire().await.unwrap();
    let err = process_order(&env, Order::new(&env, "c-1", &calls))
        .await
        .unwrap_err();
    match err {
        Error::NotAcquired { key, .. } => assert_eq!(key, env.full("orders/c-1")),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    holder.release().await.unwrap();
    assert_eq!(env.runs(), 2, "the body did not run without the lock");

    // The sync form, on a borrowed order.
    let order = Order::new(&env, "c-2", &calls);
    let key = tokio::task::block_in_place(|| process_order_blocking(&env, &order)).unwrap();
    assert_eq!(key, env.full("orders/c-2"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    env.assert_free("orders/c-2").await;
}

struct Account {
    owner: u64,
    calls: AtomicU32,
}

impl Account {
    fn owner_id(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.owner
    }
}

struct Billing {
    env: Arc<Env>,
    account: Account,
}

impl Billing {
    fn account(&self) -> &Account {
        &self.account
    }

    fn run(&self) -> &str {
        &self.env.run
    }

    #[consul_lock(
        key = "macro-tests/<self.run()>/owner-<self.account().owner_id()>",
        client = self.env.client,
        guard = lock
    )]
    async fn charge(&self, cents: u64) -> Result<(String, u64), Error> {
        self.env.ran();
        assert!(
            self.env
                .exists(&format!("owner-{}", self.account.owner))
                .await
        );
        Ok((lock.key().to_owned(), cents))
    }
}

#[tokio::test]
async fn chained_getters_on_self() {
    let env = Env::new("self-getters");
    let billing = Billing {
        env: env.clone(),
        account: Account {
            owner: 42,
            calls: AtomicU32::new(0),
        },
    };
    let (key, cents) = billing.charge(5).await.unwrap();
    assert_eq!(key, env.full("owner-42"));
    assert_eq!(cents, 5);
    assert_eq!(billing.account.calls.load(Ordering::SeqCst), 1);
    env.assert_free("owner-42").await;
}

// ---------------------------------------------------------------------------------------
// functions returning futures, traits

#[consul_lock(key = "macro-tests/<run>/lazy", client = client, guard = lock)]
fn lazy(client: Client, run: String) -> impl Future<Output = Result<LockHandle, Error>> + Send {
    async move { Ok(lock.handle()) }
}

#[consul_lock(key = "macro-tests/<run>/opaque", client = client)]
fn opaque(
    client: Client,
    run: String,
    seen: Arc<AtomicU32>,
) -> impl Future<Output = Result<u32, Error>> {
    // Built when called; awaited under the lock.
    let n = seen.fetch_add(1, Ordering::SeqCst);
    std::future::ready(Ok(n))
}

#[tokio::test]
async fn future_returning_fns_lock_when_polled() {
    let env = Env::new("future");
    let call = lazy(env.client.clone(), env.run.clone());
    assert!(
        !env.exists("lazy").await,
        "not locked before the future is polled"
    );
    let handle = call.await.unwrap();
    assert!(!handle.is_held(), "the handle reports the release");
    assert!(handle.fencing_token() > 0);
    env.assert_free("lazy").await;

    let seen = Arc::new(AtomicU32::new(0));
    let holder = env.lock("opaque").acquire().await.unwrap();
    let err = opaque(env.client.clone(), env.run.clone(), seen.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAcquired { .. }));
    holder.release().await.unwrap();
    assert_eq!(
        opaque(env.client.clone(), env.run.clone(), seen.clone())
            .await
            .unwrap(),
        1
    );
    env.assert_free("opaque").await;
}

trait Worker {
    fn env(&self) -> &Env;

    #[consul_lock(key = "macro-tests/<name>", client = self.env().client)]
    async fn work(&self, name: String) -> Result<u32, Error> {
        self.env().ran();
        Ok(self.env().runs())
    }
}

struct W(Arc<Env>);

impl Worker for W {
    fn env(&self) -> &Env {
        &self.0
    }
}

// The shape `#[async_trait]` gives a method.
trait BoxedWorker {
    fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>>;
}

impl BoxedWorker for W {
    #[consul_lock(key = "macro-tests/<self.0.run>/boxed-<id>", client = self.0.client, guard = lock)]
    fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send + 'a>> {
        Box::pin(async move {
            let __self = self;
            __self.0.ran();
            assert!(__self
                .0
                .lock(&format!("boxed-{id}"))
                .try_acquire()
                .await?
                .is_none());
            Ok(lock.fencing_token())
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn trait_methods_and_boxed_futures() {
    let env = Env::new("traits");
    let w = W(env.clone());
    let name = format!("{}/trait", env.run);
    assert_eq!(w.work(name.clone()).await.unwrap(), 1);
    env.assert_free("trait").await;
    let token = tokio::spawn(async move { w.run(7).await })
        .await
        .unwrap()
        .unwrap();
    assert!(token > 0);
    env.assert_free("boxed-7").await;
}

#[test]
fn env_reports_where_it_runs() {
    let env = Env::new("where");
    assert!(!env.consul.url().is_empty());
    let _embedded = env.consul.server().is_some();
}
