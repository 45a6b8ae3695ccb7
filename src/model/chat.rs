//! Qwen's chat template (ChatML), rendered as text:
//! `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n` when
//! the model is to answer. Like Qwen1.5's own template, a conversation that does not start with a
//! system message gets the default one.

/// Who says a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// Qwen1.5's default system message.
pub const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// The instruction appended to every GSM8K question: it asks for the answer in the format the
/// reward function reads (`#### <number>`, as GSM8K's own answers end).
pub const GSM8K_INSTRUCTION: &str =
    "Solve the problem step by step, then give the final answer on its own line as #### <number>.";

/// Render messages with the chat template; with `add_generation_prompt`, end with the
/// assistant's header so that the model's next tokens are its answer.
pub fn render_chat(messages: &[(Role, &str)], add_generation_prompt: bool) -> String {
    let mut text = String::new();
    if messages.first().map(|(role, _)| *role) != Some(Role::System) {
        push(&mut text, Role::System, DEFAULT_SYSTEM);
    }
    for (role, content) in messages {
        push(&mut text, *role, content);
    }
    if add_generation_prompt {
        text.push_str("<|im_start|>assistant\n");
    }
    text
}

fn push(text: &mut String, role: Role, content: &str) {
    text.push_str("<|im_start|>");
    text.push_str(role.as_str());
    text.push('\n');
    text.push_str(content);
    text.push_str("<|im_end|>\n");
}

/// The prompt for one GSM8K question: system, user (question + instruction), assistant header.
pub fn gsm8k_prompt(question: &str) -> String {
    let user = format!("{}\n{}", question.trim(), GSM8K_INSTRUCTION);
    render_chat(&[(Role::User, &user)], true)
}

/// The content of the last user message in a rendered chat, if it has one.
pub fn last_user_message(text: &str) -> Option<&str> {
    let header = "<|im_start|>user\n";
    let rest = &text[text.rfind(header)? + header.len()..];
    Some(rest.find("<|im_end|>").map_or(rest, |end| &rest[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_found_in_a_rendered_chat() {
        let text = gsm8k_prompt("Tom has 3 apples.");
        assert_eq!(
            last_user_message(&text),
            Some(format!("Tom has 3 apples.\n{GSM8K_INSTRUCTION}").as_str())
        );
        let two = render_chat(
            &[
                (Role::User, "Hi"),
                (Role::Assistant, "Hello"),
                (Role::User, "Bye"),
            ],
            true,
        );
        assert_eq!(last_user_message(&two), Some("Bye"));
        assert_eq!(last_user_message("no template here"), None);
    }

    #[test]
    fn default_system_message_and_generation_prompt() {
        let text = render_chat(&[(Role::User, "What is 2 + 3?")], true);
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nWhat is 2 + 3?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn explicit_system_message_is_kept_and_no_header_without_generation_prompt() {
        let text = render_chat(
            &[
                (Role::System, "Be brief."),
                (Role::User, "Hi"),
                (Role::Assistant, "Hello"),
            ],
            false,
        );
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello<|im_end|>\n"
        );
    }

    #[test]
    fn gsm8k_prompt_asks_for_the_answer_format() {
        let text = gsm8k_prompt("  Tom has 3 apples. ");
        assert!(text.contains("<|im_start|>user\nTom has 3 apples.\nSolve the problem"));
        assert!(text.ends_with("<|im_start|>assistant\n"));
    }
}
