//! The benchmark program end to end, on tiny runs: it parses its
//! arguments, runs every system without a failed check, and writes the
//! JSON and SVG it promises.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kqring-bench"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the benchmark runs")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn row<'a>(v: &'a Value, workload: &str) -> Vec<&'a Value> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["workload"] == workload)
        .collect()
}

#[test]
fn nop_run_gives_json_with_every_key() {
    let v = json_of(&bench(&[
        "--workload",
        "nop",
        "--duration",
        "0.2",
        "--json",
    ]));
    for key in [
        "machine",
        "config",
        "columns",
        "unavailable",
        "rows",
        "latency",
        "errors",
        "wall_time_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(
        v["columns"],
        serde_json::json!([
            "kqring-poller",
            "kqring-inline",
            "io_uring",
            "tokio",
            "blocking"
        ])
    );
    for workload in ["nop-batched", "nop-rtt"] {
        let rows = row(&v, workload);
        assert_eq!(rows.len(), 1, "{workload}");
        let r = rows[0];
        for key in [
            "metric",
            "unit",
            "better",
            "values",
            "kqring_over_io_uring",
            "ratio_mode",
        ] {
            assert!(r.get(key).is_some(), "{workload} row lacks {key}");
        }
        assert!(r["values"]["kqring-poller"].as_f64().unwrap() > 0.0);
        assert!(r["values"]["kqring-inline"].as_f64().unwrap() > 0.0);
        assert_eq!(r["values"]["tokio"], "n/a");
        assert_eq!(r["values"]["blocking"], "n/a");
        // io_uring is a number, or unavailable with its reason given.
        let uring = &r["values"]["io_uring"];
        assert!(uring.is_f64() || v["unavailable"].get("io_uring").is_some());
    }
    assert!(v["span_cost"].is_null());
}

#[test]
fn round_trips_fill_latency_and_plot() {
    let dir = std::env::temp_dir().join(format!("kqring-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("lat.svg");
    let v = json_of(&bench(&[
        "--workload",
        "pipe,tcp",
        "--connections",
        "2",
        "--duration",
        "0.1",
        "--mode",
        "inline",
        "--rings",
        "2",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]));
    for key in ["pipe", "tcp-2"] {
        let set = &v["latency"][key]["systems"];
        assert!(
            set["kqring-inline"]["p50_ns"].as_u64().unwrap() > 0,
            "{key}: {set}"
        );
        assert!(set["tokio"]["count"].as_u64().unwrap() > 0, "{key}: {set}");
        assert!(
            set.get("kqring-poller").is_none(),
            "poller was not selected"
        );
    }
    let tcp = row(&v, "tcp");
    assert_eq!(tcp.len(), 4, "p50, p99, throughput and two-ring rows");
    let rings = &tcp[3];
    assert!(
        rings["metric"].as_str().unwrap().contains("2 rings"),
        "{rings}"
    );
    assert!(
        rings["values"]["kqring-inline"].as_f64().unwrap() > 0.0,
        "{rings}"
    );
    assert!(
        tcp.iter()
            .all(|r| r["values"]["kqring-poller"] == "not run")
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("kqring-inline"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tcp_echo_runs_on_registered_files_plain_descriptors_and_one_tokio_worker() {
    for (extra, says) in [
        (None, "fixed files"),
        (Some("--plain-fds"), "plain descriptors"),
    ] {
        let mut args = vec![
            "--workload",
            "tcp",
            "--connections",
            "3",
            "--duration",
            "0.1",
            "--rings",
            "2",
            "--json",
        ];
        args.extend(extra);
        // The second run also gives tokio one worker thread.
        if extra.is_some() {
            args.extend(["--tokio-workers", "1"]);
        }
        let v = json_of(&bench(&args));
        let tokio = v["config"]["tokio_settings"].as_str().unwrap();
        let workers = if extra.is_some() {
            "1 worker thread"
        } else {
            "per CPU"
        };
        assert!(tokio.contains(workers), "{tokio}");
        let how = v["config"]["tcp_descriptors"].as_str().unwrap();
        assert!(how.contains(says), "{how}");
        for r in row(&v, "tcp") {
            for col in ["kqring-poller", "kqring-inline", "io_uring", "tokio"] {
                let x = &r["values"][col];
                // io_uring may be unavailable on the machine; then it says so.
                if col == "io_uring" && x.is_string() {
                    continue;
                }
                assert!(x.as_f64().is_some_and(|x| x > 0.0), "{col}: {r}");
            }
        }
    }
}

#[test]
fn files_and_timers_check_out() {
    let out = bench(&[
        "--workload",
        "file",
        "timeouts",
        "--duration",
        "0.1",
        "--file-mib",
        "1",
        "--timers",
        "2000",
        "--mode",
        "poller",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("| workload"), "{table}");
    assert!(table.contains("2k timers"), "{table}");
    assert!(table.contains("4 KiB random read QD32"), "{table}");
    assert!(!table.contains("ERR"), "{table}");
}

#[test]
fn bad_arguments_are_refused() {
    let out = bench(&["--workload", "nothing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing"));
    let out = bench(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--workload",
        "--duration",
        "--connections",
        "--msg-size",
        "--mode",
        "--trace",
        "--json",
        "--plot",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
