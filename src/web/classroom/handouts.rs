//! What every chart and map shares: the presenter scale, a canvas sized for the screen's pixel
//! ratio, and the handout buttons that save a chart or map as PNG or SVG.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::web::state::AppState;

/// How much larger presenter mode draws canvases and plots.
pub const PRESENTER_SCALE: f64 = 1.6;

pub fn scale(state: AppState) -> f64 {
    if state.presenter.get() {
        PRESENTER_SCALE
    } else {
        1.0
    }
}

pub fn device_pixel_ratio() -> f64 {
    web_sys::window().map_or(1.0, |w| w.device_pixel_ratio().max(1.0))
}

/// Sizes `canvas` to `w × h` CSS pixels with a backing store at the device pixel ratio;
/// returns the backing pixels per CSS pixel.
pub fn fit_canvas(canvas: &web_sys::HtmlCanvasElement, w: f64, h: f64) -> f64 {
    let k = device_pixel_ratio();
    canvas.set_width((w * k).round() as u32);
    canvas.set_height((h * k).round() as u32);
    let element: &web_sys::HtmlElement = canvas;
    let style = web_sys::HtmlElement::style(element);
    let _ = style.set_property("width", &format!("{w:.0}px"));
    let _ = style.set_property("height", &format!("{h:.0}px"));
    k
}

// ---------------------------------------------------------------------------------------------
// Handouts.

/// Starts a download of `href` as `file` (the link stays in the page, for tests to read).
fn download(anchor: &web_sys::HtmlAnchorElement, href: &str, file: &str) {
    anchor.set_href(href);
    anchor.set_download(file);
    anchor.click();
}

/// "PNG" (when `png_too`) and "SVG" buttons for a figure: `png` gives its canvas, `svg` its
/// SVG markup.
pub fn handout_buttons(
    name: String,
    png_too: bool,
    png: impl Fn() -> Option<web_sys::HtmlCanvasElement> + 'static,
    svg: impl Fn() -> Option<String> + 'static,
) -> impl IntoView {
    let anchor = NodeRef::<leptos::html::A>::new();
    let (png_name, svg_name) = (format!("{name}.png"), format!("{name}.svg"));
    view! {
        <span class="handout" data-testid=format!("handout-{name}")>
            <button class="link" title="save as PNG, for slides" data-testid=format!("handout-{name}-png") hidden={!png_too}
                on:click=move |_| {
                    if let (Some(a), Some(canvas)) = (anchor.get(), png()) {
                        if let Ok(url) = canvas.to_data_url_with_type("image/png") {
                            download(&a, &url, &png_name);
                        }
                    }
                }>"PNG"</button>
            <button class="link" title="save as SVG, for slides" data-testid=format!("handout-{name}-svg")
                on:click=move |_| {
                    if let (Some(a), Some(markup)) = (anchor.get(), svg()) {
                        let url = format!("data:image/svg+xml;charset=utf-8,{}", String::from(js_sys::encode_uri_component(&markup)));
                        download(&a, &url, &svg_name);
                    }
                }>"SVG"</button>
            <a node_ref=anchor class="handout-link" data-testid=format!("handout-{name}-link") aria-hidden="true" tabindex="-1"></a>
        </span>
    }
}

/// An SVG element's markup, as a standalone file.
pub fn svg_markup(id: &str) -> Option<String> {
    let el = document()
        .query_selector(&format!("[data-testid='{id}']"))
        .ok()??;
    let markup = el.outer_html();
    Some(if markup.contains("xmlns=") {
        markup
    } else {
        markup.replacen("<svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"", 1)
    })
}

/// A canvas on the page by its test id.
pub fn canvas_by_id(id: &str) -> Option<web_sys::HtmlCanvasElement> {
    document()
        .query_selector(&format!("[data-testid='{id}']"))
        .ok()??
        .dyn_into()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// The clip explorer.
