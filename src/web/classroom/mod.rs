//! The views a class works with: the clip explorer (one token against the policy and value
//! clips, and the batch's six cases), the "push harder" replay of the same batch's update,
//! what-if sliders that recompute the batch's rewards and advantages, and handouts (any chart
//! or map saved as PNG or SVG). The numbers come from [`crate::explore`].

mod clip_explorer;
mod handouts;
mod push_harder;
mod what_if;

pub use clip_explorer::clip_explorer;
pub use handouts::{canvas_by_id, fit_canvas, handout_buttons, scale};
pub use push_harder::push_harder;
pub use what_if::what_if_panel;
