//! Which key a config error is about, to name the override or the file that set it.

/// Whether `message` names the key path `key` or a key inside it: `ppo.kl` is not named by
/// `ppo.kl_coeff` nor by `x.ppo.kl`, and `ppo.adaptive_kl` is by `ppo.adaptive_kl.target`.
/// Not by the keys serde lists after the one it is about: "unknown field `foo`, expected one of
/// `model`, ..., `algorithm`" names `foo`, not `algorithm`.
/// (Every message this file's callers see names its key before any ", expected": serde_yaml's
/// start with the key path, and `validate`'s are "key `…` rule, found …".)
pub(super) fn names_key(message: &str, key: &str) -> bool {
    let message = message.split(", expected").next().unwrap_or(message);
    let part = |c: char| c.is_alphanumeric() || c == '_';
    !key.is_empty()
        && message.match_indices(key).any(|(i, _)| {
            let before = message[..i].chars().next_back();
            let after = message[i + key.len()..].chars().next();
            !before.is_some_and(|c| part(c) || c == '.') && !after.is_some_and(part)
        })
}

/// The key path of serde's "ppo: unknown field `clip_ratoi`" (`ppo.clip_ratoi`), or of a
/// top-level "unknown field `foo`" (`foo`).
pub(super) fn unknown_field(message: &str) -> Option<String> {
    let (path, rest) = match message.split_once(": unknown field `") {
        Some((path, rest)) => (Some(path), rest),
        None => (None, message.strip_prefix("unknown field `")?),
    };
    let field = rest.split('`').next()?;
    Some(path.map_or_else(|| field.to_string(), |p| format!("{p}.{field}")))
}

/// serde_yaml appends " at line L column C" of the merged text, which is not the user's file.
pub(super) fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
