//! Live charts across iterations, drawn with plotters on canvases.

use leptos::prelude::*;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;

use super::state::{AppState, Point};

/// One chart: a title and the series it draws from each point.
struct ChartSpec {
    id: &'static str,
    title: &'static str,
    series: &'static [(&'static str, fn(&Point) -> f64, RGBColor)],
}

const INK: RGBColor = RGBColor(29, 53, 87);
const ORANGE: RGBColor = RGBColor(231, 111, 81);

const CHARTS: &[ChartSpec] = &[
    ChartSpec {
        id: "reward",
        title: "reward mean",
        series: &[("reward", |p| p.reward_mean, INK)],
    },
    ChartSpec {
        id: "kl",
        title: "KL to reference (per sequence)",
        series: &[("KL", |p| p.kl_mean, INK)],
    },
    ChartSpec {
        id: "clip",
        title: "clip fractions",
        series: &[
            ("policy", |p| p.policy_clip_frac, INK),
            ("value", |p| p.value_clip_frac, ORANGE),
        ],
    },
    ChartSpec {
        id: "value-loss",
        title: "value loss",
        series: &[("value loss", |p| p.loss_value, INK)],
    },
    ChartSpec {
        id: "entropy",
        title: "entropy",
        series: &[("entropy", |p| p.entropy, INK)],
    },
];

fn draw(canvas: web_sys::HtmlCanvasElement, spec: &ChartSpec, points: &[Point]) -> Option<()> {
    let backend = CanvasBackend::with_canvas_object(canvas)?;
    let root = backend.into_drawing_area();
    root.fill(&WHITE).ok()?;
    let xs = points.iter().map(|p| p.iteration as f64);
    let (x0, x1) = (
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    let (x0, x1) = if points.is_empty() {
        (0.0, 1.0)
    } else if x1 - x0 < 1.0 {
        (x0 - 0.5, x1 + 0.5)
    } else {
        (x0, x1)
    };
    let ys = points
        .iter()
        .flat_map(|p| spec.series.iter().map(move |(_, f, _)| f(p)))
        .filter(|y| y.is_finite());
    let (y0, y1) = ys
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
    let (y0, y1) = if !y0.is_finite() {
        (0.0, 1.0)
    } else if y1 - y0 < 1e-6 {
        (y0 - 0.5, y1 + 0.5)
    } else {
        let pad = (y1 - y0) * 0.08;
        (y0 - pad, y1 + pad)
    };
    // Enough decimals that neighbouring labels differ.
    let decimals = (-((y1 - y0) / 5.0).log10().floor()).clamp(2.0, 5.0) as usize;
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 18).into_font().color(&INK))
        .margin(8)
        .x_label_area_size(26)
        .y_label_area_size(48)
        .build_cartesian_2d(x0..x1, y0..y1)
        .ok()?;
    chart
        .configure_mesh()
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .light_line_style(RGBColor(235, 238, 242))
        .label_style(("sans-serif", 13))
        .draw()
        .ok()?;
    for (name, f, color) in spec.series {
        let data: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.iteration as f64, f(p)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
            .ok()?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                data.into_iter()
                    .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
            )
            .ok()?;
    }
    if spec.series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 13))
            .draw()
            .ok()?;
    }
    root.present().ok()
}

#[component]
pub fn Charts(state: AppState) -> impl IntoView {
    let charts = CHARTS
        .iter()
        .map(|spec| {
            let node = NodeRef::<leptos::html::Canvas>::new();
            Effect::new(move |_| {
                let points = state.history.get();
                if let Some(canvas) = node.get() {
                    draw(canvas, spec, &points);
                }
            });
            let last = move || {
                state
                    .history
                    .get()
                    .last()
                    .map(|p| {
                        spec.series
                            .iter()
                            .map(|(name, f, _)| format!("{name} {:.3}", f(p)))
                            .collect::<Vec<_>>()
                            .join(" · ")
                    })
                    .unwrap_or_default()
            };
            view! {
                <figure class="chart">
                    <canvas node_ref=node width="340" height="220" data-testid=format!("chart-{}", spec.id)></canvas>
                    <figcaption data-testid=format!("chart-{}-last", spec.id)>{last}</figcaption>
                </figure>
            }
        })
        .collect_view();
    let rewards = move || {
        state
            .history
            .get()
            .iter()
            .map(|p| format!("{:?}", p.reward_mean))
            .collect::<Vec<_>>()
            .join(",")
    };
    view! {
        <section class="card" data-testid="charts">
            <h2>"Across iterations"</h2>
            <div class="charts" data-testid="reward-history" data-values=rewards>{charts}</div>
        </section>
    }
}
