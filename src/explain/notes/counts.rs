//! Notes whose sentence depends on a count alone, kept apart so that each case can be tested
//! on its own.

use crate::explain::format::{agree, count};
use crate::ppo::family::Family;

/// The GAE stage's note on how many of the batch's `real` tokens whitening leaves with Â > 0
/// (`up` of them); `equal`: the raw advantages were all equal, so whitening had no spread to
/// work with. Only PPO's update uses these advantages: under another member it says what PPO
/// would do.
pub fn pushed_up(up: usize, real: usize, equal: bool, member: Family) -> String {
    let ppo = member == Family::Ppo;
    let instead = if ppo {
        String::new()
    } else {
        format!(
            " ({}'s update used its own advantages instead)",
            member.name()
        )
    };
    let tokens = count(real, "token", "tokens");
    if equal {
        // Every A_t minus their mean is 0 but for the mean's rounding: nothing is pushed.
        let verb = if ppo { "pushes" } else { "would push" };
        return format!(
            "The batch's {tokens} all have the same advantage, so there was no spread to whiten: \
             every Â is 0 but for rounding, and PPO {verb} no token up or down{instead}."
        );
    }
    let pushed = if ppo {
        format!("{} pushed up (Â > 0)", agree(up, "is", "are"))
    } else {
        format!(
            "{} Â > 0, so PPO would push {} up{instead}",
            agree(up, "has", "have"),
            agree(up, "it", "them"),
        )
    };
    if 2 * up == real {
        // Exactly half: the count alone cannot show mean and median apart.
        format!(
            "After whitening the batch's advantages have mean 0, and {up} of its {tokens} \
             {pushed}: exactly half."
        )
    } else {
        format!(
            "After whitening the batch's advantages have mean 0, but {up} of its {tokens} \
             {pushed}: mean 0 is not median 0, and sparse end-of-response scores make the \
             spread lopsided."
        )
    }
}
