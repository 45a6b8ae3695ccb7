//! Exercise 3: the entropy of the policy at each response position.
//!
//! Inputs: `logits` `[B, T, V]` (one row of V vocabulary scores per response token, already
//! divided by the sampling temperature) and `response_mask` `[B, T]`.
//!
//! Write the mean entropy over the real tokens, a one-element tensor:
//! ```text
//! H(z) = -sum_i p_i * log p_i,   p = softmax(z)
//!      = logsumexp(z) - sum_i p_i * z_i        (the same, and stable)
//! entropy = masked_mean(H, response_mask)
//! ```
//! Use the second form: `log p_i` of a tiny probability is -inf in f32, and 0 * -inf is NaN.
//! `logsumexp` must take the maximum out first: exp(1000) overflows.
//!
//! Useful: `burn::tensor::activation::softmax(z, 2)`, `sum_dim(2)` (keeps the dimension, size
//! 1), `squeeze_dim::<2>(2)`, `crate::ppo::entropy::logsumexp`, `crate::ppo::masked_mean`.
//!
//! The loss subtracts `entropy_coeff * entropy`: a small push against collapsing onto one token.
//!
//! Check it: `cargo test --features exercises --test exercises ex3`.
//! The solution is `src/ppo/entropy.rs`.

use burn::tensor::Tensor;

use crate::exercises::Todo;

pub fn masked_entropy(logits: Tensor<3>, response_mask: Tensor<2>) -> Result<Tensor<1>, Todo> {
    // Replace these two lines with your code, ending in Ok(entropy)
    let _ = (logits, response_mask);
    Err(Todo::new(3))
}
