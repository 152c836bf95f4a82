//! The model page's sample code: curl, the OpenAI SDKs and the OpenRouter Python SDK, pointed at this router.
//!
//! The OpenRouter TypeScript SDK is left out on purpose: its `chat.send` request shape has changed between
//! releases, and a sample that breaks on copy-paste is worse than none.

use std::fmt::Write as _;

use super::open_section;
use crate::html::Esc;

/// The "Sample code" section for `model` against the API at `base_url`.
pub(super) fn sample_code(out: &mut String, base_url: &str, model: &str) {
    open_section(
        out,
        "sample-code",
        "Sample code",
        "Call this model through the OpenAI-compatible API. Set SWITCHYARD_KEY to your API key.",
    );
    let base = base_url.trim_end_matches('/');
    let samples = [
        ("curl", "curl", curl(base, model)),
        ("python", "OpenAI SDK (Python)", openai_python(base, model)),
        (
            "typescript",
            "OpenAI SDK (TypeScript)",
            openai_typescript(base, model),
        ),
        (
            "openrouter-python",
            "OpenRouter SDK (Python)",
            openrouter_python(base, model),
        ),
    ];
    out.push_str(r#"<div class="tabs"><div role="tablist" aria-label="Sample code language">"#);
    for (i, (id, label, _)) in samples.iter().enumerate() {
        let _ = write!(
            out,
            r#"<button type="button" role="tab" id="tab-{id}" aria-controls="panel-{id}" aria-selected="{}"{}>{label}</button>"#,
            i == 0,
            if i == 0 { "" } else { r#" tabindex="-1""# }
        );
    }
    out.push_str("</div>");
    for (id, label, code) in &samples {
        let _ = write!(
            out,
            r#"<div class="code-block" role="tabpanel" id="panel-{id}" aria-labelledby="tab-{id}"><div class="code-head"><h3>{label}</h3><button type="button" data-copy-from="code-{id}" aria-label="Copy {label} sample">Copy</button></div><pre tabindex="0"><code id="code-{id}">{}</code></pre></div>"#,
            Esc(code)
        );
    }
    out.push_str("</div></section>");
}

fn curl(base: &str, model: &str) -> String {
    format!(
        r#"curl {base}/chat/completions \
  -H "Authorization: Bearer $SWITCHYARD_KEY" \
  -H "Content-Type: application/json" \
  -d '{{
    "model": "{model}",
    "messages": [{{"role": "user", "content": "Say hello in one sentence."}}]
  }}'"#
    )
}

fn openai_python(base: &str, model: &str) -> String {
    format!(
        r#"import os
from openai import OpenAI

client = OpenAI(base_url="{base}", api_key=os.environ["SWITCHYARD_KEY"])

reply = client.chat.completions.create(
    model="{model}",
    messages=[{{"role": "user", "content": "Say hello in one sentence."}}],
)
print(reply.choices[0].message.content)"#
    )
}

fn openai_typescript(base: &str, model: &str) -> String {
    format!(
        r#"import OpenAI from "openai";

const client = new OpenAI({{
  baseURL: "{base}",
  apiKey: process.env.SWITCHYARD_KEY,
}});

const reply = await client.chat.completions.create({{
  model: "{model}",
  messages: [{{ role: "user", content: "Say hello in one sentence." }}],
}});
console.log(reply.choices[0].message.content);"#
    )
}

fn openrouter_python(base: &str, model: &str) -> String {
    format!(
        r#"import os
from openrouter import OpenRouter

with OpenRouter(api_key=os.environ["SWITCHYARD_KEY"], server_url="{base}") as client:
    reply = client.chat.send(
        model="{model}",
        messages=[{{"role": "user", "content": "Say hello in one sentence."}}],
    )
    print(reply.choices[0].message.content)"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_use_the_base_url_and_model() {
        let mut html = String::new();
        sample_code(&mut html, "http://localhost:8080/api/v1/", "openai/gpt-4");
        assert!(html.contains("curl http://localhost:8080/api/v1/chat/completions"));
        assert!(html.contains(r#"base_url=&quot;http://localhost:8080/api/v1&quot;"#));
        assert!(html.contains(r#"baseURL: &quot;http://localhost:8080/api/v1&quot;"#));
        assert!(html.contains(r#"server_url=&quot;http://localhost:8080/api/v1&quot;"#));
        assert_eq!(html.matches("&quot;openai/gpt-4&quot;").count(), 4);
        assert_eq!(html.matches(r#"role="tab""#).count(), 4);
    }
}
