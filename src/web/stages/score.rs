//! Stage 2, the score: the reward model's verdict on each response and the per-token KL to the
//! frozen reference that turns it into token rewards.

use leptos::prelude::*;

use super::common::{columns, mathml, verdict, why};
use crate::explain::format::{beta_step, calculator_notes, num};
use crate::explain::math;
use crate::explain::notes::notes;
use crate::explain::provenance::Quantity;
use crate::explain::stage::{kl_instead, real_len};
use crate::lab::walkthrough::Walkthrough;
use crate::ppo::rewards::KlEstimator;
use crate::web::guide::{notes_view, provenance_view, term};
use crate::web::select::{
    cell, exact, explain_cell, response_token, show_token, token_row, token_strip,
};
use crate::web::state::{AppState, Stage};

pub(super) fn score(
    state: AppState,
    walk: &Walkthrough,
    row: usize,
    cursor: usize,
    iteration: usize,
) -> impl IntoView {
    let exp = &walk.experience;
    let ro = &exp.rollout;
    let real = real_len(walk, row);
    let responses = exp
        .scores
        .iter()
        .enumerate()
        .map(|(b, s)| {
            let (kind, said, detail) = verdict(s);
            // GSM8K's calculator notes are kept whole on one line.
            let text = calculator_notes(&exp.responses[b])
                .into_iter()
                .map(|(note, part)| {
                    let part = part.to_string();
                    if note {
                        view! { <span class="calc">{part}</span> }.into_any()
                    } else {
                        part.into_any()
                    }
                })
                .collect_view();
            view! {
                <tr class:selected=b == row data-testid=format!("score-row-{b}") data-kind=kind
                    data-current=(b == row && cursor == 0).then_some("1")
                    on:click=move |_| state.show_row(b)>
                    <td class="num">{b + 1}</td>
                    <td class="response-text">{text}</td>
                    <td class="verdict-cell">
                        <span class=format!("badge {kind}")>{said}</span>
                        {detail.map(|d| view! { <span class="verdict-detail">{d}</span> })}
                    </td>
                    {cell(state, format!("score-{b}"), s.reward())}
                </tr>
            }
        })
        .collect_view();
    let kl_rows = (0..real)
        .map(|t| {
            let reward = exp.rewards[row][t];
            token_row(
                state,
                "kl-row",
                t,
                String::new(),
                false,
                view! {
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cell(state, format!("kl-logp-{t}"), ro.logprobs[row][t])}
                    {cell(state, format!("kl-ref-{t}"), exp.ref_logprobs[row][t])}
                    {cell(state, format!("kl-{t}"), exp.kl[row][t])}
                    {(cursor >= 2).then(|| explain_cell(state, format!("reward-{t}"), num(reward), reward, t, Quantity::Reward))}
                },
            )
        })
        .collect_view();
    let beta = exp.kl_coeff;
    let estimator = match exp.kl_estimator {
        KlEstimator::K1 => {
            "k1: KL_t = log π_old − log π_ref, the one-sample estimate. It can be negative for a token (then the penalty is a bonus there); only its average over samples is the KL."
        }
        KlEstimator::K2 => "k2: KL_t = ½ (log π_ref − log π_old)², never negative, biased.",
        KlEstimator::K3 => {
            "k3: KL_t = π_ref/π_old − 1 − log(π_ref/π_old), never negative and unbiased."
        }
    };
    let main = view! {
        {token_strip(state, walk, row, real, None)}
        <table class="numbers responses stage-data" data-testid="score-table">
            <thead><tr><th>"#"</th><th class="response-text">"response"</th><th class="verdict-cell">"verdict"</th><th>"score"</th></tr></thead>
            <tbody>{responses}</tbody>
        </table>
        {(cursor >= 1).then(|| view! {
            <h3 data-current="1">{format!("Response {}, token by token", row + 1)}</h3>
            <table class="numbers" data-testid="kl-table">
                <thead><tr>
                    <th>"t"</th><th>"token"</th><th>"log π_old"</th><th>"log π_ref"</th><th>"KL_t"</th>
                    {(cursor >= 2).then(|| view! { <th>"r_t"</th> })}
                </tr></thead>
                <tbody>{kl_rows}</tbody>
            </table>
        })}
    }
    .into_any();
    let side = view! {
        {mathml(math::reward(beta))}
        <p class="note" data-testid="kl-estimator">{format!("The KL estimator is {estimator}")}</p>
        {walk.kl_control.map(|k| view! {
            <p class="note" data-testid="kl-control" data-kl=exact(k.kl as f32) data-target=exact(k.target as f32)
                data-error=exact(k.error as f32) data-before=exact(k.before as f32) data-after=exact(k.after as f32)
                data-n=k.n.to_string() data-horizon=exact(k.horizon as f32)>
                {format!(
                    "Adaptive KL: this batch's KL to the reference is {} per response against the target {}. The error, clip({} / {} − 1, ±0.2) = {}, {} β for the next iteration: {}.",
                    num(k.kl as f32), num(k.target as f32), num(k.kl as f32), num(k.target as f32), num(k.error as f32),
                    if k.error > 0.0 { "raises" } else if k.error < 0.0 { "lowers" } else { "keeps" },
                    beta_step(k.before, k.error, k.n, k.horizon, k.after),
                )}
            </p>
        })}
        {provenance_view(state, Stage::Score)}
        {notes_view(state, notes(walk, Stage::Score, row, iteration))}
        {why("Why a frozen reference?", view! {
            "The score is a rule: the number right after the last " <code>"####"</code> " must equal the reference answer "
            "(1.0); the right format with a wrong number earns 0.1; anything else 0, given on the last token. "
            "Drifting from the starting model is penalised: each token pays β times its "
            {term("KL", "KL")} " to a copy of the starting model that never trains. Without that "
            "penalty the policy can find text that games the score and forget how to write."
            {kl_elsewhere(walk)}
        }.into_any())}
    }
    .into_any();
    columns(main, side)
}

/// Under a critic-free member, where its KL went instead of these token rewards (which are
/// PPO's, shown for comparison); nothing under PPO.
fn kl_elsewhere(walk: &Walkthrough) -> Option<String> {
    kl_instead(walk).map(|went| {
        format!(
            " These r_t are PPO's token rewards, shown for comparison: {}'s update does not use \
             them; {went}.",
            walk.experience.member.name()
        )
    })
}
