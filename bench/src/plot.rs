//! An SVG chart of latency distributions: one panel per workload, latency
//! (log scale) against percentile (log scale towards the tail, as
//! percentile plots of latency usually are), one line per system; and,
//! after a connection sweep, throughput and CPU per message against the
//! connection count (both axes log scale).

use std::fmt::Write as _;

use crate::report::{Cell, LatencySet, Report, Row};

const PANEL_W: f64 = 740.0;
const PANEL_H: f64 = 380.0;
const LEFT: f64 = 70.0;
/// Room right of the plot for the legend.
const RIGHT: f64 = 230.0;
/// Panels per row.
const PER_ROW: usize = 2;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// The deepest percentile drawn: 99.99 %.
const MAX_NINES: f64 = 4.0;

fn color(system: &str) -> &'static str {
    match system {
        "kqring-poller" => "#1f77b4",
        "kqring-inline" => "#17becf",
        "io_uring" => "#d62728",
        "io_uring-sqpoll" => "#ff7f0e",
        "io_uring-defer" => "#8c564b",
        "tokio" => "#2ca02c",
        "tokio-ct" => "#bcbd22",
        "monoio" => "#9467bd",
        "compio" => "#e377c2",
        "blocking" => "#7f7f7f",
        _ => "#000000",
    }
}

/// One line of an x–y panel: a system's points.
struct Line {
    system: &'static str,
    points: Vec<(f64, f64)>,
}

/// An x–y panel, both axes log scale.
struct XyPanel {
    title: String,
    x_label: &'static str,
    y_label: &'static str,
    lines: Vec<Line>,
}

/// The sweep's two panels: throughput and CPU per message against
/// connections, one line per system that ran.
fn sweep_panels(rows: &[Row]) -> Vec<XyPanel> {
    let sweep: Vec<&Row> = rows.iter().filter(|r| r.connections.is_some()).collect();
    if sweep.is_empty() {
        return Vec::new();
    }
    let columns = crate::report::COLUMNS;
    let line = |col: usize, figure: &dyn Fn(&Row) -> Option<f64>| Line {
        system: columns[col],
        points: sweep
            .iter()
            .filter_map(|r| Some((r.connections? as f64, figure(r)?)))
            .collect(),
    };
    let lines = |figure: &dyn Fn(usize, &Row) -> Option<f64>| -> Vec<Line> {
        (0..columns.len())
            .map(|c| line(c, &|r| figure(c, r)))
            .filter(|l| !l.points.is_empty())
            .collect()
    };
    let throughput = lines(&|c, r| match r.cells[c] {
        Cell::Value(v) if v > 0.0 => Some(v / 1e3),
        _ => None,
    });
    let cpu = lines(&|c, r| {
        matches!(r.cells[c], Cell::Value(_))
            .then(|| r.cpu.get(c).copied().flatten())
            .flatten()
            .map(|t| t.total().as_secs_f64() * 1e6)
            .filter(|&us| us > 0.0)
    });
    vec![
        XyPanel {
            title: "TCP echo throughput against connections".into(),
            x_label: "connections (log scale)",
            y_label: "k msg/s (log scale)",
            lines: throughput,
        },
        XyPanel {
            title: "TCP echo CPU per message against connections".into(),
            x_label: "connections (log scale)",
            y_label: "µs CPU per msg, user + system (log scale)",
            lines: cpu,
        },
    ]
}

/// Renders the report's latency distributions and, if it has a sweep, the
/// sweep's panels, as one SVG document.
pub fn report_svg(report: &Report) -> String {
    render(&report.latency, &sweep_panels(&report.rows))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The x position of quantile `q`: the count of nines, log10(1 / (1 − q)).
fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// Renders `sets` (those with samples) as one SVG document.
pub fn svg(sets: &[LatencySet]) -> String {
    render(sets, &[])
}

fn render(sets: &[LatencySet], xy: &[XyPanel]) -> String {
    let sets: Vec<&LatencySet> = sets
        .iter()
        .filter(|s| s.series.iter().any(|(_, x)| !x.is_empty()))
        .collect();
    let panels = (sets.len() + xy.len()).max(1);
    let width = PANEL_W * panels.min(PER_ROW) as f64;
    let height = PANEL_H * panels.div_ceil(PER_ROW) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    if sets.is_empty() && xy.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">no latency samples: run the pipe or tcp workload</text>"#,
            width / 2.0,
            height / 2.0
        );
    }
    for (i, set) in sets.iter().enumerate() {
        let x0 = PANEL_W * (i % PER_ROW) as f64;
        let y0 = PANEL_H * (i / PER_ROW) as f64;
        let _ = writeln!(out, r#"<g transform="translate(0,{y0})">"#);
        panel(&mut out, set, x0);
        out.push_str("</g>\n");
    }
    for (j, p) in xy.iter().enumerate() {
        let i = sets.len() + j;
        let x0 = PANEL_W * (i % PER_ROW) as f64;
        let y0 = PANEL_H * (i / PER_ROW) as f64;
        let _ = writeln!(out, r#"<g transform="translate(0,{y0})">"#);
        xy_panel(&mut out, p, x0);
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

/// Whole decades around `lo..=hi` (positive values), as log10 bounds.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let a = lo.max(1e-9).log10().floor();
    let b = hi.max(1e-9).log10().ceil().max(a + 1.0);
    (a, b)
}

fn xy_panel(out: &mut String, p: &XyPanel, x0: f64) {
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0));
    let ys = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.1));
    let (x_lo, x_hi) = decades(xs.clone().fold(f64::MAX, f64::min), xs.fold(1.0, f64::max));
    let (y_lo, y_hi) = decades(ys.clone().fold(f64::MAX, f64::min), ys.fold(1e-9, f64::max));
    let plot_w = PANEL_W - LEFT - RIGHT;
    let plot_h = PANEL_H - TOP - BOTTOM;
    let px = |x: f64| x0 + LEFT + (x.max(1e-9).log10() - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| TOP + plot_h - (y.max(1e-9).log10() - y_lo) / (y_hi - y_lo) * plot_h;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        x0 + LEFT + plot_w / 2.0,
        escape(&p.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##,
        x0 + LEFT
    );
    let mut d = y_lo;
    while d <= y_hi + 1e-9 {
        let v = 10f64.powf(d);
        let y = py(v);
        let _ = writeln!(
            out,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ccc"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + LEFT,
            x0 + LEFT + plot_w,
            x0 + LEFT - 6.0,
            y + 4.0,
            tick(v)
        );
        d += 1.0;
    }
    let mut d = x_lo;
    while d <= x_hi + 1e-9 {
        let v = 10f64.powf(d);
        let x = px(v);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            tick(v)
        );
        d += 1.0;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + LEFT + plot_w / 2.0,
        PANEL_H - 18.0,
        escape(p.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 + 18.0,
        TOP + plot_h / 2.0,
        escape(p.y_label)
    );
    for (k, l) in p.lines.iter().enumerate() {
        let mut d = String::new();
        for (i, &(x, y)) in l.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                px(x),
                py(y)
            );
        }
        let c = color(l.system);
        let _ = writeln!(
            out,
            r#"<path d="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
            d.trim_end()
        );
        for &(x, y) in &l.points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                px(x),
                py(y)
            );
        }
        let y = TOP + 10.0 + 18.0 * k as f64;
        let x = x0 + LEFT + plot_w + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            x + 20.0,
            x + 26.0,
            y + 4.0,
            escape(l.system)
        );
    }
}

/// An axis label for a power of ten.
fn tick(v: f64) -> String {
    if (1000.0..1e6).contains(&v) {
        format!("{}k", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn panel(out: &mut String, set: &LatencySet, x0: f64) {
    let series: Vec<_> = set.series.iter().filter(|(_, s)| !s.is_empty()).collect();
    // Each line ends where its samples stop saying anything.
    let depth = |n: usize| (n as f64).log10().min(MAX_NINES);
    let x_max = series
        .iter()
        .map(|(_, s)| depth(s.len()))
        .fold(1.0f64, f64::max)
        .ceil();
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for (_, s) in &series {
        let end = 1.0 - 10f64.powf(-depth(s.len()));
        lo = lo.min(s.quantile(0.0).unwrap_or(1) as f64);
        hi = hi.max(s.quantile(end).unwrap_or(1) as f64);
    }
    // Latency in µs, whole decades on the axis.
    let y_lo = (lo / 1e3).max(1e-3).log10().floor();
    let y_hi = (hi / 1e3).max(1e-3).log10().ceil().max(y_lo + 1.0);
    let plot_w = PANEL_W - LEFT - RIGHT;
    let plot_h = PANEL_H - TOP - BOTTOM;
    let px = |n: f64| x0 + LEFT + n / x_max * plot_w;
    let py = |ns: f64| {
        let v = (ns.max(1.0) / 1e3).log10();
        TOP + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h
    };
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        x0 + LEFT + plot_w / 2.0,
        escape(&set.title)
    );
    // Axes and grid.
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##,
        x0 + LEFT
    );
    let mut decade = y_lo;
    while decade <= y_hi {
        for m in [1.0, 2.0, 5.0] {
            let us = m * 10f64.powf(decade);
            let v = us.log10();
            if v > y_hi + 1e-9 {
                break;
            }
            let y = py(us * 1e3);
            let stroke = if m == 1.0 { "#ccc" } else { "#eee" };
            let _ = writeln!(
                out,
                r#"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{stroke}"/>"#,
                x0 + LEFT,
                x0 + LEFT + plot_w
            );
            let label = if us >= 1.0 {
                format!("{us:.0}")
            } else {
                format!("{us}")
            };
            let _ = writeln!(
                out,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
                x0 + LEFT - 6.0,
                y + 4.0
            );
        }
        decade += 1.0;
    }
    let ticks = [
        (0.0, "0"),
        (nines(0.5), "50"),
        (1.0, "90"),
        (2.0, "99"),
        (3.0, "99.9"),
        (4.0, "99.99"),
    ];
    for (n, label) in ticks.into_iter().filter(|(n, _)| *n <= x_max) {
        let x = px(n);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile (%)</text>"#,
        x0 + LEFT + plot_w / 2.0,
        PANEL_H - 18.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">round trip (µs, log scale)</text>"#,
        x0 + 18.0,
        TOP + plot_h / 2.0
    );
    // One line per system.
    for (system, s) in &series {
        let end = depth(s.len());
        let mut d = String::new();
        let steps = (end * 50.0).ceil() as usize;
        for k in 0..=steps {
            let n = (k as f64 / 50.0).min(end);
            let q = 1.0 - 10f64.powf(-n);
            let v = s.quantile(q).unwrap_or(0) as f64;
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if k == 0 { "M" } else { "L" },
                px(n),
                py(v)
            );
        }
        let _ = writeln!(
            out,
            r#"<path d="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            d.trim_end(),
            color(system)
        );
    }
    // Legend, right of the plot, with each system's median.
    for (k, (system, s)) in series.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * k as f64;
        let x = x0 + LEFT + plot_w + 14.0;
        let us = s.quantile(0.5).unwrap_or(0) as f64 / 1e3;
        let p50 = if us >= 100.0 {
            format!("{us:.0}")
        } else {
            format!("{us:.1}")
        };
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{} (p50 {p50} µs)</text>"#,
            x + 20.0,
            color(system),
            x + 26.0,
            y + 4.0,
            escape(system)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Samples;

    #[test]
    fn draws_one_path_per_system() {
        let set = LatencySet {
            key: "pipe".into(),
            title: "pipe ping-pong <round trip>".into(),
            series: vec![
                (
                    "io_uring",
                    Samples::new((1..=5000).map(|v| v * 10).collect()),
                ),
                ("tokio", Samples::new((1..=100).map(|v| v * 1000).collect())),
                ("blocking", Samples::default()),
            ],
        };
        let svg = svg(&[set]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("&lt;round trip&gt;"));
        assert!(svg.contains("percentile"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn sweep_draws_throughput_and_cpu_against_connections() {
        use crate::report::Better;
        use crate::stats::CpuTime;
        use std::time::Duration;
        let n = crate::report::COLUMNS.len();
        let rows: Vec<Row> = [1usize, 16, 1000]
            .iter()
            .map(|&c| {
                let mut cells = vec![Cell::NotRun; n];
                cells[0] = Cell::Value(50_000.0 * c as f64);
                cells[5] = Cell::Value(40_000.0);
                let mut cpu = vec![None; n];
                cpu[0] = Some(CpuTime {
                    user: Duration::from_micros(2),
                    system: Duration::from_micros(3),
                });
                Row {
                    workload: "sweep",
                    label: format!("sweep {c}"),
                    unit: "msg/s",
                    scale: 1e-3,
                    better: Better::Higher,
                    cells,
                    cpu,
                    cpu_label: Some(String::new()),
                    connections: Some(c),
                }
            })
            .collect();
        let panels = sweep_panels(&rows);
        assert_eq!(panels.len(), 2);
        assert_eq!(panels[0].lines.len(), 2, "kqring-poller and tokio");
        assert_eq!(
            panels[1].lines.len(),
            1,
            "only kqring-poller has CPU figures"
        );
        let svg = render(&[], &panels);
        assert!(svg.contains("against connections") && svg.contains("1k"));
        assert_eq!(svg.matches("<path").count(), 3);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn empty_chart_says_so() {
        assert!(svg(&[]).contains("no latency samples"));
    }
}
