//! One trace per flow: a licence read, from the licence service's gRPC call through every
//! validator's mempool and the block's commit to the ledger, the token service's payment and
//! the licence service's key release, with every span exported to an in-memory exporter.
//! The services run in this process against a real nats-server, so the spans of all of them
//! land in one exporter and are told apart by their `service` attribute.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use citychain_governance::Action;
use citychain_kernel::MemberId;
use citychain_proto::citychain::ledger::v1 as pb;
use citychain_proto::citychain::licence::v1::read_state::State;
use citychain_scenarios::citychain_binary;
use citychain_scenarios::platform::{FILING, FILING_PAYLOAD, Platform, WAIT};
use citychain_telemetry::{TelemetryBuilder, TelemetryConfig};
use opentelemetry::trace::TraceId;
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

/// A span's string (or displayed) attribute.
fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| match &kv.value {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        })
}

/// The spans the exporter holds once `wanted` has ended (within 20 s).
fn spans_after(
    exporter: &InMemorySpanExporter,
    wanted: impl Fn(&SpanData) -> bool,
) -> Vec<SpanData> {
    for _ in 0..200 {
        let spans = exporter.get_finished_spans().expect("the exporter answers");
        if spans.iter().any(&wanted) {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the awaited span never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_licence_read_is_one_trace_across_licence_consensus_ledger_and_tokens() {
    let exporter = InMemorySpanExporter::default();
    let _telemetry = TelemetryBuilder::new(TelemetryConfig::new("scenario").with_filter("info"))
        .with_span_exporter(exporter.clone())
        .install()
        .expect("telemetry installs once in this process");

    let mut p = Platform::start().await;
    let record = p.upload("dept.housing", 1, FILING, FILING_PAYLOAD).await;
    let grant = Action::GrantTokens {
        member: MemberId::new("dept.tax").unwrap(),
        amount: 10,
    };
    p.net.pass(&mut p.ledger, "grant-tax", &grant).await;
    p.wait_balance("dept.tax", 10).await;
    let read = p.read("dept.tax", 1, record).await;
    let state = p.licence.wait_read(&read, WAIT).await.unwrap();
    assert_eq!(state.state, State::Released as i32, "{state:?}");

    let spans = spans_after(&exporter, |s| {
        s.name == "licence.release" && attr(s, "read.id").as_deref() == Some(read.as_str())
    });
    let submit = spans
        .iter()
        .find(|s| s.name == "licence.SubmitRead")
        .expect("the licence service's server span of the read");
    assert_eq!(attr(submit, "tx.id").as_deref(), Some(read.as_str()));
    assert_eq!(attr(submit, "service").as_deref(), Some("licence"));
    let trace = submit.span_context.trace_id();
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let by_id: BTreeMap<[u8; 8], &SpanData> = in_trace
        .iter()
        .map(|s| (s.span_context.span_id().to_bytes(), *s))
        .collect();
    let named = |name: &str| -> Vec<&SpanData> {
        in_trace
            .iter()
            .copied()
            .filter(|s| s.name == name)
            .collect()
    };
    let parent_name = |span: &SpanData| {
        by_id
            .get(&span.parent_span_id.to_bytes())
            .map(|p| p.name.to_string())
            .unwrap_or_else(|| format!("<{} not in the trace>", span.parent_span_id))
    };

    // Four services take part in the one trace.
    let services: BTreeSet<String> = in_trace.iter().filter_map(|s| attr(s, "service")).collect();
    for service in ["licence", "consensus", "ledger", "tokens"] {
        assert!(
            services.contains(service),
            "{service} missing from {services:?}"
        );
    }

    // Every validator ordered the read in a span that is the submit call's child, names the
    // transaction, and links to the block's span (another trace: a block carries many).
    let ordered = named("consensus.tx");
    assert_eq!(ordered.len(), 4, "one span per validator");
    let decides: BTreeMap<[u8; 8], &SpanData> = spans
        .iter()
        .filter(|s| s.name == "consensus.decide")
        .map(|s| (s.span_context.span_id().to_bytes(), s))
        .collect();
    for span in &ordered {
        assert_eq!(parent_name(span), "licence.SubmitRead");
        assert_eq!(attr(span, "tx.id").as_deref(), Some(read.as_str()));
        assert_eq!(attr(span, "height"), Some(state.height.to_string()));
        let links = &span.links.links;
        assert_eq!(links.len(), 1, "linked to its block: {links:?}");
        let block = decides
            .get(&links[0].span_context.span_id().to_bytes())
            .expect("the link leads to a consensus.decide span");
        assert_eq!(attr(block, "height"), Some(state.height.to_string()));
        assert!(
            block
                .links
                .links
                .iter()
                .any(|l| l.span_context.span_id() == span.span_context.span_id()),
            "the block's span links back to the transaction's"
        );
    }

    // Each service applied the block in a span that continues the trace from consensus.
    for service in ["ledger", "tokens", "licence"] {
        let applied = named(&format!("{service}.apply"));
        assert_eq!(applied.len(), 1, "{service}.apply");
        assert_eq!(parent_name(applied[0]), "consensus.tx");
        assert_eq!(attr(applied[0], "tx.id").as_deref(), Some(read.as_str()));
    }
    // The payment travels on EVENTS within the trace, and the release follows the read.
    let published = named("tokens.publish");
    assert!(
        !published.is_empty(),
        "the ReadPaid event is published in the trace"
    );
    assert!(published.iter().all(|s| parent_name(s) == "tokens.apply"));
    let paid = named("licence.payment");
    assert_eq!(paid.len(), 1);
    assert_eq!(parent_name(paid[0]), "tokens.publish");
    assert_eq!(attr(paid[0], "read.id").as_deref(), Some(read.as_str()));
    let released = named("licence.release");
    assert_eq!(released.len(), 1);
    assert_eq!(parent_name(released[0]), "licence.apply");

    // The ledger keeps the trace id, and `citychain tx trace` prints it.
    let found = p
        .ledger
        .grpc()
        .get_transaction(pb::GetTransactionRequest { id: read.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.trace_id, trace.to_string());
    let out = Command::new(citychain_binary())
        .args(["tx", "trace", &read, "--ledger"])
        .arg(format!("http://{}", p.net.ledger_addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(TraceId::from_hex(&printed).unwrap(), trace);
}
