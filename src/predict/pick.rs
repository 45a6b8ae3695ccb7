//! Which token a question asks about: a deterministic choice that changes with the iteration
//! and the row, balanced between "yes" and "no" answers where both exist.

use super::question::Kind;

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
