"""Drive a running Switchyard with the official OpenAI and OpenRouter Python SDKs.

Usage: SWITCHYARD_BASE_URL=http://127.0.0.1:8080/api/v1 SWITCHYARD_KEY=... \
       SWITCHYARD_MODEL=openai/gpt-4 python3 sdk_compat.py

Exits non-zero with a message on the first incompatibility.
"""

import os
import sys

import anthropic
import openai
from openrouter import OpenRouter

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
KEY = os.environ["SWITCHYARD_KEY"]
MODEL = os.environ.get("SWITCHYARD_MODEL", "openai/gpt-4")
MESSAGES = [{"role": "user", "content": "Say something about rail yards."}]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def openai_sdk():
    client = openai.OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0)

    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12)
    check(completion.id.startswith("gen-"), f"openai: id {completion.id}")
    check(completion.model == MODEL, f"openai: model {completion.model}")
    check(completion.choices[0].message.content, "openai: content")
    check(completion.choices[0].finish_reason in ("stop", "length"), "openai: finish_reason")
    check(completion.usage.total_tokens > 0, "openai: usage")
    extra = completion.model_extra or {}
    check(extra.get("provider"), f"openai: provider field {extra}")
    check(completion.usage.model_extra.get("cost", 0) > 0, "openai: usage.cost")

    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    check(raw.headers.get("x-generation-id", "").startswith("gen-"), "openai: X-Generation-Id")

    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    check(text, "openai stream: content")
    check(finish == "stop", f"openai stream: finish_reason {finish}")
    check(usage is not None and usage.completion_tokens > 0, "openai stream: usage chunk")

    models = client.models.list()
    ids = [m.id for m in models]
    check(MODEL in ids, f"openai: models.list {ids}")

    try:
        client.chat.completions.create(model="nobody/nothing", messages=MESSAGES)
        check(False, "openai: unknown model must fail")
    except openai.NotFoundError as err:
        check(err.status_code == 404, "openai: 404 for unknown model")

    # Tools: the simulator calls the tool when the choice forces it.
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    forced = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = forced.choices[0].message.tool_calls[0]
    check(call.function.name == "get_weather", f"openai tools: {call}")
    check(forced.choices[0].finish_reason == "tool_calls", "openai tools: finish_reason")
    streamed_args = ""
    for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=tools, tool_choice="required", stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            streamed_args += tc.function.arguments or ""
    check(streamed_args.startswith("{"), f"openai tools stream: {streamed_args!r}")

    # Structured outputs are accepted (and routed to endpoints that support them).
    structured = client.chat.completions.create(
        model=MODEL, messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "strict": True,
                         "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
    check(structured.choices[0].message.content is not None, "openai structured outputs")

    # Log-probabilities, when asked for.
    with_lp = client.chat.completions.create(model=MODEL, messages=MESSAGES, logprobs=True, top_logprobs=2)
    lp = with_lp.choices[0].logprobs
    check(lp is not None and lp.content and lp.content[0].token, f"openai logprobs: {lp}")
    check(len(lp.content[0].top_logprobs) == 2, "openai top_logprobs")
    check("".join(t.token for t in lp.content) == with_lp.choices[0].message.content, "logprobs cover the text")
    streamed = [c.choices[0].logprobs for c in client.chat.completions.create(
        model=MODEL, messages=MESSAGES, logprobs=True, top_logprobs=1, stream=True)
        if c.choices and c.choices[0].logprobs]
    check(streamed and streamed[0].content[0].logprob <= 0, "openai logprobs stream")

    # Legacy completions.
    legacy = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8)
    check(legacy.object == "text_completion", f"openai completions: {legacy.object}")
    check(legacy.choices[0].text, "openai completions: text")
    check(legacy.usage.completion_tokens > 0, "openai completions: usage")
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="Once upon a time", stream=True) if c.choices)
    check(text, "openai completions stream: text")

    bad = openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong", max_retries=0)
    try:
        bad.chat.completions.create(model=MODEL, messages=MESSAGES)
        check(False, "openai: bad key must fail")
    except openai.AuthenticationError as err:
        check(err.status_code == 401, "openai: 401 for bad key")
    print("openai SDK: ok")


def openrouter_sdk():
    with OpenRouter(api_key=KEY, server_url=BASE_URL) as client:
        result = client.chat.send(model=MODEL, messages=MESSAGES, max_tokens=12)
        check(result.id.startswith("gen-"), f"openrouter: id {result.id}")
        check(result.choices[0].message.content, "openrouter: content")
        check(result.usage.total_tokens > 0, "openrouter: usage")

        text = ""
        events = client.chat.send(model=MODEL, messages=MESSAGES, stream=True)
        with events as stream:
            for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
        check(text, "openrouter stream: content")

        models = client.models.list()
        ids = [m.id for m in models.result.data]
        check(MODEL in ids, f"openrouter: models.list {ids}")

        generation = None
        for _ in range(100):
            try:
                generation = client.generations.get_generation(id=result.id)
                break
            except Exception:  # the record trails the response by a moment
                import time

                time.sleep(0.05)
        check(generation is not None, "openrouter: generation lookup")
        check(generation.data.id == result.id, "openrouter: generation id")
        check(generation.data.total_cost > 0, "openrouter: generation cost")
    print("openrouter SDK: ok")


def anthropic_sdk():
    # The Anthropic SDK appends /v1/messages to its base URL.
    client = anthropic.Anthropic(base_url=BASE_URL.removesuffix("/v1"), api_key=KEY, max_retries=0)
    message = client.messages.create(model=MODEL, max_tokens=64, system="Be brief.",
                                      messages=[{"role": "user", "content": "Hello"}])
    check(message.type == "message" and message.role == "assistant", f"anthropic: {message}")
    check(message.content and message.content[0].type == "text" and message.content[0].text, "anthropic: text")
    check(message.stop_reason in ("end_turn", "max_tokens"), f"anthropic: stop_reason {message.stop_reason}")
    check(message.usage.output_tokens > 0, "anthropic: usage")

    with client.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text and final.content[0].text == text, "anthropic stream: text")
    check(final.usage.output_tokens > 0, "anthropic stream: usage")

    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    used = client.messages.create(model=MODEL, max_tokens=64, tools=tools,
                                  tool_choice={"type": "tool", "name": "get_weather"},
                                  messages=[{"role": "user", "content": "Weather in Oslo?"}])
    tool_use = [b for b in used.content if b.type == "tool_use"]
    check(tool_use and tool_use[0].name == "get_weather", f"anthropic tools: {used.content}")
    check(used.stop_reason == "tool_use", f"anthropic tools: stop_reason {used.stop_reason}")
    with client.messages.stream(model=MODEL, max_tokens=64, tools=tools, tool_choice={"type": "any"},
                                messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    check(any(b.type == "tool_use" and isinstance(b.input, dict) for b in final.content), "anthropic tools stream")

    try:
        client.messages.create(model="nobody/nothing", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        check(False, "anthropic: unknown model must fail")
    except anthropic.NotFoundError as err:
        check(err.status_code == 404, "anthropic: 404")
    print("anthropic SDK: ok")


if __name__ == "__main__":
    openai_sdk()
    openrouter_sdk()
    anthropic_sdk()
