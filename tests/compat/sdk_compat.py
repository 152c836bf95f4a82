"""Drive a running Switchyard with the official OpenAI and OpenRouter Python SDKs.

Usage: SWITCHYARD_BASE_URL=http://127.0.0.1:8080/api/v1 SWITCHYARD_KEY=... \
       SWITCHYARD_MODEL=openai/gpt-4 python3 sdk_compat.py

Exits non-zero with a message on the first incompatibility.
"""

import os
import sys

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


if __name__ == "__main__":
    openai_sdk()
    openrouter_sdk()
