//! Settings are checked when the client is built, from the real process environment as a user
//! sets it. One test in its own binary: it sets `CONSUL_*` variables, which no other test of
//! this binary reads.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use consul_lock_runtime::{Client, ClientBuilder, Error, Lock};

#[test]
fn a_bad_environment_fails_when_the_client_is_built_naming_the_variable() {
    // The address: before, accepted here, and every acquire spent its whole timeout
    // before failing with "builder error: invalid port number".
    std::env::set_var("CONSUL_HTTP_ADDR", "127.0.0.1:notaport");
    let started = Instant::now();
    let err = Client::from_env().expect_err("a port that is not a number");
    assert!(started.elapsed() < Duration::from_millis(100));
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "CONSUL_HTTP_ADDR",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("notaport") && text.contains("host:port"),
        "{text}"
    );
    eprintln!("{text}");

    // Basic authentication from CONSUL_HTTP_AUTH reaches the agent.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::env::set_var("CONSUL_HTTP_ADDR", addr.to_string());
    std::env::set_var("CONSUL_HTTP_AUTH", "ops:pa55");
    let seen = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut request = vec![0u8; 4096];
        let n = conn.read(&mut request).expect("read the request");
        let _ = conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&request[..n]).to_lowercase()
    });
    let client = ClientBuilder::from_env()
        .expect("variables")
        .request_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let _ = Lock::new("auth").client(&client).acquire_blocking();
    let request = seen.join().expect("the listener");
    // base64("ops:pa55")
    assert!(
        request.contains(&"authorization: basic b3BzOnBhNTU=".to_lowercase()),
        "{request}"
    );
    std::env::remove_var("CONSUL_HTTP_ADDR");
    std::env::remove_var("CONSUL_HTTP_AUTH");
}
