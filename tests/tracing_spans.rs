//! Every operation runs in its own span, made at submission with the op's
//! name, user_data and fd, with its result recorded at completion.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use common::*;
use kqring::ops::{Nop, Read};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Fields seen per span id.
type Seen = Arc<Mutex<HashMap<u64, HashMap<String, String>>>>;

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
        let mut map = HashMap::new();
        map.insert("name".to_string(), attrs.metadata().name().to_string());
        attrs.record(&mut Fields(&mut map));
        self.0.lock().unwrap().insert(id.into_u64(), map);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(map) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(map));
        }
    }
}

#[test]
fn each_op_has_a_span_with_its_result() {
    let seen: Seen = Arc::default();
    let subscriber = tracing_subscriber::registry()
        .with(Capture(Arc::clone(&seen)))
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    tracing::subscriber::set_global_default(subscriber).unwrap();

    each_mode(|ring| {
        seen.lock().unwrap().clear();
        submit_all(
            ring,
            [
                Nop::new().build().user_data(5),
                Read::new(-1, BytesMut::with_capacity(4))
                    .build()
                    .user_data(6),
            ],
        );
        wait_n(ring, 2);
        let spans: Vec<HashMap<String, String>> = seen.lock().unwrap().values().cloned().collect();
        let find = |ud: &str| {
            spans
                .iter()
                .find(|s| s.get("user_data").map(String::as_str) == Some(ud))
                .unwrap_or_else(|| panic!("no span for user_data {ud}: {spans:?}"))
                .clone()
        };
        let nop = find("5");
        assert_eq!(
            (
                nop["name"].as_str(),
                nop["op"].as_str(),
                nop["res"].as_str()
            ),
            ("op", "Nop", "0")
        );
        let read = find("6");
        assert_eq!((read["op"].as_str(), read["fd"].as_str()), ("Read", "-1"));
        assert_eq!(read["res"], (-libc::EBADF).to_string());
    });
}
