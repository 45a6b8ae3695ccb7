//! Live charts across iterations, drawn with plotters on canvases.

use leptos::prelude::*;
use plotters::prelude::*;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontTransform,
};
use plotters_canvas::CanvasBackend;
use wasm_bindgen::JsCast;

use super::classroom::{canvas_by_id, fit_canvas, handout_buttons, scale};
use super::runs::{draw_runs, overlays};
use super::select::{exact, show_token};
use super::state::{AppState, Point, Run};
use crate::explain::format::num;
use crate::lab::run::KEPT_ITERATIONS;

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
        series: &[
            ("KL", |p| p.kl_mean, INK),
            ("adaptive target", |p| p.kl_target, ORANGE),
        ],
    },
    ChartSpec {
        id: "beta",
        title: "β, the KL weight",
        series: &[("β", |p| p.kl_coeff, INK)],
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
    ChartSpec {
        id: "approx-kl",
        title: "approx KL (each update's step)",
        series: &[("approx KL", |p| p.approx_kl, INK)],
    },
    ChartSpec {
        id: "grad-norm",
        title: "gradient norm (before clipping)",
        series: &[("grad norm", |p| p.grad_norm, INK)],
    },
    ChartSpec {
        id: "explained-variance",
        title: "critic explained variance",
        series: &[("explained variance", |p| p.explained_variance, INK)],
    },
];

type CanvasResult<T> = Result<T, DrawingErrorKind<<CanvasBackend as DrawingBackend>::ErrorType>>;

/// plotters' canvas backend, measuring text with the canvas's own `measureText`.
///
/// Without it plotters measures each label by adding a `<span>` to the page and reading its
/// size, which makes the browser lay out the whole page (the stage tables included) once per
/// label.
struct Canvas {
    inner: CanvasBackend,
    context: web_sys::CanvasRenderingContext2d,
}

impl Canvas {
    fn new(canvas: web_sys::HtmlCanvasElement) -> Option<Self> {
        let context = canvas
            .get_context("2d")
            .ok()??
            .dyn_into::<web_sys::CanvasRenderingContext2d>()
            .ok()?;
        Some(Self {
            inner: CanvasBackend::with_canvas_object(canvas)?,
            context,
        })
    }

    /// `measureText(text).width` in the style's font; None if the browser will not say.
    fn text_width(&self, text: &str, style: &impl BackendTextStyle) -> Option<f64> {
        self.context.set_font(&format!(
            "{} {}px {}",
            style.style().as_str(),
            style.size(),
            style.family().as_str()
        ));
        let measure: js_sys::Function = js_sys::Reflect::get(&self.context, &"measureText".into())
            .ok()?
            .dyn_into()
            .ok()?;
        let metrics = measure.call1(&self.context, &text.into()).ok()?;
        js_sys::Reflect::get(&metrics, &"width".into())
            .ok()?
            .as_f64()
    }
}

impl DrawingBackend for Canvas {
    type ErrorType = <CanvasBackend as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> CanvasResult<()> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> CanvasResult<()> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> CanvasResult<()> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> CanvasResult<()> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> CanvasResult<()> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> CanvasResult<()> {
        self.inner.draw_path(path, style)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> CanvasResult<()> {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> CanvasResult<()> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> CanvasResult<()> {
        self.inner.draw_text(text, style, pos)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> CanvasResult<(u32, u32)> {
        let size = style.size();
        // A rough width (0.6 em per character) only if the canvas will not measure.
        let width = self
            .text_width(text, style)
            .unwrap_or(0.6 * size * text.chars().count() as f64);
        let (w, h) = (width.ceil() as u32, size.ceil() as u32);
        Ok(match style.transform() {
            FontTransform::Rotate90 | FontTransform::Rotate270 => (h, w),
            _ => (w, h),
        })
    }
}

/// The chart's size in CSS pixels at normal size (presenter mode scales it).
const CHART_W: f64 = 340.0;
const CHART_H: f64 = 220.0;

/// Where the plot area lies: iterations `x0..x1` across CSS pixels `left..right`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct XAxis {
    x0: f64,
    x1: f64,
    left: f64,
    right: f64,
}

/// Draws `spec` over `points` on `root`, every length times `k` (backing pixels per CSS pixel
/// at normal size); returns the x axis in the root's pixels.
/// The earlier `runs` are drawn dashed over the reward and KL charts' own series
/// ([`draw_runs`]), so runs from the same start compare by iteration.
fn plot<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    spec: &ChartSpec,
    points: &[Point],
    runs: &[Run],
    k: f64,
) -> Option<XAxis> {
    let px = |x: f64| (x * k).round() as i32;
    root.fill(&WHITE).ok()?;
    let runs = if overlays(spec.id) { runs } else { &[] };
    let previous: Vec<&Point> = runs.iter().flat_map(|r| &r.points).collect();
    let previous = previous.into_iter();
    let xs = points
        .iter()
        .chain(previous.clone())
        .map(|p| p.iteration as f64);
    let (x0, x1) = (
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    let (x0, x1) = if points.is_empty() && runs.is_empty() {
        (0.0, 1.0)
    } else if x1 - x0 < 1.0 {
        (x0 - 0.5, x1 + 0.5)
    } else {
        (x0, x1)
    };
    let ys = points
        .iter()
        .chain(previous)
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
        // A flat line (a fixed β) in the middle, its value among the labels' scale.
        let pad = if y0.abs() > 1e-6 { y0.abs() * 0.5 } else { 0.5 };
        (y0 - pad, y1 + pad)
    } else {
        let pad = (y1 - y0) * 0.08;
        (y0 - pad, y1 + pad)
    };
    // Enough decimals that neighbouring labels differ.
    let decimals = (-((y1 - y0) / 5.0).log10().floor()).clamp(2.0, 5.0) as usize;
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 18.0 * k).into_font().color(&INK))
        .margin(px(8.0))
        .x_label_area_size(px(26.0))
        .y_label_area_size(px(52.0))
        .build_cartesian_2d(x0..x1, y0..y1)
        .ok()?;
    chart
        .configure_mesh()
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|x| format!("{x:.0}"))
        // A real minus sign, and never "−0.00" for a label a rounding below 0.
        .y_label_formatter(&|y| crate::explain::format::fixed(*y as f32, decimals))
        .light_line_style(RGBColor(235, 238, 242))
        .label_style(("sans-serif", 13.0 * k).into_font().color(&INK))
        .draw()
        .ok()?;
    for (_, f, color) in spec.series {
        let data: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.iteration as f64, f(p)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(
                data.clone(),
                Color::stroke_width(color, px(2.0) as u32),
            ))
            .ok()?;
        chart
            .draw_series(
                data.into_iter()
                    .map(|(x, y)| Circle::new((x, y), px(3.5) as u32, color.filled())),
            )
            .ok()?;
    }
    // The earlier runs on top.
    if let Some((_, f, _)) = spec.series.first() {
        draw_runs(&mut chart, runs, *f, k)?;
    }
    let (xr, _) = chart.plotting_area().get_pixel_range();
    root.present().ok()?;
    Some(XAxis {
        x0,
        x1,
        left: xr.start as f64,
        right: xr.end as f64,
    })
}

/// Draws on the page's canvas at `scale` × the normal size and the device pixel ratio.
fn draw(
    canvas: web_sys::HtmlCanvasElement,
    spec: &ChartSpec,
    points: &[Point],
    runs: &[Run],
    scale: f64,
) -> Option<XAxis> {
    let dpr = fit_canvas(&canvas, CHART_W * scale, CHART_H * scale);
    let axis = plot(
        Canvas::new(canvas)?.into_drawing_area(),
        spec,
        points,
        runs,
        scale * dpr,
    )?;
    Some(XAxis {
        left: axis.left / dpr,
        right: axis.right / dpr,
        ..axis
    })
}

/// The chart as an SVG file, twice the normal size.
fn chart_svg(spec: &ChartSpec, points: &[Point], runs: &[Run]) -> Option<String> {
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, ((CHART_W * 2.0) as u32, (CHART_H * 2.0) as u32))
                .into_drawing_area();
        plot(root, spec, points, runs, 2.0)?;
    }
    Some(out)
}

/// The kept iteration nearest to a click at CSS pixel `x` of a chart.
fn clicked_iteration(axis: XAxis, x: f64, kept: &[usize]) -> Option<usize> {
    if axis.right <= axis.left {
        return None;
    }
    let at = axis.x0 + (x - axis.left) / (axis.right - axis.left) * (axis.x1 - axis.x0);
    kept.iter()
        .copied()
        .min_by(|a, b| (*a as f64 - at).abs().total_cmp(&(*b as f64 - at).abs()))
        .filter(|i| (*i as f64 - at).abs() <= 0.5 + (axis.x1 - axis.x0) * 0.04)
}

#[component]
pub fn Charts(state: AppState) -> impl IntoView {
    let charts = CHARTS
        .iter()
        .map(|spec| {
            let node = NodeRef::<leptos::html::Canvas>::new();
            let axis = StoredValue::new(XAxis::default());
            Effect::new(move |_| {
                let points = state.history.get();
                let runs = state.runs.get();
                let s = scale(state);
                if let Some(canvas) = node.get() {
                    if let Some(a) = draw(canvas.clone(), spec, &points, &runs, s) {
                        axis.set_value(a);
                        let _ = canvas.set_attribute(
                            "data-axis",
                            &format!("{} {} {} {}", a.x0, a.x1, a.left, a.right),
                        );
                    }
                }
            });
            let on_click = move |ev: web_sys::MouseEvent| {
                let kept: Vec<usize> = state
                    .kept
                    .with_untracked(|k| k.iter().map(|k| k.iteration).collect());
                if let Some(i) = clicked_iteration(axis.get_value(), ev.offset_x() as f64, &kept) {
                    let row = pinned_row(state, i).unwrap_or(0);
                    state.reopen(i, row);
                }
            };
            // The legend: each series' colour, name and last value.
            // The reward and KL charts name each run's member: this run's and the earlier ones'.
            let last = move || {
                let history = state.history.get();
                let p = history.last()?;
                let runs = state.runs.get();
                let runs = if overlays(spec.id) { runs } else { Vec::new() };
                let swatch = |RGBColor(r, g, b): RGBColor| {
                    view! {
                        <span class="swatch" style=format!("background: rgb({r}, {g}, {b})")></span>
                    }
                };
                // A series with no value here (the KL target while β is fixed) is left out.
                let own = spec
                    .series
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, f, _))| f(p).is_finite())
                    .map(|(i, (name, f, color))| {
                        let name = if i == 0 && !runs.is_empty() {
                            format!("this run ({})", p.member.name())
                        } else {
                            name.to_string()
                        };
                        // Each series' last value, exact in data-v for tests and scripts.
                        // One entry never breaks inside: the caption wraps between entries
                        // (spaced apart, with no separator to strand at a line's end).
                        view! {
                            {(i > 0).then_some(" ")}
                            <span class="entry">
                                {swatch(*color)}
                                <span data-testid=format!("chart-{}-{i}", spec.id) data-v=exact(f(p) as f32)>
                                    {format!("{name} {}", num(f(p) as f32))}
                                </span>
                            </span>
                        }
                    })
                    .collect_view();
                let f = spec.series[0].1;
                let before = runs
                    .iter()
                    .filter_map(|run| {
                        let q = run.points.last()?;
                        Some(view! {
                            " "
                            <span class="entry">
                                {swatch(run.colour())}
                                <span data-testid=format!("chart-{}-run-{}", spec.id, run.number) data-v=exact(f(q) as f32)>
                                    {format!("{} {}", run.name(), num(f(q) as f32))}
                                </span>
                            </span>
                        })
                    })
                    .collect_view();
                Some(view! { {own} {before} })
            };
            view! {
                <figure class="chart">
                    <canvas node_ref=node data-testid=format!("chart-{}", spec.id) on:click=on_click
                        title="click a point to reopen that iteration's batch"></canvas>
                    <figcaption>
                        <span data-testid=format!("chart-{}-last", spec.id)>{last}</span>
                        " " {handout_buttons(
                            format!("chart-{}", spec.id),
                            true,
                            move || canvas_by_id(&format!("chart-{}", spec.id)),
                            move || state.history.with_untracked(|h| {
                                state.runs.with_untracked(|r| chart_svg(spec, h, r))
                            }),
                        )}
                    </figcaption>
                </figure>
            }
        })
        .collect_view();
    // Each run's rewards, exact, for tests and scripts to read: this run's, the one before the
    // last reset, and every kept run's (`run 1 (PPO): 0.1,0.2; run 2 (RLOO): ...`).
    let listed = |points: &[Point]| {
        points
            .iter()
            .map(|p| format!("{:?}", p.reward_mean))
            .collect::<Vec<_>>()
            .join(",")
    };
    let rewards = move || state.history.with(|h| listed(h));
    let previous = move || {
        state
            .runs
            .with(|r| r.last().map(|r| listed(&r.points)).unwrap_or_default())
    };
    let runs = move || {
        state.runs.with(|r| {
            r.iter()
                .map(|r| format!("{}: {}", r.name(), listed(&r.points)))
                .collect::<Vec<_>>()
                .join("; ")
        })
    };
    view! {
        <section class="card" data-testid="charts">
            <h2>"Across iterations"</h2>
            <p class="note" data-testid="kept-note">
                {move || format!(
                    "Click a point to reopen that iteration's batch in the stages. The page keeps the last {KEPT_ITERATIONS} iterations' batches in memory (now {}).",
                    state.kept.with(|k| k.len())
                )}
            </p>
            <div class="charts" data-testid="reward-history" data-values=rewards data-previous=previous data-runs=runs>{charts}</div>
            <PinnedOverTime state=state />
        </section>
    }
}

/// The row of kept iteration `i` that asked the pinned problem.
fn pinned_row(state: AppState, i: usize) -> Option<usize> {
    let pinned = state.pinned.get_untracked()?;
    state.kept.with_untracked(|k| {
        k.iter()
            .find(|k| k.iteration == i)?
            .problems
            .iter()
            .position(|&p| p == pinned)
    })
}

/// The pinned problem across the kept iterations: its response, score, first value and mean
/// advantage each time; a row reopens that batch at the pinned response.
#[component]
fn PinnedOverTime(state: AppState) -> impl IntoView {
    move || {
        let Some(pinned) = state.pinned.get() else {
            return view! {
                <p class="note" data-testid="pinned-none">
                    "Pin a response's prompt (the pin button beside the responses) to follow it across iterations while the page trains."
                </p>
            }
            .into_any();
        };
        let rows = state.kept.with(|kept| {
            kept.iter()
                .filter_map(|k| {
                    let row = k.problems.iter().position(|&p| p == pinned)?;
                    let walk = &k.walk;
                    let real = crate::explain::stage::real_len(walk, row);
                    let f = crate::explain::stage::followed(walk, row);
                    let member = walk.experience.member.name();
                    let iteration = k.iteration;
                    let text: String = (0..real.min(24))
                        .map(|t| show_token(&super::select::response_token(walk, row, t)))
                        .collect();
                    Some(view! {
                        <tr data-testid=format!("pinned-{iteration}") class:selected=move || state.shown.get() == iteration
                            tabindex="0" on:click=move |_| { state.reopen(iteration, row); }>
                            <td class="num">{iteration}</td>
                            <td class="num">{row + 1}</td>
                            <td class="tokcell response-text">{text}{(real > 24).then_some("…")}</td>
                            <td class="num" data-testid=format!("pinned-{iteration}-score")>{num(f.score)}</td>
                            <td class="num" data-testid=format!("pinned-{iteration}-v0")
                                title=f.start_value.is_none().then(|| format!("{member} has no critic"))>
                                {f.start_value.map_or_else(|| "—".to_string(), num)}</td>
                            <td class="num" data-testid=format!("pinned-{iteration}-adv")>{num(f.mean_advantage)}</td>
                        </tr>
                    })
                })
                .collect_view()
        });
        view! {
            <div class="pinned" data-testid="pinned">
                <h3>{format!("Pinned problem #{pinned} across the kept iterations ")}
                    <button class="link" data-testid="unpin" on:click=move |_| state.pinned.set(None)>"unpin"</button>
                </h3>
                <p class="note">"From the next iteration on it is asked in row 1 of every batch. Click a row to open that batch at this response."</p>
                <table class="numbers" data-testid="pinned-table">
                    <thead><tr><th>"iteration"</th><th>"response"</th><th>"text"</th><th>"score"</th><th title="the critic's value before the first token; — where the member has no critic">"V(s₀)"</th><th>"mean Â"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        }
        .into_any()
    }
}
