//! The metrics as `metrics-exporter-prometheus` renders them, configured by default and as
//! the docs say: by default a histogram is a summary (quantiles, no `_bucket` series), so the
//! docs' `histogram_quantile(…_bucket…)` needs buckets set with `set_buckets_for_metric`.

mod common;

use common::Env;
use consul_lock_runtime::metrics::{HELD_SECONDS, SECONDS_BUCKETS, WAIT_SECONDS};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// Takes and releases a lock under `recorder` (each recording is made on this thread: a
/// current-thread runtime runs the acquire and the explicit release in place), and returns
/// what the exporter renders.
fn render_after_a_lock(recorder: PrometheusRecorder) -> String {
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let env = Env::new("prometheus");
            let guard = env
                .lock("report")
                .metrics_name("reports/<id>")
                .acquire()
                .await
                .expect("acquire");
            guard.release().await.expect("release");
        });
    });
    handle.render()
}

#[test]
fn by_default_the_exporter_renders_histograms_as_summaries() {
    let text = render_after_a_lock(PrometheusBuilder::new().build_recorder());
    eprintln!("{text}");
    assert!(
        text.contains(
            r#"consul_lock_acquisitions_total{lock="reports/<id>",outcome="acquired"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE consul_lock_wait_seconds summary"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"consul_lock_wait_seconds{lock="reports/<id>",outcome="acquired",quantile="0.99"}"#
        ),
        "{text}"
    );
    assert!(!text.contains("_bucket"), "no buckets unless set: {text}");
}

#[test]
fn with_the_documented_buckets_the_promql_of_the_docs_has_its_series() {
    // What the docs tell users to write.
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("consul_lock_".into()), SECONDS_BUCKETS)
        .expect("buckets")
        .build_recorder();
    let text = render_after_a_lock(recorder);
    eprintln!("{text}");
    for name in [WAIT_SECONDS, HELD_SECONDS] {
        assert!(
            text.contains(&format!("# TYPE {name} histogram")),
            "{name}: {text}"
        );
        assert!(text.contains(&format!("{name}_bucket{{")), "{name}: {text}");
        assert!(text.contains(&format!("{name}_count{{")), "{name}: {text}");
    }
    // histogram_quantile(0.99, sum by (lock, le) (rate(consul_lock_wait_seconds_bucket[5m])))
    assert!(
        text.contains(
            r#"consul_lock_wait_seconds_bucket{lock="reports/<id>",outcome="acquired",le="+Inf"} 1"#
        ),
        "{text}"
    );
}
