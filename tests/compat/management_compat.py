"""Drive Switchyard's management API with the official OpenRouter Python SDK.

Usage: SWITCHYARD_BASE_URL=http://127.0.0.1:8080/api/v1 \
       SWITCHYARD_MANAGEMENT_KEY=sk-sy-mgmt-v1-... SWITCHYARD_MODEL=openai/gpt-4 \
       python3 management_compat.py

Creates, lists, reads, updates and deletes a key; reads credits, the
current key and activity; calls a model with the created key. Exits
non-zero with a message on the first incompatibility.
"""

import os
import sys

import openai
from openrouter import OpenRouter

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
MANAGEMENT_KEY = os.environ["SWITCHYARD_MANAGEMENT_KEY"]
MODEL = os.environ.get("SWITCHYARD_MODEL", "openai/gpt-4")


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    admin = OpenRouter(api_key=MANAGEMENT_KEY, server_url=BASE_URL)

    credits = admin.credits.get_credits()
    check(credits.data.total_credits > 0, f"credits: {credits}")

    created = admin.api_keys.create(name="compat key", limit=5.0, limit_reset="monthly")
    key_hash = created.data.hash
    check(created.key.startswith("sk-sy-v1-"), "create: key text")
    check(created.data.limit == 5.0 and created.data.limit_reset == "monthly", f"create: {created.data}")
    check(created.data.usage == 0.0, "create: usage")

    listed = admin.api_keys.list()
    check(any(k.hash == key_hash for k in listed.data), "list: the new key")

    got = admin.api_keys.get(hash=key_hash)
    check(got.data.name == "compat key", f"get: {got.data.name}")

    # The new key calls a model (credit comes from the account).
    client = openai.OpenAI(base_url=BASE_URL, api_key=created.key, max_retries=0)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    check(completion.choices[0].message.content, "inference with the created key")

    me = OpenRouter(api_key=created.key, server_url=BASE_URL).api_keys.get_current_key_metadata()
    check(me.data.label == created.data.label, f"current key: {me.data.label}")
    check(me.data.limit == 5.0 and not me.data.is_management_key, f"current key: {me.data}")

    updated = admin.api_keys.update(hash=key_hash, name="renamed", disabled=True)
    check(updated.data.name == "renamed" and updated.data.disabled, f"update: {updated.data}")

    activity = admin.analytics.get_user_activity()
    check(isinstance(activity.data, list), "activity: list")

    admin.api_keys.delete(hash=key_hash)
    remaining = admin.api_keys.list(include_disabled="true")
    check(all(k.hash != key_hash for k in remaining.data), "delete: gone")
    print("openrouter management SDK: ok")


if __name__ == "__main__":
    main()
