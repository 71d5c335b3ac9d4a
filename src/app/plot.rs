//! `path.svg`: the sparsity–accuracy frontier drawn with plotters' SVG backend. Live
//! neurons on x, validation and test error on y, each point labelled with its `cert`, the
//! recommended point ringed.

use super::path_report::PathPoint;
use crate::config::Task;
use crate::output::fmt_sig;
use crate::{Error, Result};
use plotters::prelude::*;

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot draw path.svg: {e}"))
}

/// The frontier as an SVG document.
pub fn frontier_svg(
    task: Task,
    points: &[PathPoint],
    recommended: Option<usize>,
    lambda_r: f64,
) -> Result<String> {
    let pts: Vec<(usize, &PathPoint)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.failed.is_none())
        .collect();
    let scale = |e: f64| match task {
        Task::Classification => 100.0 * e,
        Task::Regression => e,
    };
    let ys: Vec<f64> = pts
        .iter()
        .flat_map(|(_, p)| [p.val_error, p.test_error])
        .flatten()
        .map(scale)
        .filter(|v| v.is_finite())
        .collect();
    let ymax = ys.iter().copied().fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let xmax = pts
        .iter()
        .map(|(_, p)| p.live_total)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.08
        + 1.0;
    let ylabel = match task {
        Task::Classification => "error (%)",
        Task::Regression => "MSE",
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let caption = format!(
            "sparsity–accuracy frontier (refit at λ_r = {}; labels: cert)",
            fmt_sig(lambda_r, 3)
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..xmax, 0.0f64..ymax)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("live neurons (all hidden layers)")
            .y_desc(ylabel)
            .draw()
            .map_err(plot_err)?;
        let series = |f: fn(&PathPoint) -> Option<f64>| -> Vec<(f64, f64)> {
            let mut v: Vec<(f64, f64)> = pts
                .iter()
                .filter_map(|(_, p)| Some((p.live_total as f64, scale(f(p)?))))
                .filter(|(_, y)| y.is_finite())
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        let val = series(|p| p.val_error);
        let test = series(|p| p.test_error);
        for (data, colour, name) in [(&val, BLUE, "validation"), (&test, RED, "test")] {
            chart
                .draw_series(LineSeries::new(
                    data.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    data.iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
                )
                .map_err(plot_err)?;
        }
        chart
            .draw_series(pts.iter().filter_map(|(_, p)| {
                let y = scale(p.val_error?);
                let text = p.cert.map(|c| fmt_sig(c, 2)).unwrap_or_else(|| "-".into());
                Some(Text::new(
                    text,
                    (p.live_total as f64, y),
                    ("sans-serif", 12),
                ))
            }))
            .map_err(plot_err)?;
        if let Some(k) = recommended {
            if let Some(p) = points.get(k) {
                if let Some(v) = p.val_error {
                    chart
                        .draw_series(std::iter::once(Circle::new(
                            (p.live_total as f64, scale(v)),
                            10,
                            GREEN.stroke_width(3),
                        )))
                        .map_err(plot_err)?
                        .label("recommended")
                        .legend(|(x, y)| Circle::new((x + 9, y), 6, GREEN.stroke_width(3)));
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}
