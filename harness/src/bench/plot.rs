//! `swapfault bench --plot`: median replacement time per strategy and size,
//! as SVG.

use std::path::Path;

use plotters::prelude::*;

use super::BenchReport;
use crate::outcome::Property;

/// The properties named in the legend: what separates the strategies.
const GUARANTEES: [Property; 4] = [
    Property::Live,
    Property::Kill,
    Property::Power,
    Property::Meta,
];

/// Line colours, dark enough on white.
const COLORS: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 23, 23),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Draws `report` to `path`: one line per strategy, the sizes along the x
/// axis and the median time on a logarithmic y axis, each strategy labelled
/// with what its catalog scenario guarantees.
pub fn plot(report: &BenchReport, path: &Path) -> Result<(), String> {
    let mut strategies: Vec<&str> = Vec::new();
    for m in &report.results {
        if !strategies.contains(&m.strategy) {
            strategies.push(m.strategy);
        }
    }
    let mut sizes: Vec<u64> = report.results.iter().map(|m| m.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    // Sizes at even steps: they are what was asked, not a continuum.
    let x_of = |size: u64| sizes.iter().position(|s| *s == size).unwrap_or(0) as f64;
    let ms = |ns: u64| (ns as f64 / 1e6).max(1e-3);
    let (min_y, max_y) = bounds(report.results.iter().map(|m| ms(m.median.total_ns)));
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(draw)?;
    let caption = format!(
        "Replacement time by strategy and size ({} on {}, median of {} runs)",
        report.filesystem.kind, report.filesystem.device, report.runs
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            -0.5..sizes.len() as f64 - 0.5,
            (min_y / 2.0..max_y * 2.0).log_scale(),
        )
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("target size")
        .y_desc("median replacement time (ms, log scale)")
        .x_labels(sizes.len() * 2 + 1)
        .disable_x_mesh()
        .x_label_formatter(&|x| {
            let index = x.round();
            match sizes.get(index as usize) {
                Some(size) if (x - index).abs() < 1e-6 && index >= 0.0 => {
                    crate::size::size_text(*size)
                }
                _ => String::new(),
            }
        })
        .y_label_formatter(&|y| format!("{y:.3}"))
        .draw()
        .map_err(draw)?;
    for (index, strategy) in strategies.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points: Vec<(f64, f64)> = report
            .results
            .iter()
            .filter(|m| m.strategy == *strategy)
            .map(|m| (x_of(m.size), ms(m.median.total_ns)))
            .collect();
        let passes = report
            .results
            .iter()
            .find(|m| m.strategy == *strategy)
            .map(|m| {
                GUARANTEES
                    .iter()
                    .filter(|p| m.passes.contains(p))
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let label = match passes.as_slice() {
            [] => format!("{strategy} (passes none of live, kill, power, meta)"),
            passes => format!("{strategy} (passes {})", passes.join(", ")),
        };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(draw)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|point| Circle::new(point, 4, color.filled())),
            )
            .map_err(draw)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}

/// The least and greatest of `values` (1 and 1 for none).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo <= hi {
        (lo, hi)
    } else {
        (1.0, 1.0)
    }
}
