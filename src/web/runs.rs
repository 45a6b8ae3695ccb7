//! Earlier runs on the reward and KL charts: each reset keeps the run before it (the last
//! [`RUNS_KEPT`]), numbered, named by the member it trained, drawn dashed in its own colour, so
//! members trained from the same start and seed compare iteration by iteration.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::series::DashedLineSeries;

use super::state::{Point, Run};
use crate::palette::{RUN_COLOURS, rgb};

/// How many earlier runs the charts keep.
pub const RUNS_KEPT: usize = 4;

impl Run {
    pub fn colour(&self) -> RGBColor {
        let (r, g, b) =
            rgb(RUN_COLOURS[(self.number - 1) % RUN_COLOURS.len()]).unwrap_or((0, 0, 0));
        RGBColor(r, g, b)
    }

    /// `run 2 (RLOO)`.
    pub fn name(&self) -> String {
        let member = self.points.last().map_or("", |p| p.member.name());
        format!("run {} ({member})", self.number)
    }
}

/// The number the run under way will have when it is kept.
fn next_number(runs: &[Run]) -> usize {
    runs.last().map_or(1, |r| r.number + 1)
}

/// Keeps a finished run (nothing when it has no points), dropping the oldest beyond
/// [`RUNS_KEPT`].
pub fn keep(runs: &mut Vec<Run>, points: Vec<Point>) {
    if points.is_empty() {
        return;
    }
    let number = next_number(runs);
    runs.push(Run { number, points });
    if runs.len() > RUNS_KEPT {
        runs.remove(0);
    }
}

/// Whether chart `id` overlays the earlier runs.
pub fn overlays(id: &str) -> bool {
    matches!(id, "reward" | "kl")
}

/// Draws each run's `f` dashed with hollow rings (where two runs sampled the same rewards, same
/// seed and same start, the solid line shows through), every length times `k`.
pub fn draw_runs<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    runs: &[Run],
    f: fn(&Point) -> f64,
    k: f64,
) -> Option<()> {
    let px = |x: f64| (x * k).round() as i32;
    for run in runs {
        let data: Vec<(f64, f64)> = run
            .points
            .iter()
            .map(|p| (p.iteration as f64, f(p)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        let style = run.colour().stroke_width(px(2.0) as u32);
        chart
            .draw_series(DashedLineSeries::new(data.clone(), px(6.0), px(4.0), style))
            .ok()?;
        chart
            .draw_series(
                data.into_iter()
                    .map(|(x, y)| Circle::new((x, y), px(6.0) as u32, style)),
            )
            .ok()?;
    }
    Some(())
}
