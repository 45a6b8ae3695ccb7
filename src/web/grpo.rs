//! PPO beside GRPO on the same batch (in the GAE stage): the batch as groups of samples of one
//! prompt, each response's group-relative advantage next to PPO's per-token advantages, the
//! tokens where the two disagree in sign, the groups that give GRPO no reward signal, and what the
//! critic costs. Every number comes from the experience the worker computed
//! ([`Experience::group`](crate::ppo::iteration::Experience::group)) and
//! [`compare_advantages`]; the page only arranges them.

use std::sync::Arc;

use leptos::prelude::*;

use super::select::{cell, exact, response_token, show_token};
use super::stages::common::prompt_text;
use super::state::AppState;
use crate::explain::format::{agree, count, num};
use crate::explain::provenance::group_advantage;
use crate::explore::{CriticCost, compare_advantages, zero_spread_effects};
use crate::lab::run::TINY_CONFIG;
use crate::lab::walkthrough::Walkthrough;
use crate::model::Qwen2Config;
use crate::ppo::family::Family;
use crate::ppo::group_advantages::RewardScale;

/// Qwen1.5-1.8B-Chat's shape (its config.json), for the critic's cost at full size.
const QWEN_18B: &str = include_str!("../../configs/shapes/qwen1.5-1.8b-chat.json");

/// The samples per prompt the page offers when the batch is not grouped yet.
fn offered_group(rollouts: usize) -> usize {
    [4, 2]
        .into_iter()
        .find(|g| rollouts.is_multiple_of(*g))
        .unwrap_or(2)
}

/// The user's question of `row`'s prompt, shortened.
fn question(walk: &Walkthrough, row: usize) -> String {
    let text = prompt_text(walk, row);
    let user = text
        .rsplit("<|im_start|>user")
        .next()
        .unwrap_or(&text)
        .split("<|im_end|>")
        .next()
        .unwrap_or("")
        .trim();
    let short: String = user.chars().take(70).collect();
    if short.len() < user.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// `1,234,567`.
fn grouped_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The comparison panel for the batch on show, following the response picker (`row`).
pub fn grpo_panel(state: AppState, walk: &Arc<Walkthrough>, row: usize) -> impl IntoView {
    let exp = &walk.experience;
    let Some(group) = exp.group.clone() else {
        let g = offered_group(state.settings.with_untracked(|s| s.rollouts));
        let arrange = move |_| {
            state.settings.update(|s| s.group = g);
            state.next_iteration(false);
        };
        return view! {
            <section class="card grpo" data-testid="grpo-compare">
                <h3>"PPO beside GRPO"</h3>
                <p>
                    "GRPO drops the critic: it samples several responses to the same prompt and "
                    "uses their mean reward as the baseline. This batch asks a different problem in "
                    "every row, so there is no group to compare with."
                </p>
                <button data-testid="grpo-arrange" on:click=arrange disabled=move || state.busy()>
                    {format!("Sample {g} responses per prompt and compare")}
                </button>
            </section>
        }
        .into_any();
    };
    let comparison = compare_advantages(exp);
    // The β of GRPO's KL term: the `beta` setting this batch ran with (GRPO and Dr. GRPO put it
    // in their loss; the other members put it elsewhere or nowhere, and their update's own is 0).
    let beta = walk.family.beta;
    let g = group.group_size;
    let (disagree, real, zero_tokens) = comparison.as_ref().map_or((0, 0, 0), |c| {
        (c.disagree_total(), c.real_tokens, c.zero_tokens)
    });
    let zero_groups = group.groups.iter().filter(|s| s.zero_spread).count();
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let picked_group = group.group_of(row);
    // One row per response, grouped under its prompt: the group's mean and std span its rows.
    let groups = group
        .groups
        .iter()
        .enumerate()
        .map(|(k, step)| {
            let responses = (0..g)
                .map(|i| {
                    let b = step.first_row + i;
                    let spans = (i == 0).then(|| {
                        view! {
                            <td class="num" rowspan=g data-testid=format!("grpo-mean-{k}") data-v=exact(step.mean)>{num(step.mean)}</td>
                            <td class="num" rowspan=g data-testid=format!("grpo-std-{k}") data-v=exact(step.std)>{num(step.std)}</td>
                        }
                    });
                    view! {
                        <tr class:zero=step.zero_spread class:sel=move || state.row.get() == b>
                            <td class="response-pick" data-testid=format!("grpo-r-{b}") data-v=exact(step.rewards[i])
                                tabindex="0" title="show this response's tokens"
                                on:click=move |_| state.show_row(b)
                                on:keydown=move |ev| if ev.key() == "Enter" { state.show_row(b) }>
                                {format!("response {}", b + 1)}
                            </td>
                            <td class="num">{num(step.rewards[i])}</td>
                            {spans}
                            {cell(state, format!("grpo-a-{b}"), step.advantages[i])}
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <tbody data-testid=format!("grpo-group-{k}") class:zero=step.zero_spread class:picked={k == picked_group}>
                    <tr class="group-head">
                        <th colspan="5" scope="rowgroup">
                            {format!("Group {}: {}", k + 1, question(walk, step.first_row))}
                            {step.zero_spread.then_some(" · all rewards equal: A = 0, no reward signal")}
                        </th>
                    </tr>
                    {responses}
                </tbody>
            }
        })
        .collect_view();
    // The picked response, token by token.
    let step = &group.groups[picked_group];
    let i = row - step.first_row;
    let real_row = crate::explain::stage::real_len(walk, row);
    let row_disagree = comparison
        .as_ref()
        .map_or(&[][..], |c| &c.disagree[row][..]);
    let tokens = (0..real_row)
        .map(|t| {
            let differs = row_disagree.contains(&t);
            view! {
                <tr class:disagree=differs class:sel=move || state.shown_token() == Some(t)
                    data-testid=format!("grpo-tok-{t}") data-disagree=if differs { "1" } else { "0" }
                    on:click=move |_| state.pick(Some(t))>
                    <td class="num">{t}</td>
                    <td class="tokcell">{show_token(&response_token(walk, row, t))}</td>
                    {cell(state, format!("grpo-ppo-{t}"), exp.advantages[row][t])}
                    {cell(state, format!("grpo-grpo-{t}"), step.advantages[i])}
                    <td>{differs.then_some("≠ opposite signs")}</td>
                </tr>
            }
        })
        .collect_view();

    let tiny = Qwen2Config::from_json(TINY_CONFIG, "tiny/config.json").ok();
    let big = Qwen2Config::from_json(QWEN_18B, "Qwen1.5-1.8B").ok();
    let critic = tiny.zip(big).map(|(tiny, big)| {
        let (t, b) = (CriticCost::of(&tiny), CriticCost::of(&big));
        view! {
            <div class="critic-cost" data-testid="grpo-critic"
                data-head=t.shared_head_params data-separate=t.separate_critic_params data-policy=t.policy_params>
                <h4>"What the critic costs"</h4>
                <p>
                    {format!(
                        "Here PPO's critic is one Linear on the policy's trunk: {} parameters beside the policy's {} ({:.2}%), trained in the same backward pass.",
                        grouped_digits(t.shared_head_params),
                        grouped_digits(t.policy_params),
                        pct(t.shared_head_params, t.policy_params)
                    )}
                </p>
                <p>
                    {format!(
                        "Most PPO trainers (verl, OpenRLHF, TRL's PPOTrainer) keep a separate critic, commonly of the policy's size: {} more parameters for this model; for Qwen1.5-1.8B {} more, {:.1} GB of f32 weights, gradients and AdamW moments (16 bytes a parameter), and one more forward and backward pass per mini-batch.",
                        grouped_digits(t.separate_critic_params),
                        grouped_digits(b.separate_critic_params),
                        b.separate_critic_bytes() as f64 / 1e9
                    )}
                </p>
                <p>
                    {format!(
                        "GRPO has no critic. It pays with samples instead: {g} responses per prompt, so {} prompts per batch of {} responses.",
                        group.groups.len(),
                        exp.rollout.ids.len()
                    )}
                </p>
            </div>
        }
    });

    // The right column is GRPO's advantage, or Dr. GRPO's where the rewards are not divided by
    // the group's std (the `scale` setting, or a member without it).
    let right = match group.scale {
        RewardScale::Group => "GRPO",
        RewardScale::None => "Dr. GRPO",
    };
    let used = match exp.member {
        Family::Ppo => "This iteration's update used PPO's advantages (the left column).".into(),
        Family::Grpo | Family::DrGrpo => format!(
            "This iteration's update used {}'s advantages (the right column{}).",
            exp.member.name(),
            match (exp.member, group.scale) {
                (Family::Grpo, RewardScale::None) => format!(
                    ": with {} set to none they are not divided by the group's std, which makes them Dr. GRPO's",
                    crate::lab::setting_keys::label("scale")
                ),
                _ => String::new(),
            }
        ),
        member => format!(
            "This iteration's update used {}'s advantages (the family panel below shows them).",
            member.name()
        ),
    };
    let other = match exp.member {
        Family::Ppo => Family::Grpo,
        _ => Family::Ppo,
    };
    let switch = move |_| {
        state.settings.update(|s| s.algo = other);
    };
    view! {
        <section class="card grpo" data-testid="grpo-compare">
            <h3>"PPO beside GRPO on this batch"</h3>
            <p class="note" data-testid="grpo-summary" data-disagree=disagree data-real=real
                data-zero-groups=zero_groups data-zero-tokens=zero_tokens>
                {format!(
                    "{} × {g} samples. {right} gives each response one advantage, its reward against its group's; PPO's advantage changes token by token with the critic's values. They have opposite signs on {} of {} tokens ({:.0}%). {}",
                    count(group.groups.len(), "prompt", "prompts"),
                    disagree,
                    real,
                    pct(disagree, real),
                    if zero_groups == 0 {
                        format!("None of the {} has all rewards equal.", count(group.groups.len(), "group", "groups"))
                    } else {
                        format!(
                            "{zero_groups} of {} {} all rewards equal: {right} gives {} {} advantage 0. {}",
                            count(group.groups.len(), "group", "groups"),
                            agree(zero_groups, "has", "have"),
                            agree(zero_groups, "its", "their"),
                            count(zero_tokens, "token", "tokens"),
                            zero_spread_effects(right, beta, walk.update.coeffs.entropy_coeff),
                        ) + &zero_spread_member(exp.member, beta)
                    },
                )}
            </p>
            <p class="note">{used} " "
                <button data-testid="grpo-switch" on:click=switch>
                    {format!("Train the next iterations with {}", other.name())}
                </button>
            </p>
            <div class="scroll">
                <table class="numbers" data-testid="grpo-groups">
                    <caption>"Each prompt's samples: their rewards, the group's mean and sample std, and each response's advantage (click a response to show its tokens)"</caption>
                    <thead><tr>
                        <th>"response"</th><th>"reward r"</th><th>"group mean"</th><th>"group std"</th>
                        <th>{match group.scale {
                            RewardScale::Group => "A = (r − mean) / (std + ε)",
                            RewardScale::None => "A = r − mean",
                        }}</th>
                    </tr></thead>
                    {groups}
                </table>
            </div>
            <div class="formula" data-testid="grpo-formula">
                {format!("response {} (group {}, sample {}): ", row + 1, picked_group + 1, i + 1)}
                {group_advantage(step, i, group.scale)}
            </div>
            <table class="numbers" data-testid="grpo-tokens">
                <caption>{format!("Response {}: PPO's advantage of each token (as the PPO update uses it) beside {right}'s one number", row + 1)}</caption>
                <thead><tr><th>"t"</th><th>"token"</th><th>"PPO Â_t"</th><th data-testid="grpo-right">{format!("{right} A")}</th><th></th></tr></thead>
                <tbody>{tokens}</tbody>
            </table>
            {critic}
        </section>
    }
    .into_any()
}

/// What the member that trained did with a group whose rewards are all equal, where it differs
/// from the right column's objective (empty where it does not).
fn zero_spread_member(member: Family, beta: f32) -> String {
    let name = member.name();
    // What RLOO and REINFORCE compare: the score less the `beta` setting times the response's
    // summed log-ratio to the reference (not the Score stage's β and KL_t).
    let penalised = format!(
        "each score less β·Σ(log π_old − log π_ref), β = {}",
        num(beta)
    );
    match member {
        Family::Dapo => format!(
            " This iteration trained {name}, whose dynamic sampling leaves such groups out of the update: nothing acts on their tokens."
        ),
        Family::Rloo => format!(
            " This iteration trained {name}: {penalised}, is compared with the mean of the group's others, so a response's advantage here is 0 only where its β·Σ equals the mean of the others' (all are 0 when every response's β·Σ is the same; the family panel below shows them)."
        ),
        Family::Reinforce => format!(
            " This iteration trained {name}, which compares {penalised}, with the whole batch's mean, not the group's: these responses' advantages are 0 only where that equals the batch's mean (the family panel below shows them)."
        ),
        _ => String::new(),
    }
}
