//! Live charts across iterations, drawn with plotters on canvases.

use leptos::prelude::*;
use plotters::prelude::*;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontTransform,
};
use plotters_canvas::CanvasBackend;
use wasm_bindgen::JsCast;

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

fn draw(canvas: web_sys::HtmlCanvasElement, spec: &ChartSpec, points: &[Point]) -> Option<()> {
    let root = Canvas::new(canvas)?.into_drawing_area();
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
    for (_, f, color) in spec.series {
        let data: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.iteration as f64, f(p)))
            .filter(|(_, y)| y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), Color::stroke_width(color, 2)))
            .ok()?;
        chart
            .draw_series(
                data.into_iter()
                    .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
            )
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
            // The legend: each series' colour, name and last value.
            let last = move || {
                let history = state.history.get();
                let p = history.last()?;
                Some(
                    spec.series
                        .iter()
                        .enumerate()
                        .map(|(i, (name, f, RGBColor(r, g, b)))| {
                            view! {
                                {(i > 0).then_some(" · ")}
                                <span class="swatch" style=format!("background: rgb({r}, {g}, {b})")></span>
                                {format!("{name} {:.3}", f(p))}
                            }
                        })
                        .collect_view(),
                )
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
