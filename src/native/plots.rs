//! Training curves from `metrics.jsonl` rows, drawn with plotters into `plots.png` and
//! `plots.svg`: reward, losses, KL, clip fractions, gradient norm and entropy against the step.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde_json::{Map, Value};

/// DejaVu Sans Mono (Bitstream Vera license, `www/fonts/DejaVu-LICENSE.txt`): plots get the same
/// letters on every machine, with no system fonts needed.
const FONT: &[u8] = include_bytes!("../../www/fonts/DejaVuSansMono.ttf");

/// The panels: a title and the metrics drawn in it.
pub const PANELS: [(&str, &[&str]); 9] = [
    ("reward", &["rollout/reward_mean", "rollout/correct_frac"]),
    ("policy and total loss", &["loss/total", "loss/policy"]),
    ("value loss", &["loss/value"]),
    ("KL to the reference (per sequence)", &["rollout/kl_mean"]),
    ("approx KL (old to new policy)", &["params/approx_kl"]),
    (
        "clip fractions",
        &["params/policy_clip_frac", "params/value_clip_frac"],
    ),
    ("gradient norm (before clipping)", &["params/grad_norm"]),
    ("entropy", &["loss/entropy"]),
    ("response length (tokens)", &["rollout/response_len_mean"]),
];

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled font does not load"));
    });
}

/// `(step, value)` points of one metric.
fn series(rows: &[Map<String, Value>], name: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|row| {
            let step = row.get("step")?.as_f64()?;
            let value = row.get(name)?.as_f64()?;
            value.is_finite().then_some((step, value))
        })
        .collect()
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, rows: &[Map<String, Value>]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("cannot draw the plots: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let last_step = rows
        .iter()
        .filter_map(|r| r.get("step")?.as_f64())
        .fold(1.0f64, f64::max);
    for (area, (title, names)) in root.split_evenly((3, 3)).into_iter().zip(PANELS) {
        let lines: Vec<(&str, Vec<(f64, f64)>)> =
            names.iter().map(|&n| (n, series(rows, n))).collect();
        let values = lines.iter().flat_map(|(_, s)| s.iter().map(|p| p.1));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (lo, hi) = if lo.is_finite() && hi > lo {
            let pad = (hi - lo) * 0.05;
            (lo - pad, hi + pad)
        } else if lo.is_finite() {
            (lo - 0.5, lo + 0.5)
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..last_step.max(1.0), lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (k, (name, points)) in lines.into_iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Write `dir/plots.png` and `dir/plots.svg` from the metrics rows.
pub fn write_plots(rows: &[Map<String, Value>], dir: &Path) -> Result<()> {
    register_font();
    let size = (1500, 1200);
    draw(
        SVGBackend::new(&dir.join("plots.svg"), size).into_drawing_area(),
        rows,
    )?;
    draw(
        BitMapBackend::new(&dir.join("plots.png"), size).into_drawing_area(),
        rows,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plots_are_written_with_every_panel() {
        let rows: Vec<Map<String, Value>> = (1..=5)
            .map(|s| {
                let Value::Object(row) = json!({"step": s, "rollout/reward_mean": 0.1 * s as f64,
                    "loss/total": 1.0 / s as f64, "params/grad_norm": f64::NAN})
                else {
                    unreachable!()
                };
                row
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("ppo-lens-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_plots(&rows, &dir).unwrap();
        let svg = std::fs::read_to_string(dir.join("plots.svg")).unwrap();
        for (title, _) in PANELS {
            assert!(svg.contains(title), "no panel {title}");
        }
        assert!(svg.contains("rollout/reward_mean"));
        // The series carry their points (the NaN row gives none), and the two with points are
        // drawn as lines of five points each.
        let reward = series(&rows, "rollout/reward_mean");
        assert_eq!(reward.len(), 5);
        assert!(
            reward
                .iter()
                .zip(1..)
                .all(|(&(x, y), s)| x == s as f64 && (y - 0.1 * s as f64).abs() < 1e-12)
        );
        assert!(series(&rows, "params/grad_norm").is_empty());
        let five_point_lines = svg
            .split("<polyline")
            .skip(1)
            .filter(|line| {
                let points = line.split("points=\"").nth(1).unwrap_or("");
                let points = &points[..points.find('"').unwrap_or(0)];
                points.split_whitespace().count() == 5
            })
            .count();
        assert_eq!(five_point_lines, 2, "{svg}");
        let png = std::fs::read(dir.join("plots.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
