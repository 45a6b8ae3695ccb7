//! The colours the page draws its canvases with, and the WCAG contrast ratio its tests check
//! them (and the stylesheet's non-text colours) against.
//!
//! Text contrast is checked in the browser by axe-core; canvases and the graphical parts of the
//! stylesheet (a band, a dot, an outline) are checked here against WCAG 2.1's 3:1 for non-text
//! contrast (1.4.11), so they stay readable on a washed-out projector.

/// The attention maps: a weight of 1 (0 is white), the causal mask, left padding and its
/// hatch, and the line where the response starts.
pub const WEIGHT_FULL: (u8, u8, u8) = (20, 60, 170);
pub const CAUSAL_MASK: &str = "#8a919b";
pub const PADDING: &str = "#4b5563";
pub const PADDING_HATCH: &str = "#d5d9df";
pub const RESPONSE_EDGE: &str = "#c2410c";

/// Earlier runs overlaid on the reward and KL charts, one colour each (by run number), apart
/// from the charts' own ink and orange.
pub const RUN_COLOURS: [&str; 4] = ["#6a3d9a", "#00796b", "#8c564b", "#7a6a00"];

/// `#rrggbb` as three bytes.
pub fn rgb(hex: &str) -> Option<(u8, u8, u8)> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some((byte(0)?, byte(2)?, byte(4)?))
}

/// WCAG 2.1 relative luminance.
pub fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let channel = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// WCAG 2.1 contrast ratio, 1 to 21.
pub fn contrast(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// The colour of weight `w` on the maps: white to [`WEIGHT_FULL`] on √w.
pub fn weight_colour(w: f32) -> (u8, u8, u8) {
    let s = w.clamp(0.0, 1.0).sqrt();
    let mix = |full: u8| (255.0 - (255.0 - full as f32) * s) as u8;
    (mix(WEIGHT_FULL.0), mix(WEIGHT_FULL.1), mix(WEIGHT_FULL.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: (u8, u8, u8) = (255, 255, 255);

    #[test]
    fn contrast_matches_wcag_examples() {
        assert!((contrast(WHITE, (0, 0, 0)) - 21.0).abs() < 1e-9);
        // #767676 on white is the classic 4.54:1.
        assert!((contrast(rgb("#767676").unwrap(), WHITE) - 4.54).abs() < 0.01);
        assert_eq!(rgb("#c2410c"), Some((0xc2, 0x41, 0x0c)));
        assert_eq!(rgb("c2410c"), None);
    }

    #[test]
    fn the_maps_encodings_stand_apart() {
        let causal = rgb(CAUSAL_MASK).unwrap();
        let padding = rgb(PADDING).unwrap();
        // A masked cell is told from a weight of 0 (white) and from a strong weight.
        assert!(
            contrast(causal, WHITE) >= 3.0,
            "{}",
            contrast(causal, WHITE)
        );
        assert!(contrast(padding, WHITE) >= 3.0);
        // Padding is told from the causal mask by its hatch, which stands out on it.
        assert!(contrast(rgb(PADDING_HATCH).unwrap(), padding) >= 3.0);
        assert!(contrast(rgb(RESPONSE_EDGE).unwrap(), WHITE) >= 3.0);
        assert!(contrast(weight_colour(1.0), WHITE) >= 3.0);
    }

    #[test]
    fn earlier_runs_stand_out_on_white_and_apart() {
        let ink = (29, 53, 87);
        let orange = (231, 111, 81);
        for (i, hex) in RUN_COLOURS.iter().enumerate() {
            let c = rgb(hex).unwrap();
            assert!(contrast(c, WHITE) >= 3.0, "{hex}: {}", contrast(c, WHITE));
            assert!(c != ink && c != orange, "{hex}");
            assert!(!RUN_COLOURS[..i].contains(hex), "{hex} twice");
        }
    }

    /// The declarations of the rule whose selector list is exactly `selector`.
    fn rule<'a>(css: &'a str, selector: &str) -> &'a str {
        let start = css
            .find(&format!("\n{selector} {{"))
            .unwrap_or_else(|| panic!("www/style.css has no rule `{selector}`"));
        let body = &css[start..];
        &body[body.find('{').unwrap() + 1..body.find('}').unwrap()]
    }

    fn colour(css: &str, selector: &str, property: &str) -> (u8, u8, u8) {
        let body = rule(css, selector);
        let at = body
            .find(&format!("{property}:"))
            .unwrap_or_else(|| panic!("`{selector}` has no {property}"));
        let value = body[at + property.len() + 1..].trim_start();
        let hex = value
            .split(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap();
        rgb(hex).unwrap_or_else(|| panic!("`{selector}` {property}: `{hex}` is not #rrggbb"))
    }

    #[test]
    fn the_stylesheets_graphics_meet_3_to_1() {
        let css =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/www/style.css")).unwrap();
        let pairs = [
            // The clip band in the Update table, against its track; the ratio's mark on it.
            (
                colour(&css, ".band-ok", "background"),
                colour(&css, ".band-track", "background"),
                "band vs track",
            ),
            (
                colour(&css, ".band-dot", "background"),
                colour(&css, ".band-ok", "background"),
                "ratio mark vs band",
            ),
            // The clip plot's curve, dots and flat region's edge on white.
            (
                colour(&css, ".clip-curve", "stroke"),
                WHITE,
                "objective curve",
            ),
            (
                colour(&css, ".dot-after", "fill"),
                WHITE,
                "ratio after the update",
            ),
            (
                colour(&css, ".dot-pushed", "fill"),
                WHITE,
                "ratio after pushing harder",
            ),
            (
                colour(&css, ".clip-flat", "stroke"),
                WHITE,
                "flat region's edge",
            ),
            (
                colour(&css, ".clip-band", "stroke"),
                WHITE,
                "clip band's edge",
            ),
            // A token that is not sampled yet: its dashed outline on its chip.
            (
                colour(&css, ".tok.hidden", "border-color"),
                colour(&css, ".tok.hidden", "background"),
                "hidden chip",
            ),
            // The picked token's outline on its highlight.
            (
                rgb("#7a5600").unwrap(),
                rgb("#ffe08a").unwrap(),
                "picked outline",
            ),
        ];
        for (a, b, what) in pairs {
            let c = contrast(a, b);
            assert!(
                c >= 3.0,
                "{what}: {a:?} on {b:?} is {c:.2}:1, WCAG asks 3:1"
            );
        }
        // Pending rows and hidden chips keep their text readable (AA for text, 4.5:1).
        let text = [
            (
                colour(&css, "tr.pending td", "color"),
                colour(&css, "tr.pending td", "background"),
                "pending row",
            ),
            (
                colour(&css, ".tok.hidden", "color"),
                colour(&css, ".tok.hidden", "background"),
                "hidden chip",
            ),
        ];
        for (a, b, what) in text {
            let c = contrast(a, b);
            assert!(c >= 4.5, "{what}: {c:.2}:1, WCAG AA asks 4.5:1");
        }
    }
}
