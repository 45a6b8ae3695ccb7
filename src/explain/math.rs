//! The stage formulas as MathML (Chromium and Firefox render it natively), general form and
//! with this step's numbers. Everything in them is numbers and fixed symbols: no page text.

use super::format::{num, num_within_operands, operand_for};
use crate::ppo::gae::{GaeParams, GaeStep};

fn mi(x: &str) -> String {
    format!("<mi>{x}</mi>")
}
fn mo(x: &str) -> String {
    format!("<mo>{x}</mo>")
}
/// A number, negative ones fenced, with at least 3 significant digits (0.0305, where [`num`]
/// would print 0.031). The sign is part of the number (a `<mo>−</mo>` would be spaced as an
/// operator: "( − 1.000)").
///
/// [`num`]: super::format::num
fn mn(x: f32) -> String {
    mn_for(x, "")
}
/// An operand of a formula whose result is printed as `result`, with the digits that give it
/// ([`operand_for`]).
fn mn_for(x: f32, result: &str) -> String {
    let s = operand_for(x, result);
    if s.starts_with('−') {
        format!("<mo>(</mo><mn>{s}</mn><mo>)</mo>")
    } else {
        format!("<mn>{s}</mn>")
    }
}
/// A formula's result, after its last `=`, as printed: not fenced, as nothing
/// follows it.
fn result(shown: &str) -> String {
    format!("<mn>{shown}</mn>")
}
fn mnum(x: impl std::fmt::Display) -> String {
    format!("<mn>{x}</mn>")
}
fn sub(base: &str, index: &str) -> String {
    format!("<msub>{}{}</msub>", mi(base), index_of(index))
}
fn index_of(index: &str) -> String {
    match index.split_once('+') {
        // Set tight, as in print: t+1, not t + 1.
        Some((a, b)) => format!(
            "<mrow>{}<mo lspace=\"0\" rspace=\"0\">+</mo>{}</mrow>",
            mi(a),
            mnum(b)
        ),
        None if index.chars().all(|c| c.is_ascii_digit()) => mnum(index),
        None => mi(index),
    }
}
fn row(parts: &[String]) -> String {
    format!("<mrow>{}</mrow>", parts.concat())
}
/// A displayed formula. One that the column may be too narrow for wraps as typeset formulas
/// do: outside parentheses it is cut into pieces before each `=`, `+` or `−` between two terms
/// that comes after the first `=` (the left side keeps its `=` and first term), and after each
/// `,` outside parentheses or between the arguments of a bracket, never inside a bracket
/// within a bracket; each piece an inline `<math>` with a line break allowed between them
/// (MathML in browsers does not break lines itself). On a wide column the pieces sit on one
/// line and read as one formula.
fn block(parts: &[String]) -> String {
    let pieces = pieces(parts);
    if pieces.len() == 1 {
        return format!("<math display=\"block\">{}</math>", row(parts));
    }
    let lines: Vec<String> = pieces
        .iter()
        .map(|piece| {
            // A piece's first operator is still infix (spaced as between two terms), not a
            // prefix sign.
            let mut piece = piece.to_vec();
            if is_operator(&piece[0]) {
                piece[0] = piece[0].replacen("<mo>", "<mo form=\"infix\">", 1);
            }
            format!("<math class=\"piece\">{}</math>", row(&piece))
        })
        .collect();
    lines.join("<wbr>")
}

/// A single `<mo>` other than a closing parenthesis (after which a term has ended).
fn is_operator(part: &str) -> bool {
    part.starts_with("<mo>") && part.matches("<mo>").count() == 1 && part != "<mo>)</mo>"
}

/// Where [`block`] may break a formula: the parts cut into pieces.
fn pieces(parts: &[String]) -> Vec<&[String]> {
    let mut pieces = Vec::new();
    let (mut start, mut depth, mut seen_equals) = (0, 0usize, false);
    for (i, part) in parts.iter().enumerate() {
        let binary = i > 0 && !is_operator(&parts[i - 1]);
        let breaks_before = depth == 0
            && seen_equals
            && binary
            && ["<mo>=</mo>", "<mo>+</mo>", "<mo>−</mo>"].contains(&part.as_str());
        if breaks_before && i > start {
            pieces.push(&parts[start..i]);
            start = i;
        }
        match part.as_str() {
            "<mo>(</mo>" => depth += 1,
            "<mo>)</mo>" => depth = depth.saturating_sub(1),
            "<mo>=</mo>" if depth == 0 => seen_equals = true,
            // After a comma a second formula starts (its own left side and `=`).
            "<mo>,</mo>" if depth == 0 => {
                pieces.push(&parts[start..=i]);
                start = i + 1;
                seen_equals = false;
            }
            // Between the arguments of an outermost bracket such as min(..), as in print: after
            // the comma.
            "<mo>,</mo>" if depth == 1 => {
                pieces.push(&parts[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < parts.len() {
        pieces.push(&parts[start..]);
    }
    pieces
}

/// δ_t = r_t + γ·V_{t+1}·m_{t+1} − V_t, then with the numbers.
pub fn delta(step: &GaeStep, gamma: f32) -> [String; 2] {
    let t = step.t.to_string();
    let delta = num_within_operands(step.delta);
    [
        block(&[
            sub("δ", "t"),
            mo("="),
            sub("r", "t"),
            mo("+"),
            mi("γ"),
            mo("·"),
            sub("V", "t+1"),
            mo("·"),
            sub("m", "t+1"),
            mo("−"),
            sub("V", "t"),
        ]),
        block(&[
            sub("δ", &t),
            mo("="),
            mn_for(step.reward, &delta),
            mo("+"),
            mnum(gamma),
            mo("×"),
            mn_for(step.next_value, &delta),
            mo("×"),
            mnum(step.next_mask),
            mo("−"),
            mn_for(step.value, &delta),
            mo("="),
            result(&delta),
        ]),
    ]
}

/// A_t = δ_t + γλ·m_{t+1}·A_{t+1}, then with the numbers.
pub fn advantage(step: &GaeStep, params: GaeParams) -> [String; 2] {
    let t = step.t.to_string();
    let advantage = num_within_operands(step.advantage);
    [
        block(&[
            sub("A", "t"),
            mo("="),
            sub("δ", "t"),
            mo("+"),
            mi("γ"),
            mi("λ"),
            mo("·"),
            sub("m", "t+1"),
            mo("·"),
            sub("A", "t+1"),
        ]),
        block(&[
            sub("A", &t),
            mo("="),
            mn_for(step.delta, &advantage),
            mo("+"),
            mnum(params.gamma),
            mo("×"),
            mnum(params.lam),
            mo("×"),
            mnum(step.next_mask),
            mo("×"),
            mn_for(step.next_advantage, &advantage),
            mo("="),
            result(&advantage),
        ]),
    ]
}

/// R_t = A_t + V_t with the numbers.
pub fn ret(step: &GaeStep) -> String {
    let t = step.t.to_string();
    let ret = num_within_operands(step.ret);
    block(&[
        sub("R", &t),
        mo("="),
        sub("A", &t),
        mo("+"),
        sub("V", &t),
        mo("="),
        mn_for(step.advantage, &ret),
        mo("+"),
        mn_for(step.value, &ret),
        mo("="),
        result(&ret),
    ])
}

/// Â_t = (A_t − mean) / std with the batch's numbers.
pub fn whiten(mean: f32, std: f32) -> String {
    block(&[
        "<msub><mover><mi>A</mi><mo>^</mo></mover><mi>t</mi></msub>".into(),
        mo("="),
        format!(
            "<mfrac><mrow>{}{}{}</mrow>{}</mfrac>",
            sub("A", "t"),
            mo("−"),
            mn(mean),
            mn(std)
        ),
    ])
}

/// r_t = −β·KL_t + [t = t_last]·score, t_last the response's last real token (not the padded
/// length, which exercise 4 calls T).
pub fn reward(beta: f32) -> String {
    block(&[
        sub("r", "t"),
        mo("="),
        mo("−"),
        mnum(num(beta)),
        mo("·"),
        sub("KL", "t"),
        mo("+"),
        "<mrow><mo>[</mo><mi>t</mi><mo>=</mo><msub><mi>t</mi><mi>last</mi></msub><mo>]</mo></mrow>"
            .into(),
        mo("·"),
        mi("score"),
    ])
}

/// The clipped surrogate the update minimises, with ε.
pub fn clipped_objective(eps: f32) -> String {
    clipped_objective_in(1.0 - eps, 1.0 + eps)
}

/// Each token's clipped term with the band's edges given (DAPO's is wider above).
pub fn clipped_objective_in(low_edge: f32, high_edge: f32) -> String {
    let rho = sub("ρ", "t");
    let a = "<msub><mover><mi>A</mi><mo>^</mo></mover><mi>t</mi></msub>".to_string();
    let mut parts = vec![sub("L", "t"), mo("="), mo("−")];
    parts.extend(clipped_min(&rho, &a, (low_edge, high_edge)));
    parts.extend([
        mo(","),
        rho,
        mo("="),
        "<mfrac><mrow><msub><mi>π</mi><mi>new</mi></msub></mrow><mrow><msub><mi>π</mi><mi>old</mi></msub></mrow></mfrac>".into(),
    ]);
    block(&parts)
}

/// `min(ρ·A, clip(ρ, low, high)·A)`.
fn clipped_min(rho: &str, a: &str, (low_edge, high_edge): (f32, f32)) -> [String; 15] {
    // As the rest of the page writes the band: ε = 0.125 gives 0.875 and 1.125, not 0.88, 1.12.
    let (low_edge, high_edge) = super::format::band_edges(low_edge, high_edge);
    [
        mi("min"),
        mo("("),
        rho.to_string(),
        a.to_string(),
        mo(","),
        mi("clip"),
        mo("("),
        rho.to_string(),
        mo(","),
        mnum(low_edge),
        mo(","),
        mnum(high_edge),
        mo(")"),
        a.to_string(),
        mo(")"),
    ]
}

/// One term per response `i`, on the response's ratio (the product of its tokens' ratios), as
/// RLOO (clipped to the band's edges) and REINFORCE (`None`: no clip) take it.
pub fn response_objective(edges: Option<(f32, f32)>) -> String {
    let rho = sub("ρ", "i");
    let a = sub("A", "i");
    let mut parts = vec![sub("L", "i"), mo("="), mo("−")];
    match edges {
        Some(edges) => parts.extend(clipped_min(&rho, &a, edges)),
        None => parts.extend([rho.clone(), a]),
    }
    parts.extend([
        mo(","),
        rho,
        mo("="),
        "<munder><mo>∏</mo><mi>t</mi></munder>".into(),
        "<mfrac><mrow><msub><mi>π</mi><mi>new</mi></msub></mrow><mrow><msub><mi>π</mi><mi>old</mi></msub></mrow></mfrac>".into(),
    ]);
    block(&parts)
}

/// The policy's next-token distribution at temperature τ, then τ's value (`z/1` alone reads as
/// a typo).
pub fn sampling(temperature: f32) -> String {
    block(&[
        sub("p", "t"),
        mo("="),
        mi("softmax"),
        mo("("),
        format!("<mfrac>{}{}</mfrac>", sub("z", "t"), mi("τ")),
        mo(")"),
        mo(","),
        mi("τ"),
        mo("="),
        mnum(temperature),
    ])
}
