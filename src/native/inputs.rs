//! Reading the JSON files students hand to `ppo-lens gae` and `ppo-lens losses`.
//!
//! Every error names the file and the key, and the position inside it (`rewards[1][2]`), and
//! says what was expected. Unknown keys are refused, so a typo such as `lamda` cannot silently
//! fall back to a default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// A parsed input file and the keys it may hold.
pub struct InputFile {
    path: PathBuf,
    object: Map<String, Value>,
}

/// Rows of numbers, `[B][T]`.
pub type Rows = Vec<Vec<f32>>;

impl InputFile {
    /// Reads `path` as a JSON object whose keys all appear in `allowed`.
    pub fn read(path: &Path, allowed: &[&str]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read input file {}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let Value::Object(object) = value else {
            bail!(
                "{}: expected a JSON object with keys {}",
                path.display(),
                allowed.join(", ")
            );
        };
        for key in object.keys() {
            if !allowed.contains(&key.as_str()) {
                bail!(
                    "{}: unknown key `{key}` (expected some of: {})",
                    path.display(),
                    allowed.join(", ")
                );
            }
        }
        Ok(InputFile {
            path: path.to_path_buf(),
            object,
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {message}", self.path.display())
    }

    fn get(&self, key: &str) -> Result<&Value> {
        self.object
            .get(key)
            .ok_or_else(|| self.error(format!("missing key `{key}`")))
    }

    /// A finite number.
    pub fn number(&self, key: &str) -> Result<f32> {
        self.as_f32(self.get(key)?, key)
    }

    fn as_f32(&self, value: &Value, at: &str) -> Result<f32> {
        let Some(number) = value.as_f64() else {
            return Err(self.error(format!("`{at}` is {}, expected a number", describe(value))));
        };
        let number = number as f32;
        if !number.is_finite() {
            return Err(self.error(format!("`{at}` = {value} does not fit in an f32")));
        }
        Ok(number)
    }

    /// A `[B][T]` array of numbers: at least one row, rows non-empty and all the same length.
    pub fn rows(&self, key: &str) -> Result<Rows> {
        let value = self.get(key)?;
        let rows = self.array(value, key)?;
        if rows.is_empty() {
            return Err(self.error(format!("`{key}` has no rows")));
        }
        let mut out: Rows = Vec::with_capacity(rows.len());
        for (b, row) in rows.iter().enumerate() {
            let at = format!("{key}[{b}]");
            let items = self.array(row, &at)?;
            if items.is_empty() {
                return Err(self.error(format!("`{at}` is empty")));
            }
            if let Some(first) = out.first()
                && first.len() != items.len()
            {
                return Err(self.error(format!(
                    "`{at}` has {} entries but `{key}[0]` has {}; rows must all be the same length",
                    items.len(),
                    first.len()
                )));
            }
            let row = items
                .iter()
                .enumerate()
                .map(|(t, v)| self.as_f32(v, &format!("{at}[{t}]")))
                .collect::<Result<Vec<f32>>>()?;
            out.push(row);
        }
        Ok(out)
    }

    /// `[B][T]` rows with the same shape as `like` (named `like_key` in errors).
    pub fn rows_like(&self, key: &str, like: &Rows, like_key: &str) -> Result<Rows> {
        let rows = self.rows(key)?;
        self.same_shape(&rows, key, like, like_key)?;
        Ok(rows)
    }

    pub fn same_shape(&self, rows: &Rows, key: &str, like: &Rows, like_key: &str) -> Result<()> {
        if rows.len() != like.len() || rows[0].len() != like[0].len() {
            return Err(self.error(format!(
                "`{key}` is [{}][{}] but `{like_key}` is [{}][{}]; they must have the same shape",
                rows.len(),
                rows[0].len(),
                like.len(),
                like[0].len()
            )));
        }
        Ok(())
    }

    /// The response mask: optional (all ones when absent), same shape as `like`, each row 1 on
    /// real tokens and 0 on padding after them.
    pub fn mask(&self, key: &str, like: &Rows, like_key: &str) -> Result<Rows> {
        if !self.object.contains_key(key) {
            return Ok(like.iter().map(|row| vec![1.0; row.len()]).collect());
        }
        let mask = self.rows_like(key, like, like_key)?;
        for (b, row) in mask.iter().enumerate() {
            crate::ppo::check_suffix_mask(row, &format!("{key}[{b}]"))
                .map_err(|err| self.error(err))?;
        }
        Ok(mask)
    }

    /// An optional `[B][T][V]` array (logits) matching `like` in its first two dimensions.
    pub fn optional_cube(
        &self,
        key: &str,
        like: &Rows,
        like_key: &str,
    ) -> Result<Option<Vec<Rows>>> {
        let Some(value) = self.object.get(key) else {
            return Ok(None);
        };
        if value.is_null() {
            return Ok(None);
        }
        let batches = self.array(value, key)?;
        if batches.len() != like.len() {
            return Err(self.error(format!(
                "`{key}` has {} rows but `{like_key}` has {}",
                batches.len(),
                like.len()
            )));
        }
        let mut out = Vec::with_capacity(batches.len());
        let mut vocab = None;
        for (b, batch) in batches.iter().enumerate() {
            let positions = self.array(batch, &format!("{key}[{b}]"))?;
            if positions.len() != like[0].len() {
                return Err(self.error(format!(
                    "`{key}[{b}]` has {} positions but `{like_key}[{b}]` has {}",
                    positions.len(),
                    like[0].len()
                )));
            }
            let mut rows = Vec::with_capacity(positions.len());
            for (t, position) in positions.iter().enumerate() {
                let at = format!("{key}[{b}][{t}]");
                let items = self.array(position, &at)?;
                let expected = *vocab.get_or_insert(items.len());
                if items.is_empty() || items.len() != expected {
                    return Err(self.error(format!(
                        "`{at}` has {} logits, expected {expected} (one per vocabulary entry, at least one)",
                        items.len()
                    )));
                }
                let row = items
                    .iter()
                    .enumerate()
                    .map(|(v, x)| self.as_f32(x, &format!("{at}[{v}]")))
                    .collect::<Result<Vec<f32>>>()?;
                rows.push(row);
            }
            out.push(rows);
        }
        Ok(Some(out))
    }

    fn array<'v>(&self, value: &'v Value, at: &str) -> Result<&'v Vec<Value>> {
        value
            .as_array()
            .ok_or_else(|| self.error(format!("`{at}` is {}, expected an array", describe(value))))
    }

    /// Fails unless `lo <= key <= hi` (or `lo < key` when `open_low`).
    pub fn number_in(&self, key: &str, lo: f32, hi: f32, open_low: bool) -> Result<f32> {
        let value = self.number(key)?;
        let low_ok = if open_low { value > lo } else { value >= lo };
        if !low_ok || value > hi {
            let low = if open_low { "(" } else { "[" };
            let high = if hi.is_infinite() {
                "inf)".to_string()
            } else {
                format!("{hi}]")
            };
            return Err(self.error(format!("`{key}` = {value} is outside {low}{lo}, {high}")));
        }
        Ok(value)
    }

    /// Fails unless the masks hold at least `min` real tokens in all.
    pub fn require_real_tokens(&self, mask: &Rows, key: &str, min: usize, why: &str) -> Result<()> {
        let count = mask.iter().flatten().filter(|&&m| m == 1.0).count();
        if count < min {
            return Err(self.error(format!(
                "`{key}` has {count} real token(s); {why} needs at least {min}"
            )));
        }
        Ok(())
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
