//! Which token a question asks about: a deterministic choice that changes with the iteration
//! and the row, balanced between "yes" and "no" answers where both exist; and the token as the
//! question quotes it.

use super::question::Kind;
use crate::explain::format::show_token;
use crate::lab::walkthrough::Walkthrough;

/// The text of token `t` of response `row`, quoted.
pub(super) fn token(walk: &Walkthrough, row: usize, t: usize) -> String {
    let prompt_len = walk.experience.rollout.prompt_len;
    let text = walk
        .tokens
        .get(row)
        .and_then(|r| r.get(prompt_len + t))
        .map_or("", String::as_str);
    format!("“{}”", show_token(text))
}

/// A deterministic pick among `n` candidates that changes with the iteration and the row, so
/// the next batch asks about another token.
pub(super) fn pick(n: usize, iteration: usize, row: usize, kind: Kind) -> usize {
    let salt = Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0) as u64;
    let mut x = (iteration as u64) << 32 ^ (row as u64) << 8 ^ salt;
    // splitmix64's finaliser.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % n.max(1) as u64) as usize
}

/// Chooses among `candidates` where the answer is "yes" (`yes`) and "no" (the rest): half the
/// iterations a yes, half a no, whenever both exist, so guessing one answer always is no help.
pub(super) fn pick_balanced(
    yes: &[usize],
    no: &[usize],
    iteration: usize,
    row: usize,
    kind: Kind,
) -> Option<usize> {
    let r = pick(1 << 16, iteration, row, kind);
    let pool = match (yes.is_empty(), no.is_empty()) {
        (true, true) => return None,
        (false, true) => yes,
        (true, false) => no,
        (false, false) if r % 2 == 0 => yes,
        (false, false) => no,
    };
    Some(pool[(r >> 1) % pool.len()])
}
