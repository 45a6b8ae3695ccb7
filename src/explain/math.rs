//! The stage formulas as MathML (Chromium and Firefox render it natively), general form and
//! with this step's numbers. Everything in them is numbers and fixed symbols: no page text.

use super::format::num;
use crate::ppo::gae::{GaeParams, GaeStep};

fn mi(x: &str) -> String {
    format!("<mi>{x}</mi>")
}
fn mo(x: &str) -> String {
    format!("<mo>{x}</mo>")
}
/// A number, negative ones fenced.
fn mn(x: f32) -> String {
    let s = num(x);
    match s.strip_prefix('−') {
        Some(abs) => format!("<mo>(</mo><mo>−</mo><mn>{abs}</mn><mo>)</mo>"),
        None => format!("<mn>{s}</mn>"),
    }
}
fn mnum(x: impl std::fmt::Display) -> String {
    format!("<mn>{x}</mn>")
}
fn sub(base: &str, index: &str) -> String {
    format!("<msub>{}{}</msub>", mi(base), index_of(index))
}
fn index_of(index: &str) -> String {
    match index.split_once('+') {
        Some((a, b)) => format!("<mrow>{}<mo>+</mo>{}</mrow>", mi(a), mnum(b)),
        None if index.chars().all(|c| c.is_ascii_digit()) => mnum(index),
        None => mi(index),
    }
}
fn row(parts: &[String]) -> String {
    format!("<mrow>{}</mrow>", parts.concat())
}
fn block(parts: &[String]) -> String {
    format!("<math display=\"block\">{}</math>", row(parts))
}

/// δ_t = r_t + γ·V_{t+1}·m_{t+1} − V_t, then with the numbers.
pub fn delta(step: &GaeStep, gamma: f32) -> [String; 2] {
    let t = step.t.to_string();
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
            mn(step.reward),
            mo("+"),
            mnum(gamma),
            mo("×"),
            mn(step.next_value),
            mo("×"),
            mnum(step.next_mask),
            mo("−"),
            mn(step.value),
            mo("="),
            mn(step.delta),
        ]),
    ]
}

/// A_t = δ_t + γλ·m_{t+1}·A_{t+1}, then with the numbers.
pub fn advantage(step: &GaeStep, params: GaeParams) -> [String; 2] {
    let t = step.t.to_string();
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
            mn(step.delta),
            mo("+"),
            mnum(params.gamma),
            mo("×"),
            mnum(params.lam),
            mo("×"),
            mnum(step.next_mask),
            mo("×"),
            mn(step.next_advantage),
            mo("="),
            mn(step.advantage),
        ]),
    ]
}

/// R_t = A_t + V_t with the numbers.
pub fn ret(step: &GaeStep) -> String {
    let t = step.t.to_string();
    block(&[
        sub("R", &t),
        mo("="),
        sub("A", &t),
        mo("+"),
        sub("V", &t),
        mo("="),
        mn(step.advantage),
        mo("+"),
        mn(step.value),
        mo("="),
        mn(step.ret),
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
        mnum(beta),
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
    let rho = sub("ρ", "t");
    let a = "<msub><mover><mi>A</mi><mo>^</mo></mover><mi>t</mi></msub>".to_string();
    block(&[
        sub("L", "t"),
        mo("="),
        mo("−"),
        mi("min"),
        mo("("),
        rho.clone(),
        a.clone(),
        mo(","),
        mi("clip"),
        mo("("),
        rho.clone(),
        mo(","),
        mnum(format!("{:.2}", 1.0 - eps)),
        mo(","),
        mnum(format!("{:.2}", 1.0 + eps)),
        mo(")"),
        a,
        mo(")"),
        mo(","),
        rho,
        mo("="),
        "<mfrac><mrow><msub><mi>π</mi><mi>new</mi></msub></mrow><mrow><msub><mi>π</mi><mi>old</mi></msub></mrow></mfrac>".into(),
    ])
}

/// The policy's next-token distribution at temperature τ.
pub fn sampling(temperature: f32) -> String {
    block(&[
        sub("p", "t"),
        mo("="),
        mi("softmax"),
        mo("("),
        format!("<mfrac>{}{}</mfrac>", mi("z"), mnum(temperature)),
        mo(")"),
    ])
}
