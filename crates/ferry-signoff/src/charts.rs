//! The report's charts, drawn by `plotters` into SVG text that the HTML page inlines:
//! latency histograms per read, throughput over time, sync lag over time, rows per table.

use ferry_agentdb::harness::{Bucket, Latency, SecondPoint};
use plotters::prelude::*;

use crate::data::TableRows;
use crate::migration::LagPoint;

const W: u32 = 720;
const H: u32 = 300;
const PG: RGBColor = RGBColor(51, 103, 145);
const SQLITE: RGBColor = RGBColor(0, 150, 100);
const FILES: RGBColor = RGBColor(214, 120, 30);

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

/// A chart that has nothing to show: its frame and a sentence saying why.
fn empty(title: &str, why: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, 120)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(title.to_owned(), (10, 10), ("sans-serif", 16)))
            .map_err(err)?;
        root.draw(&Text::new(why.to_owned(), (10, 60), ("sans-serif", 13)))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn bucket_label(b: &Bucket) -> String {
    if b.le_ms.is_infinite() || b.le_ms > 1e300 {
        "more".to_owned()
    } else {
        format!("≤{}", b.le_ms)
    }
}

/// One read's latency histogram: the share of samples per bucket on each path, side by side.
pub fn latency_histogram(read: &str, series: &[(&str, &Latency)]) -> Result<String> {
    let title = format!("{read}: latency histogram (ms)");
    let Some((_, first)) = series.first() else {
        return empty(&title, "not measured");
    };
    // Only the buckets from the first to the last one any path used.
    let used = |i: usize| {
        series
            .iter()
            .any(|(_, l)| l.histogram.get(i).is_some_and(|b| b.count > 0))
    };
    let n = first.histogram.len();
    let lo = (0..n).find(|i| used(*i)).unwrap_or(0);
    let hi = (0..n)
        .rev()
        .find(|i| used(*i))
        .unwrap_or(n.saturating_sub(1));
    let labels: Vec<String> = first.histogram[lo..=hi].iter().map(bucket_label).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..labels.len() as f64 - 0.5, 0f64..100f64)
            .map_err(err)?;
        let l = labels.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(labels.len())
            // Bucket i is centred on x = i; only whole key points get its label.
            .x_label_formatter(&move |x| {
                if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
                    l.get(x.round() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("latency bucket, ms")
            .y_desc("% of samples")
            .draw()
            .map_err(err)?;
        let width = 0.8 / series.len() as f64;
        for (k, (name, lat)) in series.iter().enumerate() {
            let color = match *name {
                "PostgreSQL" => PG,
                "SQLite" => SQLITE,
                _ => FILES,
            };
            let total = lat.samples.max(1) as f64;
            let bars: Vec<Rectangle<(f64, f64)>> = lat.histogram[lo..=hi]
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let x0 = i as f64 - 0.4 + width * k as f64;
                    Rectangle::new(
                        [(x0, 0.0), (x0 + width, b.count as f64 * 100.0 / total)],
                        color.filled(),
                    )
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(format!("{name} (p95 {:.3} ms)", lat.p95_ms))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Operations (and errors) per second of the concurrency run.
pub fn throughput(series: &[SecondPoint]) -> Result<String> {
    let title = "throughput of the simulated agents (operations per second)";
    if series.is_empty() {
        return empty(title, "no concurrency run");
    }
    let max_t = series.iter().map(|p| p.t_s).max().unwrap_or(1) as f64;
    let max_y = series.iter().map(|p| p.ops).max().unwrap_or(1).max(1) as f64 * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_t, 0f64..max_y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("operations")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|p| (p.t_s as f64, p.ops as f64)),
                PG.stroke_width(2),
            ))
            .map_err(err)?
            .label("operations")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], PG));
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|p| (p.t_s as f64, p.errors as f64)),
                RED.stroke_width(2),
            ))
            .map_err(err)?
            .label("errors")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Changes behind over the sync's lifetime.
pub fn sync_lag(points: &[LagPoint]) -> Result<String> {
    let title = "sync lag over time (changes behind)";
    if points.is_empty() {
        return empty(
            title,
            "no lag series: phase 4's evidence was not given or holds none",
        );
    }
    let max_t = points.iter().map(|p| p.t).fold(0.0, f64::max).max(1.0);
    let max_y = points
        .iter()
        .map(|p| p.changes_behind)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_t, 0f64..max_y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the sync started")
            .y_desc("changes behind")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.t, p.changes_behind as f64)),
                FILES.stroke_width(2),
            ))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Rows per table in SQLite and PostgreSQL.
pub fn rows_per_table(tables: &[TableRows]) -> Result<String> {
    let title = "rows per table";
    if tables.is_empty() {
        return empty(title, "no table was compared");
    }
    let max_y = tables
        .iter()
        .map(|t| t.sqlite_rows.max(t.postgres_rows))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.15;
    let names: Vec<String> = tables.iter().map(|t| t.table.clone()).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H + 60)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(100)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..names.len() as f64, 0f64..max_y)
            .map_err(err)?;
        let n = names.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(names.len() * 2 + 1)
            .x_label_formatter(&move |x| {
                if (x - x.floor() - 0.5).abs() < 1e-6 {
                    n.get(x.floor() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .y_desc("rows")
            .draw()
            .map_err(err)?;
        for (k, (label, color)) in [("SQLite", SQLITE), ("PostgreSQL", PG)]
            .into_iter()
            .enumerate()
        {
            let bars: Vec<Rectangle<(f64, f64)>> = tables
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let v = if k == 0 {
                        t.sqlite_rows
                    } else {
                        t.postgres_rows
                    };
                    let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                    Rectangle::new([(x0, 0.0), (x0 + 0.4, v as f64)], color.filled())
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
