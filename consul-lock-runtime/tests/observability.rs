//! Tracing: acquire and release spans carry the key, the wait, the attempts and the fencing
//! token, and never the ACL token or the lock's value.

use std::io::Write;
use std::sync::{Arc, Mutex};

use consul_lock_runtime::{Client, Lock};
use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestServer};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn spans_name_the_key_and_token_but_never_secrets() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let secret = "acl-secret-7d1e";
    let acl = AclConfig::deny_by_default().token(
        AclToken::new(secret)
            .key_prefix("", Access::Write)
            .session_prefix("", Access::Write),
    );
    let server = TestServer::start_with(ServerConfig::default().acl(acl)).unwrap();
    let client = Client::builder()
        .address(server.url())
        .token(secret)
        .build()
        .unwrap();
    let value = "value-that-must-not-be-logged";
    let lock = Lock::new("observed")
        .client(&client)
        .value_generator(move |_| value.to_owned());
    let guard = lock.acquire().await.unwrap();
    let token = guard.fencing_token();
    // Another client (as another process would): held. (This task asking again through the
    // same client would be refused as re-entry, before any request.)
    let other = Client::builder()
        .address(server.url())
        .token(secret)
        .build()
        .unwrap();
    assert!(lock
        .clone()
        .client(&other)
        .try_acquire()
        .await
        .unwrap()
        .is_none());
    guard.release().await.unwrap();
    // A failure path too: a wrong token.
    let bad = Client::builder()
        .address(server.url())
        .token("wrong-secret-99")
        .build()
        .unwrap();
    assert!(Lock::new("observed").client(&bad).acquire().await.is_err());
    consul_lock_runtime::flush_releases().await;

    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("consul_lock.acquire"), "{text}");
    assert!(text.contains("consul_lock.release"), "{text}");
    assert!(text.contains("key=locks/ephemeral/observed"), "{text}");
    assert!(text.contains(&format!("fencing_token={token}")), "{text}");
    assert!(text.contains("attempts=1"), "{text}");
    assert!(text.contains("waited_ms="), "{text}");
    assert!(
        !text.contains(secret),
        "the ACL token leaked into tracing output"
    );
    assert!(
        !text.contains("wrong-secret-99"),
        "the ACL token leaked into tracing output"
    );
    assert!(
        !text.contains(value),
        "the lock value leaked into tracing output"
    );
}
