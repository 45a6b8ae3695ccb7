//! PPO beside GRPO, computed: what still acts on a group whose rewards are all equal, the two
//! algorithms' advantages on one batch, and what a separate critic would cost.

use crate::ppo::iteration::Experience;

/// What still acts on the tokens of a GRPO group whose rewards are all equal: their advantage
/// is 0, so the clipped surrogate gives them no gradient (no reward signal), but the k3 KL term
/// (when `beta > 0`) and the entropy bonus (when its coefficient is > 0) do, and the tokens count
/// in the aggregation's denominator either way. `tests/verdicts.rs` checks the KL half against
/// the gradient of [`grpo_loss`](crate::ppo::grpo_loss::grpo_loss).
/// `objective` names the objective that gives them 0 (GRPO or Dr. GRPO), which may not be the
/// one that trained the batch.
pub fn zero_spread_effects(objective: &str, beta: f32, entropy_coeff: f32) -> String {
    let acting = match (beta > 0.0, entropy_coeff > 0.0) {
        (true, true) => format!(
            "the KL term (β = {}) and the entropy bonus still act on them",
            crate::explain::format::num(beta)
        ),
        (true, false) => format!(
            "the KL term (β = {}) still acts on them",
            crate::explain::format::num(beta)
        ),
        (false, true) => "with β = 0 only the entropy bonus still acts on them".to_string(),
        (false, false) => "with β = 0 and no entropy bonus nothing else acts on them".to_string(),
    };
    format!(
        "Under {objective}, no reward signal reaches them: {acting}, and they still count in the \
         loss's average."
    )
}

/// PPO's and GRPO's advantages on the same batch, token by token (what the comparison view
/// shows and counts).
#[derive(Clone, Debug, PartialEq)]
pub struct AdvantageComparison {
    /// Per row: the tokens where PPO's advantage (as the update uses it) and GRPO's have
    /// opposite signs.
    pub disagree: Vec<Vec<usize>>,
    /// Real tokens in the batch, and those in groups whose rewards are all equal (GRPO gives
    /// them 0: no reward signal, though GRPO's KL term and the entropy bonus still act on them).
    pub real_tokens: usize,
    pub zero_tokens: usize,
    /// Groups whose rewards are all equal.
    pub zero_groups: Vec<usize>,
}

impl AdvantageComparison {
    pub fn disagree_total(&self) -> usize {
        self.disagree.iter().map(Vec::len).sum()
    }
}

/// Compares `experience`'s PPO advantages with its GRPO ones (None without groups).
pub fn compare_advantages(experience: &Experience) -> Option<AdvantageComparison> {
    let group = experience.group.as_ref()?;
    // GRPO's one advantage per response, from the group trace (the experience's critic-free
    // advantages are another member's when it trained with one).
    let grpo = group.advantages();
    let mask = &experience.rollout.response_mask;
    let mut comparison = AdvantageComparison {
        disagree: Vec::with_capacity(mask.len()),
        real_tokens: 0,
        zero_tokens: 0,
        zero_groups: (0..group.groups.len())
            .filter(|&g| group.groups[g].zero_spread)
            .collect(),
    };
    for (b, m) in mask.iter().enumerate() {
        let real = crate::ppo::real_len(m);
        let zero = group.groups[group.group_of(b)].zero_spread;
        comparison.real_tokens += real;
        comparison.zero_tokens += if zero { real } else { 0 };
        comparison.disagree.push(
            (0..real)
                .filter(|&t| experience.advantages[b][t] * grpo[b] < 0.0)
                .collect(),
        );
    }
    Some(comparison)
}

/// What a critic costs beside the policy, for a model of `config`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CriticCost {
    /// The policy: trunk and LM head.
    pub policy_params: usize,
    /// This project's critic: one Linear on the policy's trunk (`hidden_size + 1`).
    pub shared_head_params: usize,
    /// A separate critic of the policy's size (verl and OpenRLHF's layout): its trunk plus a
    /// scalar head, without the LM head.
    pub separate_critic_params: usize,
}

impl CriticCost {
    pub fn of(config: &crate::model::Qwen2Config) -> Self {
        let d = config.hidden_size;
        let policy = config.num_parameters();
        let lm_head = if config.tie_word_embeddings {
            0
        } else {
            config.vocab_size * d
        };
        Self {
            policy_params: policy,
            shared_head_params: d + 1,
            separate_critic_params: policy - lm_head + d + 1,
        }
    }

    /// The bytes a separate critic adds in f32 training: per parameter its weight and its
    /// gradient (4 bytes each) and AdamW's two moments (8), 16 bytes in all.
    pub fn separate_critic_bytes(&self) -> usize {
        self.separate_critic_params * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_separate_critic_doubles_the_model_and_the_shared_head_is_tiny() {
        let tiny =
            crate::model::Qwen2Config::from_json(crate::lab::run::TINY_CONFIG, "tiny").unwrap();
        let c = CriticCost::of(&tiny);
        assert_eq!(c.shared_head_params, tiny.hidden_size + 1);
        assert_eq!(c.policy_params, tiny.num_parameters());
        // Tied embeddings: the critic keeps the embedding table, so it is the policy plus a head.
        assert!(tiny.tie_word_embeddings);
        assert_eq!(
            c.separate_critic_params,
            c.policy_params + tiny.hidden_size + 1
        );
    }

    #[test]
    fn what_acts_on_a_group_with_equal_rewards_follows_beta_and_the_entropy_bonus() {
        let under = "Under GRPO, no reward signal reaches them: ";
        let tail = ", and they still count in the loss's average.";
        for (beta, entropy, acting) in [
            (
                0.04,
                0.01,
                "the KL term (β = 0.040) and the entropy bonus still act on them",
            ),
            (0.04, 0.0, "the KL term (β = 0.040) still acts on them"),
            (
                0.0,
                0.01,
                "with β = 0 only the entropy bonus still acts on them",
            ),
            (
                0.0,
                0.0,
                "with β = 0 and no entropy bonus nothing else acts on them",
            ),
        ] {
            assert_eq!(
                zero_spread_effects("GRPO", beta, entropy),
                format!("{under}{acting}{tail}")
            );
        }
        assert!(zero_spread_effects("Dr. GRPO", 0.0, 0.0).starts_with("Under Dr. GRPO, "));
    }
}
