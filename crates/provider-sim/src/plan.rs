//! The format-neutral answer. Every wire format parses its request into a
//! [`Prompt`]; the shared core turns it into a [`Plan`] (thinking, text or a
//! tool call, and why it stopped) that each format then renders.

use serde_json::Value;

use crate::knobs::Behaviour;
use crate::text;

/// What the answer depends on, whatever format the request came in.
#[derive(Debug, Default)]
pub struct Prompt {
    pub model: String,
    /// The conversation as OpenAI-style messages: the answer's hash and the
    /// prompt token count come from these, so one conversation gets the
    /// same answer in every format.
    pub messages: Vec<Value>,
    pub stream: bool,
    /// Output budget, thinking included (as Anthropic and Gemini count it).
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub tool: Option<ForcedTool>,
    /// Thinking budget in tokens; `None` answers without thinking.
    pub thinking_budget: Option<u32>,
    /// Answer with JSON text, following this schema when it is not null.
    pub json_schema: Option<Value>,
}

/// The tool a request forces, with its JSON Schema when declared.
#[derive(Debug)]
pub struct ForcedTool {
    pub name: String,
    pub parameters: Option<Value>,
}

pub enum Output {
    /// Pieces of one token each; they concatenate to the text.
    Text(Vec<String>),
    ToolCall {
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    StopSequence(String),
    ToolCall,
    Safety,
}

/// Everything about one answer, fixed before the first byte is sent.
pub struct Plan {
    pub hash: u64,
    pub seq: u64,
    pub model: String,
    pub prompt_tokens: u64,
    /// Thinking pieces, one token each.
    pub thinking: Vec<String>,
    pub output: Output,
    pub finish: Finish,
}

impl Plan {
    pub fn new(
        prompt: &Prompt,
        hash: u64,
        seq: u64,
        prompt_tokens: u64,
        behaviour: &Behaviour,
    ) -> Plan {
        let plan = |thinking, output, finish| Plan {
            hash,
            seq,
            model: prompt.model.clone(),
            prompt_tokens,
            thinking,
            output,
            finish,
        };
        if behaviour.safety_block {
            return plan(Vec::new(), Output::Text(Vec::new()), Finish::Safety);
        }
        let length = behaviour.completion_tokens;
        let mut budget = prompt.max_tokens;
        let thinking = match prompt.thinking_budget {
            Some(thinking_budget) => {
                let words = thinking_budget.min(length).min(budget.unwrap_or(u32::MAX));
                budget = budget.map(|b| b - words);
                text::pieces(&text::completion_words(hash ^ THINKING_SALT, words))
            }
            None => Vec::new(),
        };
        if let Some(tool) = &prompt.tool {
            let arguments = text::tool_arguments(tool.parameters.as_ref(), hash);
            let output = Output::ToolCall {
                name: tool.name.clone(),
                arguments,
            };
            return plan(thinking, output, Finish::ToolCall);
        }
        let full = match &prompt.json_schema {
            Some(schema) => json_pieces(&text::tool_arguments(Some(schema), hash)),
            None => text::pieces(&text::completion_words(hash, length)),
        };
        let (mut pieces, mut finish) = match budget {
            Some(max) if (max as usize) < full.len() => {
                (full[..max as usize].to_vec(), Finish::Length)
            }
            _ => (full, Finish::Stop),
        };
        if let Some((kept, sequence)) = stop_at(&pieces, &prompt.stop) {
            pieces.truncate(kept);
            finish = Finish::StopSequence(sequence);
        }
        plan(thinking, Output::Text(pieces), finish)
    }

    /// Tokens of the answer proper, thinking excluded.
    pub fn output_tokens(&self) -> u64 {
        match &self.output {
            Output::Text(pieces) => pieces.len() as u64,
            Output::ToolCall { name, arguments } => {
                text::estimate_tokens(name) + text::estimate_tokens(arguments)
            }
        }
    }

    pub fn thinking_tokens(&self) -> u64 {
        self.thinking.len() as u64
    }

    /// Every generated token: what the client is billed for.
    pub fn completion_tokens(&self) -> u64 {
        self.thinking_tokens() + self.output_tokens()
    }

    #[cfg(test)]
    pub fn text(&self) -> Option<String> {
        match &self.output {
            Output::Text(pieces) => Some(pieces.concat()),
            Output::ToolCall { .. } => None,
        }
    }

    pub fn thinking_text(&self) -> String {
        self.thinking.concat()
    }

    /// An opaque, deterministic stand-in for a thinking block's signature.
    pub fn signature(&self) -> String {
        format!("sim-sig-{:016x}", self.hash ^ THINKING_SALT)
    }
}

/// Keeps thinking words apart from the answer's own words.
const THINKING_SALT: u64 = 0x7468_696e_6b69_6e67;

/// JSON text in pieces of four characters, about a token each.
fn json_pieces(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

/// Where the first stop sequence appears: how many whole pieces come before
/// it, and which sequence it was. Like a real model, the sequence itself is
/// not part of the answer.
fn stop_at(pieces: &[String], stop: &[String]) -> Option<(usize, String)> {
    let text = pieces.concat();
    let (position, sequence) = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.clone())))
        .min_by_key(|(at, _)| *at)?;
    let mut end = 0;
    let kept = pieces
        .iter()
        .take_while(|piece| {
            end += piece.len();
            end <= position
        })
        .count();
    Some((kept, sequence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::Knobs;

    fn plan(prompt: &Prompt, knobs: Knobs) -> Plan {
        Plan::new(prompt, 42, 1, 10, &knobs.resolve())
    }

    #[test]
    fn thinking_counts_against_max_tokens() {
        let prompt = Prompt {
            thinking_budget: Some(1024),
            max_tokens: Some(30),
            ..Prompt::default()
        };
        let answer = plan(&prompt, Knobs::default());
        assert_eq!(answer.thinking_tokens(), 24);
        assert_eq!(answer.output_tokens(), 6);
        assert_eq!(answer.finish, Finish::Length);
    }

    #[test]
    fn stop_sequences_cut_before_the_sequence() {
        let full = plan(&Prompt::default(), Knobs::default());
        let Output::Text(pieces) = &full.output else {
            panic!("text expected")
        };
        let prompt = Prompt {
            stop: vec![pieces[5].trim().to_owned(), "never appears".to_owned()],
            ..Prompt::default()
        };
        let stopped = plan(&prompt, Knobs::default());
        let sequence = pieces[5].trim().to_owned();
        assert_eq!(stopped.finish, Finish::StopSequence(sequence.clone()));
        let text = stopped.text().unwrap();
        assert!(!text.contains(&sequence), "{text}");
        assert!(full.text().unwrap().starts_with(&text));
    }

    #[test]
    fn json_answers_follow_the_schema() {
        let schema = serde_json::json!({"properties": {"n": {"type": "INTEGER"}}});
        let prompt = Prompt {
            json_schema: Some(schema),
            ..Prompt::default()
        };
        let answer = plan(&prompt, Knobs::default());
        let value: Value = serde_json::from_str(&answer.text().unwrap()).unwrap();
        assert!(value["n"].is_u64());
    }
}
