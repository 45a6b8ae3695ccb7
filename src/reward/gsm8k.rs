//! The GSM8K reward: 1.0 when the response's final answer equals the reference, 0.1 when the
//! response gives an answer in the right format (`#### <number>`) but the wrong number, 0.0 when
//! it gives no answer in that format.
//!
//! The small reward for the format is shaping: early in training almost no answer is right, and
//! without it the reward would be all zeros, with nothing for the policy to climb.
//!
//! A response cut off by `max_new_tokens` is judged on the text it has, like a finished one: a
//! number cut short reads as the digits that were written.

/// Reward for a correct final answer.
pub const CORRECT: f32 = 1.0;
/// Reward for an answer in the `#### <number>` format with the wrong number.
pub const FORMAT_ONLY: f32 = 0.1;

/// How a response was judged (the page shows this beside the number).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GsmScore {
    /// The final answer equals the reference.
    Correct { answer: String },
    /// `#### <number>` is there, but the number is not the reference.
    WrongNumber { answer: String, expected: String },
    /// No `#### <number>` in the response.
    NoAnswer,
}

impl GsmScore {
    pub fn reward(&self) -> f32 {
        match self {
            Self::Correct { .. } => CORRECT,
            Self::WrongNumber { .. } => FORMAT_ONLY,
            Self::NoAnswer => 0.0,
        }
    }
}

/// A number written the way people write answers, reduced to one canonical form: a `$` before
/// the digits or the sign, a leading `+`, commas between groups of three digits, a trailing `.`
/// and trailing fractional zeros go; `-0` is `0`. `"1,234.50"` -> `"1234.5"`, `"$-7.0"` ->
/// `"-7"`. `None` when it is not a number, and for a comma or `$` anywhere else (`"7,2"`,
/// `"1$2"`), which would otherwise read as another number.
pub fn normalize_number(text: &str) -> Option<String> {
    let s = text.trim();
    // One `$`, before the sign or after it.
    let (dollar, s) = s.strip_prefix('$').map_or((false, s), |rest| (true, rest));
    let (negative, s) = match s.strip_prefix('-').or_else(|| s.strip_prefix('\u{2212}')) {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let s = if dollar {
        s
    } else {
        s.strip_prefix('$').unwrap_or(s)
    };
    let s = s.trim_end_matches('.');
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // Thousands commas: every group after the first has exactly three digits.
    let groups: Vec<&str> = int.split(',').collect();
    let grouped = groups.len() == 1
        || (!groups[0].is_empty()
            && groups[0].len() <= 3
            && groups[1..].iter().all(|g| g.len() == 3));
    let int = groups.concat();
    if !grouped
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if negative && out != "0" {
        out.insert(0, '-');
    }
    Some(out)
}

/// The number after the last `####` in `text`, normalised; `None` without one.
/// The number is the first whitespace-separated word there, so `#### 42 apples` reads 42.
pub fn extract_answer(text: &str) -> Option<String> {
    let (_, after) = text.rsplit_once("####")?;
    let word = after.split_whitespace().next()?;
    normalize_number(word)
}

/// Judge `response` against a GSM8K `answer` field (worked solution ending in `#### N`) or a
/// bare reference number.
pub fn gsm8k_reward(response: &str, reference: &str) -> GsmScore {
    let expected = extract_answer(reference).or_else(|| normalize_number(reference));
    match (extract_answer(response), expected) {
        (None, _) => GsmScore::NoAnswer,
        (Some(answer), Some(expected)) if answer == expected => GsmScore::Correct { answer },
        // A reference without a readable number (the loaders refuse one) matches no answer;
        // the page shows it as given.
        (Some(answer), expected) => GsmScore::WrongNumber {
            answer,
            expected: expected.unwrap_or_else(|| reference.trim().to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        for (raw, want) in [
            ("1,234", "1234"),
            ("1,234.50", "1234.5"),
            ("+7", "7"),
            ("$18", "18"),
            ("18.0", "18"),
            ("18.", "18"),
            ("-0", "0"),
            ("-3.00", "-3"),
            ("007", "7"),
            (".5", "0.5"),
            ("0", "0"),
        ] {
            assert_eq!(normalize_number(raw).as_deref(), Some(want), "{raw}");
        }
        for (raw, want) in [
            ("-$7", "-7"),
            ("12,345,678", "12345678"),
            ("-1,000.0", "-1000"),
        ] {
            assert_eq!(normalize_number(raw).as_deref(), Some(want), "{raw}");
        }
        // A comma or `$` that is not a thousands comma or a leading `$` is not a number.
        for raw in [
            "", "abc", "1.2.3", "12a", "-", ".", "7,2", "1,2,3", ",123", "1,234,5", "1$2", "12$",
            "1.2,345", "$$7", "-$-7",
        ] {
            assert_eq!(normalize_number(raw), None, "{raw}");
        }
    }

    #[test]
    fn rewards_follow_the_tutorial() {
        let reference = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72";
        assert_eq!(
            gsm8k_reward("48 + 24 = 72\n#### 72", reference).reward(),
            1.0
        );
        assert_eq!(gsm8k_reward("so #### 72.0", reference).reward(), 1.0);
        assert_eq!(gsm8k_reward("#### 1,000", "#### 1000").reward(), 1.0);
        assert_eq!(gsm8k_reward("#### 71", reference).reward(), 0.1);
        assert_eq!(
            gsm8k_reward("#### 71", reference),
            GsmScore::WrongNumber {
                answer: "71".into(),
                expected: "72".into()
            }
        );
        assert_eq!(gsm8k_reward("The answer is 72.", reference).reward(), 0.0);
        assert_eq!(gsm8k_reward("#### seventy-two", reference).reward(), 0.0);
        // The last #### counts.
        assert_eq!(
            gsm8k_reward("#### 5 no wait #### 72", reference).reward(),
            1.0
        );
        // A bare reference number works too.
        assert_eq!(gsm8k_reward("#### -4", "-4").reward(), 1.0);
        // A comma that is not a thousands comma does not make 72 of "7,2".
        assert_eq!(gsm8k_reward("#### 7,2", reference), GsmScore::NoAnswer);
        // A reference without a number matches no answer, and is shown as given.
        assert_eq!(
            gsm8k_reward("#### 5", " no number "),
            GsmScore::WrongNumber {
                answer: "5".into(),
                expected: "no number".into()
            }
        );
    }
}
