//! The benchmark program end to end, on tiny runs: it parses its
//! arguments, runs every system without a failed check, and writes the
//! JSON and SVG it promises.

use std::process::{Command, Output};

use serde_json::Value;

/// Every column, as the JSON names them.
const COLUMNS: [&str; 12] = [
    "kqring-poller",
    "kqring-inline",
    "io_uring",
    "io_uring-sqpoll",
    "io_uring-defer",
    "tokio",
    "tokio-ct",
    "monoio",
    "compio",
    "blocking",
    "kqring-async-poller",
    "kqring-async",
];

/// The io_uring columns.
const IO_URING: [&str; 3] = ["io_uring", "io_uring-sqpoll", "io_uring-defer"];

/// Columns that may be unavailable here: io_uring (the kernel may refuse
/// it) and monoio (built for Linux and macOS only).
fn may_be_unavailable(v: &Value, col: &str) -> bool {
    v["unavailable"].get(col).is_some()
}

fn bench(args: &[&str]) -> Output {
    bench_with_log(args, None)
}

/// Runs the benchmark with `RUST_LOG` set to `log`, or unset.
fn bench_with_log(args: &[&str], log: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kqring-bench"));
    cmd.args(args);
    match log {
        Some(log) => cmd.env("RUST_LOG", log),
        None => cmd.env_remove("RUST_LOG"),
    };
    cmd.output().expect("the benchmark runs")
}

/// The first lines of a long output, for a failure message.
fn head(s: &str) -> String {
    s.lines().take(40).collect::<Vec<_>>().join("\n")
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
    assert_eq!(v["columns"], serde_json::json!(COLUMNS));
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
        for col in ["tokio", "tokio-ct", "monoio", "compio", "blocking"] {
            assert_eq!(r["values"][col], "n/a", "{col}");
        }
        // io_uring is a number, or unavailable with its reason given.
        for col in IO_URING {
            let uring = &r["values"][col];
            assert!(
                uring.is_f64() || v["unavailable"].get(col).is_some(),
                "{col}"
            );
        }
        // The ratio names the kqring mode and the io_uring variant.
        if r["kqring_over_io_uring"].is_f64() {
            assert!(
                IO_URING.contains(&r["ratio_io_uring"].as_str().unwrap()),
                "{r}"
            );
        }
        for col in ["kqring-poller", "kqring-inline"] {
            let cpu = &r["cpu_us_per_op"][col];
            assert!(cpu["total"].as_f64().unwrap() > 0.0, "{col}: {r}");
            let parts = cpu["user"].as_f64().unwrap() + cpu["system"].as_f64().unwrap();
            assert!(
                (parts - cpu["total"].as_f64().unwrap()).abs() < 1e-6,
                "{cpu}"
            );
        }
    }
    assert_eq!(row(&v, "spans").len(), 1, "the span-cost row");
}

#[test]
fn every_run_measures_spans_with_a_subscriber_on_and_off() {
    // No NOP workload asked for: the span row is there all the same.
    let v = json_of(&bench(&[
        "--workload",
        "pipe",
        "--duration",
        "0.05",
        "--json",
    ]));
    let rows = row(&v, "spans");
    assert_eq!(rows.len(), 1, "{v}");
    let r = rows[0];
    assert!(
        r["metric"].as_str().unwrap().contains("subscriber on"),
        "{r}"
    );
    for mode in ["kqring-poller", "kqring-inline"] {
        let on = r["values"][mode].as_f64().unwrap();
        let m = &v["span_cost"]["modes"][mode];
        assert!(on > 0.0, "{mode}: {r}");
        assert_eq!(m["on_ops_per_s"].as_f64(), Some(on), "{mode}: {m}");
        assert!(m["off_ops_per_s"].as_f64().unwrap() > 0.0, "{mode}: {m}");
        assert!(m["on_over_off"].as_f64().unwrap() > 0.0, "{mode}: {m}");
    }
    assert!(r["on_over_off"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["kqring_over_io_uring"].is_null(), "{r}");
    assert_eq!(r["values"]["io_uring"], "n/a");
    // The other workloads ran with no subscriber; the row's says it records
    // every span.
    assert_eq!(v["span_cost"]["throughout"], false);
    let subscriber = v["span_cost"]["subscriber"].as_str().unwrap();
    assert!(subscriber.contains("records every span"), "{subscriber}");
    assert_eq!(v["errors"], serde_json::json!([]));
}

#[test]
fn msg_size_sets_the_echoed_messages_and_is_recorded() {
    // Larger than the server ends' 4 KiB receive buffer: each echo takes
    // several receives, and every echoed byte is checked.
    let v = json_of(&bench(&[
        "--workload",
        "pipe,tcp",
        "--msg-size",
        "9000",
        "--system",
        "all",
        "--connections",
        "2",
        "--rings",
        "1",
        "--duration",
        "0.1",
        "--json",
    ]));
    assert_eq!(v["config"]["msg_size"], 9000);
    assert_eq!(v["errors"], serde_json::json!([]));
    for key in ["pipe", "tcp-2"] {
        let title = v["latency"][key]["title"].as_str().unwrap();
        assert!(title.contains("(9000 B)"), "{key}: {title}");
    }
    // Every column runs TCP echo; all but monoio pipe ping-pong.
    for (r, pipe) in (row(&v, "pipe").into_iter().map(|r| (r, true)))
        .chain(row(&v, "tcp").into_iter().map(|r| (r, false)))
    {
        for col in COLUMNS {
            let x = &r["values"][col];
            if may_be_unavailable(&v, col) {
                assert_eq!(x, "unavailable", "{col}: {r}");
                continue;
            }
            if pipe && col == "monoio" {
                assert_eq!(x, "n/a", "{col}: {r}");
                continue;
            }
            assert!(x.as_f64().is_some_and(|x| x > 0.0), "{col}: {r}");
        }
    }
}

#[test]
fn rust_log_prints_each_operations_span_with_its_timing() {
    let out = bench_with_log(
        &[
            "--workload",
            "nop-rtt",
            "--duration",
            "0.05",
            "--system",
            "kqring",
            "--mode",
            "inline",
        ],
        Some("kqring=trace"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{}", head(&stderr));
    // tracing-subscriber's fmt, with FmtSpan::CLOSE:
    // `TRACE op{op="Nop" user_data=3 fd=-1 fixed=false res=0}: kqring::driver: close time.busy=1.2µs time.idle=3.4µs`
    let spans: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("TRACE")
                && l.contains(r#"op{op="Nop""#)
                && l.contains("user_data=")
                && l.contains("res=0")
                && l.contains("close")
                && l.contains("time.busy=")
                && l.contains("time.idle=")
        })
        .collect();
    assert!(
        spans.len() > 10,
        "no span lines on stderr:\n{}",
        head(&stderr)
    );
    // The table says the subscriber was on for every figure.
    assert!(
        stdout.contains("spans on for every figure below"),
        "{stdout}"
    );
    assert!(stdout.contains("RUST_LOG=kqring=trace"), "{stdout}");
    assert!(
        stdout.contains("spans recorded (subscriber on)"),
        "{stdout}"
    );
}

#[test]
fn round_trips_fill_latency_and_plot() {
    let svg = kqring_test_support::ScratchPath::new("lat.svg").unwrap();
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
            "--system",
            "kqring,io-uring-plain,io-uring-defer,tokio-mt",
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
            for col in [
                "kqring-poller",
                "kqring-inline",
                "io_uring",
                "io_uring-defer",
                "tokio",
            ] {
                let x = &r["values"][col];
                // io_uring may be unavailable on the machine; then it says so.
                if may_be_unavailable(&v, col) {
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
        "--system",
        "--sweep-connections",
        "--spans-off-build",
        "--mode",
        "--trace",
        "--json",
        "--plot",
        "RUST_LOG",
        "progress line",
        "not a terminal",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn the_table_names_the_issues_columns() {
    let out = bench(&[
        "--workload",
        "nop-batched",
        "--duration",
        "0.05",
        "--mode",
        "inline",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let header = table
        .lines()
        .find(|l| l.starts_with("| workload"))
        .expect("a header line");
    for col in [
        "kqring-inline",
        "io_uring",
        "io_uring SQPOLL",
        "io_uring DEFER_TASKRUN",
        "tokio mt (",
        "tokio ct (",
        "monoio legacy (mio",
        "compio (poll driver)",
        "blocking syscalls",
        "kqring/io_uring best",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        table.contains("CPU per operation, µs (user + system"),
        "{table}"
    );
    let spans = table
        .lines()
        .find(|l| l.contains("spans recorded (subscriber on)"))
        .expect("the span row");
    assert!(spans.contains("on/off"), "{spans}");
    assert!(table.contains("records every span"), "{table}");
}

#[test]
fn peers_run_tcp_echo_with_cpu_figures_and_the_poll_driver_checked() {
    let v = json_of(&bench(&[
        "--workload",
        "tcp,timeouts",
        "--connections",
        "1,3",
        "--rings",
        "2",
        "--timers",
        "500",
        "--duration",
        "0.1",
        "--system",
        "tokio,monoio,compio",
        "--json",
    ]));
    assert_eq!(v["errors"], serde_json::json!([]));
    let notes = v["system_notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("driver_type() reports Poll")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("RLIMIT_NOFILE")),
        "{notes:?}"
    );
    let tcp = row(&v, "tcp");
    assert_eq!(tcp.len(), 5, "p50, p99, two counts, two threads");
    for r in tcp.iter().chain(&row(&v, "timeouts")) {
        for col in ["tokio", "tokio-ct", "monoio", "compio"] {
            if may_be_unavailable(&v, col) {
                continue;
            }
            assert!(
                r["values"][col].as_f64().is_some_and(|x| x > 0.0),
                "{col}: {r}"
            );
            if let Some(cpu) = r.get("cpu_us_per_op") {
                assert!(cpu[col]["total"].as_f64().unwrap() >= 0.0, "{col}: {r}");
            }
        }
        assert_eq!(r["values"]["kqring-inline"], "not run");
    }
    // Throughput rows carry CPU figures; the percentile rows share theirs.
    let with_cpu = tcp.iter().filter(|r| r.get("cpu_us_per_op").is_some());
    assert_eq!(with_cpu.count(), 3, "{tcp:?}");
}

#[test]
fn io_uring_variants_are_set_up_and_named_in_the_ratio() {
    let v = json_of(&bench(&[
        "--workload",
        "nop,file,tcp",
        "--connections",
        "2",
        "--rings",
        "1",
        "--file-mib",
        "1",
        "--duration",
        "0.05",
        "--system",
        "kqring,io-uring",
        "--msg-size",
        "9000",
        "--json",
    ]));
    assert_eq!(v["errors"], serde_json::json!([]));
    if may_be_unavailable(&v, "io_uring-sqpoll") {
        return;
    }
    let notes: Vec<&str> = v["system_notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("SQPOLL: set up by the kernel") && n.contains("counted")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("DEFER_TASKRUN")),
        "{notes:?}"
    );
    for r in v["rows"].as_array().unwrap() {
        if r["workload"] == "spans" {
            continue;
        }
        for col in IO_URING {
            assert!(
                r["values"][col].as_f64().is_some_and(|x| x > 0.0),
                "{col}: {r}"
            );
        }
        let best = r["ratio_io_uring"].as_str().unwrap();
        assert!(IO_URING.contains(&best), "{r}");
        // The ratio divides by the best io_uring figure of the row.
        let better_is_higher = r["better"] == "higher";
        let base = r["values"][best].as_f64().unwrap();
        for col in IO_URING {
            let x = r["values"][col].as_f64().unwrap();
            assert!(
                if better_is_higher {
                    x <= base
                } else {
                    x >= base
                },
                "{r}"
            );
        }
    }
}

#[test]
fn sweep_runs_kqring_io_uring_and_tokio_and_plots_against_connections() {
    let dir = std::env::temp_dir().join(format!("kqring-bench-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("sweep.svg");
    let v = json_of(&bench(&[
        "--workload",
        "sweep",
        "--sweep-connections",
        "1,4",
        "--duration",
        "0.05",
        "--mode",
        "inline",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]));
    assert_eq!(v["errors"], serde_json::json!([]));
    let rows = row(&v, "sweep");
    assert_eq!(rows.len(), 2);
    for (r, n) in rows.iter().zip([1, 4]) {
        assert_eq!(r["connections"], n, "{r}");
        for col in ["kqring-inline", "io_uring", "tokio", "tokio-ct"] {
            if may_be_unavailable(&v, col) {
                continue;
            }
            assert!(
                r["values"][col].as_f64().is_some_and(|x| x > 0.0),
                "{col}: {r}"
            );
            assert!(
                r["cpu_us_per_op"][col]["total"].as_f64().is_some(),
                "{col}: {r}"
            );
        }
        for col in ["monoio", "compio", "blocking"] {
            assert_eq!(r["values"][col], "n/a", "{col}: {r}");
        }
    }
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.contains("throughput against connections"), "{drawn}");
    assert!(drawn.contains("CPU per message against connections"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spans_off_build_must_be_a_build_with_spans_compiled_out() {
    // This test binary's own build keeps its spans: the comparison refuses
    // it, fails the run and says why in the row.
    let me = env!("CARGO_BIN_EXE_kqring-bench");
    let out = bench(&[
        "--workload",
        "nop-rtt",
        "--duration",
        "0.05",
        "--system",
        "kqring",
        "--mode",
        "inline",
        "--spans-off-build",
        me,
        "--json",
    ]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["config"]["spans_compiled_out"], false);
    let rows = row(&v, "spans-compiled-out");
    assert_eq!(rows.len(), 1, "{v}");
    let cell = rows[0]["values"]["kqring-inline"].as_str().unwrap();
    assert!(
        cell.contains("not a build with spans compiled out"),
        "{cell}"
    );
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("spans compiled out"),
        "{v}"
    );
}

#[test]
fn a_sweep_count_the_descriptor_limit_cannot_hold_runs_as_the_most_it_can() {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kqring-bench"));
    cmd.env_remove("RUST_LOG").args([
        "--workload",
        "sweep",
        "--sweep-connections",
        "1000",
        "--duration",
        "0.05",
        "--system",
        "kqring",
        "--mode",
        "inline",
        "--no-span-cost",
        "--json",
    ]);
    // SAFETY: setrlimit is async-signal-safe and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 200,
                rlim_max: 200,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let v = json_of(&cmd.output().expect("the benchmark runs"));
    let notes = v["system_notes"].to_string();
    assert!(notes.contains("RLIMIT_NOFILE): 200"), "{notes}");
    let rows = row(&v, "sweep");
    assert_eq!(rows.len(), 1);
    // (200 - 64 spare) / 2 descriptors per connection.
    assert_eq!(rows[0]["connections"], 68, "{}", rows[0]);
    let label = rows[0]["metric"].as_str().unwrap();
    assert!(label.contains("68 conn (1k asked)"), "{label}");
    assert!(rows[0]["values"]["kqring-inline"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_sequential_copy_runs_and_is_checked_on_every_system_that_has_it() {
    // A copy that is not the source byte for byte fails its cell (ERR,
    // and an entry in `errors`).
    let v = json_of(&bench(&[
        "--workload",
        "copy",
        "--duration",
        "0.1",
        "--no-span-cost",
        "--system",
        "all",
        "--json",
    ]));
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    let rows = row(&v, "copy");
    assert_eq!(rows.len(), 1, "{v}");
    let r = rows[0];
    assert!(
        r["metric"]
            .as_str()
            .unwrap()
            .contains("64 MiB sequential copy"),
        "{r}"
    );
    for col in [
        "kqring-poller",
        "kqring-inline",
        "tokio",
        "tokio-ct",
        "blocking",
    ] {
        assert!(r["values"][col].as_f64().unwrap() > 0.0, "{col}: {r}");
    }
    for col in IO_URING {
        let uring = &r["values"][col];
        assert!(
            uring.as_f64().is_some_and(|x| x > 0.0) || may_be_unavailable(&v, col),
            "{col}: {r}"
        );
    }
    for col in ["monoio", "compio", "kqring-async-poller", "kqring-async"] {
        assert_eq!(r["values"][col], "n/a", "{col}");
    }
}
