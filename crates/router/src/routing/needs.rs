//! What a request needs from an endpoint: room for the prompt and the
//! answer, the parameters it sets, image input.

use switchyard_proto::common::v1::{ChatRequest, content_part::Part};

#[derive(Debug, Clone, Default)]
pub struct Needs {
    /// Estimated prompt tokens (about 4 characters a token).
    pub prompt_tokens: u64,
    pub max_tokens: Option<u32>,
    pub image_input: bool,
    /// Every parameter the request sets, for `require_parameters`.
    pub params: Vec<&'static str>,
    /// Capabilities preferred even without `require_parameters`.
    pub soft: Vec<&'static str>,
}

/// Prompt tokens when nothing better is known: ~4 characters a token, plus
/// a few per message for the chat template.
pub fn estimate_prompt_tokens(request: &ChatRequest) -> u64 {
    let chars: usize = request
        .messages
        .iter()
        .map(|m| {
            m.text.as_deref().map_or(0, str::len)
                + m.parts
                    .iter()
                    .map(|p| match &p.part {
                        Some(Part::Text(t)) => t.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
                + m.tool_calls
                    .iter()
                    .map(|t| t.arguments.len() + t.name.len())
                    .sum::<usize>()
                + 16
        })
        .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| {
                t.name.len()
                    + t.description.as_deref().map_or(0, str::len)
                    + t.parameters_json.as_deref().map_or(0, str::len)
            })
            .sum::<usize>();
    chars.div_ceil(4) as u64
}

impl Needs {
    pub fn of(r: &ChatRequest) -> Needs {
        let mut params = Vec::new();
        let mut soft = Vec::new();
        let mut set = |on: bool, name: &'static str| {
            if on {
                params.push(name);
            }
        };
        set(r.max_tokens.is_some(), "max_tokens");
        set(r.temperature.is_some(), "temperature");
        set(r.top_p.is_some(), "top_p");
        set(r.top_k.is_some(), "top_k");
        set(r.frequency_penalty.is_some(), "frequency_penalty");
        set(r.presence_penalty.is_some(), "presence_penalty");
        set(r.repetition_penalty.is_some(), "repetition_penalty");
        set(r.min_p.is_some(), "min_p");
        set(r.top_a.is_some(), "top_a");
        set(r.seed.is_some(), "seed");
        set(!r.stop.is_empty(), "stop");
        set(!r.tools.is_empty(), "tools");
        set(r.tool_choice_json.is_some(), "tool_choice");
        set(r.parallel_tool_calls.is_some(), "parallel_tool_calls");
        set(r.logprobs.is_some(), "logprobs");
        set(r.top_logprobs.is_some(), "top_logprobs");
        set(r.logit_bias_json.is_some(), "logit_bias");
        set(r.reasoning_json.is_some(), "reasoning");
        if !r.tools.is_empty() {
            soft.push("tools");
        }
        if let Some(rf) = &r.response_format_json {
            let structured = rf.contains("\"json_schema\"");
            let name = if structured {
                "structured_outputs"
            } else {
                "response_format"
            };
            params.push(name);
            soft.push(name);
        }
        let image_input = r.messages.iter().any(|m| {
            m.parts
                .iter()
                .any(|p| matches!(p.part, Some(Part::ImageUrl(_))))
        });
        Needs {
            prompt_tokens: estimate_prompt_tokens(r),
            max_tokens: r.max_tokens,
            image_input,
            params,
            soft,
        }
    }
}
