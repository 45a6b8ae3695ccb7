//! GSM-mini: seeded arithmetic word problems in GSM8K's format, so that everything runs with no
//! download. Small numbers and a handful of templates: a tiny model can learn them, and the
//! worked answers use GSM8K's `<<a+b=c>>` calculator notes and its `#### N` ending.

use super::gsm8k::Problem;
use crate::rng::Rng;

const NAMES: [(&str, &str); 8] = [
    ("Tom", "he"),
    ("Ana", "she"),
    ("Sam", "he"),
    ("Mia", "she"),
    ("Leo", "he"),
    ("Zoe", "she"),
    ("Max", "he"),
    ("Ivy", "she"),
];
const ITEMS: [&str; 6] = ["apples", "pens", "books", "coins", "cards", "eggs"];

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// One problem from `rng`.
pub fn gsm_mini_problem(rng: &mut Rng) -> Problem {
    let (name, he) = NAMES[rng.below(NAMES.len())];
    let item = ITEMS[rng.below(ITEMS.len())];
    let (question, work, result) = match rng.below(4) {
        0 => {
            let (a, b) = (2 + rng.below(9), 1 + rng.below(9));
            (
                format!(
                    "{name} has {a} {item}. {} buys {b} more. How many {item} does {he} have now?",
                    capitalize(he)
                ),
                format!(
                    "{name} has {a} + {b} = <<{a}+{b}={}>>{} {item}.",
                    a + b,
                    a + b
                ),
                (a + b) as i64,
            )
        }
        1 => {
            let a = 5 + rng.below(15);
            let b = 1 + rng.below(a - 1);
            (
                format!(
                    "{name} has {a} {item}. {} gives away {b}. How many {item} are left?",
                    capitalize(he)
                ),
                format!(
                    "{name} has {a} - {b} = <<{a}-{b}={}>>{} {item} left.",
                    a - b,
                    a - b
                ),
                (a - b) as i64,
            )
        }
        2 => {
            let (a, b) = (2 + rng.below(5), 2 + rng.below(5));
            (
                format!(
                    "{name} buys {a} boxes with {b} {item} each. How many {item} does {he} buy?"
                ),
                format!(
                    "{name} buys {a} * {b} = <<{a}*{b}={}>>{} {item}.",
                    a * b,
                    a * b
                ),
                (a * b) as i64,
            )
        }
        _ => {
            let (a, b, c) = (3 + rng.below(8), 1 + rng.below(6), 1 + rng.below(3));
            (
                format!(
                    "{name} has {a} {item} and finds {b} more. Then {he} loses {c}. How many {item} does {he} have?"
                ),
                format!(
                    "{name} has {a} + {b} = <<{a}+{b}={}>>{} {item}. After losing {c}, {he} has {} - {c} = <<{}-{c}={}>>{} {item}.",
                    a + b,
                    a + b,
                    a + b,
                    a + b,
                    a + b - c,
                    a + b - c
                ),
                (a + b - c) as i64,
            )
        }
    };
    Problem {
        question,
        answer: format!("{work}\n#### {result}"),
    }
}

/// `n` problems from `seed`: the same seed gives the same problems on every platform.
pub fn gsm_mini(n: usize, seed: u64) -> Vec<Problem> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| gsm_mini_problem(&mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recompute every `<<expr=value>>` note and the final answer from the question's numbers:
    /// the first note combines the question's first two numbers, each later one the note before
    /// it and the question's next number, and every number is used.
    fn check(problem: &Problem) {
        let numbers: Vec<i64> = (problem.question)
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().unwrap())
            .collect();
        let mut rest = problem.answer.as_str();
        let mut last = None;
        let mut notes = 0;
        while let Some(start) = rest.find("<<") {
            let end = rest[start..].find(">>").unwrap() + start;
            let (expr, value) = rest[start + 2..end].split_once('=').unwrap();
            let op = expr.find(['+', '-', '*']).unwrap();
            let (l, r): (i64, i64) = (expr[..op].parse().unwrap(), expr[op + 1..].parse().unwrap());
            let want = match &expr[op..op + 1] {
                "+" => l + r,
                "-" => l - r,
                _ => l * r,
            };
            assert_eq!(value.parse::<i64>().unwrap(), want, "{}", problem.answer);
            let left = last.unwrap_or(numbers[0]);
            assert_eq!((l, r), (left, numbers[notes + 1]), "{problem:?}");
            notes += 1;
            last = Some(want);
            rest = &rest[end + 2..];
        }
        assert_eq!(
            problem.final_answer(),
            last.map(|v| v.to_string()),
            "{}",
            problem.answer
        );
        assert_eq!(notes + 1, numbers.len(), "{problem:?}");
        assert!(last.unwrap() >= 1);
        assert!(problem.question.ends_with('?'));
    }

    #[test]
    fn problems_are_correct_and_seeded() {
        let a = gsm_mini(500, 3);
        a.iter().for_each(check);
        assert_eq!(a, gsm_mini(500, 3));
        assert_ne!(a, gsm_mini(500, 4));
        // Every template appears.
        for word in ["more. How many", "gives away", "boxes", "loses"] {
            assert!(a.iter().any(|p| p.question.contains(word)), "{word}");
        }
    }
}
