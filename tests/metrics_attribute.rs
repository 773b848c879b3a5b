//! The attribute labels its metrics with the key *template*: every user gets one series, not
//! one per rendered key (read back with `metrics-util`'s debugging recorder, installed once for
//! this test binary). Runs against the embedded test server, or a real agent when
//! `CONSUL_HTTP_ADDR` is set.

use consul_lock::{consul_lock, Client, Error};
use consul_lock_testkit::TestConsul;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[consul_lock(key = "metrics-attribute/user-<user_id>/welcome", client = client)]
async fn send_welcome(client: &Client, user_id: u64) -> Result<u64, Error> {
    Ok(user_id)
}

#[tokio::test]
async fn the_attribute_labels_metrics_with_its_template() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let client = Client::builder()
        .address(consul.url())
        .build()
        .expect("client");
    for user_id in [1, 2, 3] {
        assert_eq!(send_welcome(&client, user_id).await.unwrap(), user_id);
    }
    let acquired: Vec<(Vec<(String, String)>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == consul_lock::metrics::ACQUISITIONS_TOTAL)
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(c) => Some((
                key.key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
                c,
            )),
            _ => None,
        })
        .collect();
    let template = "metrics-attribute/user-<user_id>/welcome".to_owned();
    assert_eq!(
        acquired,
        vec![(
            vec![
                ("lock".to_owned(), template),
                ("outcome".to_owned(), "acquired".to_owned())
            ],
            3
        )],
        "three calls for three users: one series labelled with the template"
    );
}
