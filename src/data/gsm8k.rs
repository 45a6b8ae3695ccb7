//! GSM8K's jsonl format: one `{"question": ..., "answer": ...}` object per line, the answer a
//! worked solution ending in `#### <number>`.

use serde_json::Value;

use crate::reward::extract_answer;

/// One math word problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub question: String,
    /// The worked solution, ending in `#### <number>` (the number right after the last `####` is
    /// the final answer).
    pub answer: String,
}

impl Problem {
    /// The normalised final number of the answer.
    pub fn final_answer(&self) -> Option<String> {
        extract_answer(&self.answer)
    }
}

/// Parse GSM8K jsonl text; `file` names it in errors, which give the line and the key. Blank
/// lines are skipped; other keys are refused so that a wrong file is noticed.
pub fn parse_gsm8k_jsonl(text: &str, file: &str) -> Result<Vec<Problem>, String> {
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("{file}:{n}: not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!(
                "{file}:{n}: each line must be a JSON object with \"question\" and \"answer\""
            ));
        };
        if let Some(key) = map.keys().find(|k| *k != "question" && *k != "answer") {
            return Err(format!(
                "{file}:{n}: unknown key `{key}` (expected \"question\" and \"answer\")"
            ));
        }
        let field = |key: &str| -> Result<String, String> {
            match map.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(Value::String(_)) => Err(format!("{file}:{n}: key `{key}` is empty")),
                Some(other) => Err(format!(
                    "{file}:{n}: key `{key}` must be a string, found {other}"
                )),
                None => Err(format!("{file}:{n}: key `{key}` is missing")),
            }
        };
        let problem = Problem {
            question: field("question")?,
            answer: field("answer")?,
        };
        if problem.final_answer().is_none() {
            return Err(format!(
                "{file}:{n}: key `answer` has no number right after its last `####`"
            ));
        }
        problems.push(problem);
    }
    if problems.is_empty() {
        return Err(format!("{file}: no problems (the file is empty)"));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gsm8k_lines() {
        let text = concat!(
            r#"{"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"}"#,
            "\n\n",
            r#"{"question": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?", "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts of fabric\n#### 3"}"#,
            "\n"
        );
        let problems = parse_gsm8k_jsonl(text, "train.jsonl").unwrap();
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].final_answer().as_deref(), Some("72"));
        assert_eq!(problems[1].final_answer().as_deref(), Some("3"));
    }

    #[test]
    fn bad_lines_name_the_line_and_key() {
        let err = |text: &str| parse_gsm8k_jsonl(text, "g.jsonl").unwrap_err();
        assert_eq!(
            err("{\"question\": \"q\"}"),
            "g.jsonl:1: key `answer` is missing"
        );
        assert!(
            err("{\"question\": \"q\", \"answer\": \"#### 1\"}\nnope")
                .starts_with("g.jsonl:2: not valid JSON")
        );
        assert_eq!(
            err("{\"question\": 3, \"answer\": \"#### 1\"}"),
            "g.jsonl:1: key `question` must be a string, found 3"
        );
        assert_eq!(
            err("{\"question\": \"q\", \"answer\": \"#### 1\", \"id\": 5}"),
            "g.jsonl:1: unknown key `id` (expected \"question\" and \"answer\")"
        );
        assert_eq!(
            err("{\"question\": \"q\", \"answer\": \"72\"}"),
            "g.jsonl:1: key `answer` has no number right after its last `####`"
        );
        assert_eq!(err(""), "g.jsonl: no problems (the file is empty)");
    }
}
