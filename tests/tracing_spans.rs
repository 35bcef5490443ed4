//! Every operation runs in its own span, made at submission with the op's
//! name, user_data and fd, entered wherever it runs (the driver's thread
//! or a worker), with its result recorded at completion.

mod common;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::BytesMut;
use common::*;
use kqring::ops::{Nop, Read};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// What was seen of one span: its fields, and the names of the threads
/// that entered it.
#[derive(Debug, Clone, Default)]
struct SpanSeen {
    fields: HashMap<String, String>,
    entered_on: Vec<String>,
}

/// Spans seen, per span id.
type Seen = Arc<Mutex<HashMap<u64, SpanSeen>>>;

struct Capture(Seen);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut seen = SpanSeen::default();
        seen.fields
            .insert("name".to_string(), attrs.metadata().name().to_string());
        attrs.record(&mut Fields(&mut seen.fields));
        self.0.lock().unwrap().insert(id.into_u64(), seen);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
    fn on_enter(&self, id: &Id, _: Context<'_, S>) {
        if let Some(seen) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            let thread = std::thread::current();
            seen.entered_on
                .push(thread.name().unwrap_or("(unnamed)").to_string());
        }
    }
}

/// The spans seen so far, through one subscriber installed for the whole
/// test binary (span ids are unique across it).
fn seen() -> &'static Seen {
    static SEEN: OnceLock<Seen> = OnceLock::new();
    SEEN.get_or_init(|| {
        let seen: Seen = Arc::default();
        let subscriber = tracing_subscriber::registry()
            .with(Capture(Arc::clone(&seen)))
            .with(tracing_subscriber::filter::LevelFilter::TRACE);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        seen
    })
}

/// The one span of an op with this user_data (user_data values are
/// unique across the tests of this binary).
fn span_of(ud: u64) -> SpanSeen {
    let ud_text = ud.to_string();
    let spans: Vec<SpanSeen> = seen()
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.fields.get("user_data") == Some(&ud_text))
        .cloned()
        .collect();
    assert_eq!(spans.len(), 1, "spans of user_data {ud}: {spans:?}");
    spans.into_iter().next().unwrap()
}

/// Keeps the user_data of each mode's run apart.
fn mode_base(ring: &kqring::Ring) -> u64 {
    if ring.mode() == kqring::Mode::Inline {
        200
    } else {
        100
    }
}

#[test]
fn each_op_has_a_span_with_its_result() {
    seen();
    each_mode(|ring| {
        let base = mode_base(ring);
        submit_all(
            ring,
            [
                Nop::new().build().user_data(base + 5),
                Read::new(-1, BytesMut::with_capacity(4))
                    .build()
                    .user_data(base + 6),
            ],
        );
        wait_n(ring, 2);
        let nop = span_of(base + 5).fields;
        assert_eq!(
            (
                nop["name"].as_str(),
                nop["op"].as_str(),
                nop["res"].as_str()
            ),
            ("op", "Nop", "0")
        );
        let read = span_of(base + 6).fields;
        assert_eq!((read["op"].as_str(), read["fd"].as_str()), ("Read", "-1"));
        assert_eq!(read["res"], (-libc::EBADF).to_string());
    });
}

/// A regular-file read with `ASYNC` runs on a worker (a cached one without
/// it is read on the driver's thread, where the system can): its span is
/// entered there, and its result is recorded.
#[test]
fn an_op_on_a_worker_is_entered_there_and_records_its_result() {
    seen();
    let file = kqring_test_support::temp_file(b"file bytes").unwrap();
    each_mode(|ring| {
        let ud = mode_base(ring) + 1000;
        let offloaded = ring.stats().offloaded;
        let mut c = run1(
            ring,
            Read::new(file.as_raw_fd(), BytesMut::with_capacity(16))
                .offset(0)
                .build()
                .user_data(ud)
                .flags(kqring::SqeFlags::ASYNC),
        );
        assert_eq!((c.user_data(), c.result()), (ud, 10));
        assert_eq!(&take_mut(&mut c)[..], b"file bytes");
        assert_eq!(ring.stats().offloaded, offloaded + 1, "it ran on the pool");
        let span = span_of(ud);
        let fields = &span.fields;
        assert_eq!(
            (
                fields["op"].as_str(),
                fields["fd"].as_str(),
                fields["res"].as_str()
            ),
            ("Read", file.as_raw_fd().to_string().as_str(), "10")
        );
        assert!(
            span.entered_on
                .iter()
                .any(|t| t.starts_with("kqring-worker-")),
            "entered on {:?}",
            span.entered_on
        );
    });
}
