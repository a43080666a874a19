#!/usr/bin/env python3
"""Reference renders of the real chat templates in this folder with jinja2.

The environment is the one transformers builds in
chat_template_utils._compile_jinja_template: ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and the loopcontrols extension, the `{% generation %}` tag
(AssistantTracker, here a plain pass-through), the globals raise_exception and
strftime_now (pinned to 2024-07-26 12:00:00 UTC so outputs are reproducible) and
transformers' own tojson filter. The context is what apply_chat_template passes:
messages, tools (None when absent), documents, add_generation_prompt, the special
tokens and extra kwargs.

Writes a JSON array; each element holds the template file, the case name, the exact
context (so the C++ side renders the very same input), and either "output" or "error".
jinja_templates_test.cc renders each with tide::jinja and compares byte for byte.

Usage: render_ref.py OUT.json
"""
import copy
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
NOW_UNIX = 1721995200  # 2024-07-26 12:00:00 UTC; the C++ test passes the same instant

# Template file -> the special tokens its tokenizer_config.json defines (None = not
# defined, so the template sees it undefined, as transformers does).
TEMPLATES = {
    "llama3.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3-early.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
    "llama3.1.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3.2.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2.5.jinja": {"bos_token": None, "eos_token": "<|im_end|>"},
    "qwen3.jinja": {"bos_token": None, "eos_token": "<|im_end|>"},
    "mistral-nemo.jinja": {"bos_token": "<s>", "eos_token": "</s>"},
    "deepseek-v3.jinja": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "gemma2.jinja": {"bos_token": "<bos>", "eos_token": "<eos>"},
    "gemma3.jinja": {"bos_token": "<bos>", "eos_token": "<end_of_turn>"},
    "phi3.5.jinja": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "phi4.jinja": {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
    "hermes3-tool-use.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>"},
    "llama2-chat.jinja": {"bos_token": "<s>", "eos_token": "</s>"},
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city — in °C or °F.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "  What to look for.  "},
                "max_results": {"type": "integer", "default": 5},
                "sites": {"type": "array", "items": {"type": "string"}},
                "filters": {"type": "object", "additionalProperties": {"type": "number"}},
                "lang": {"type": ["string", "integer"]},
            },
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER, SEARCH]

UNICODE = "héllo 世界 🎉 — \"double\" 'single' back\\slash\ttab\nsecond line\r\n  indented  "


def call(name, args, call_id="call12345", as_string=False):
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args},
    }


CASES = {
    "user_only": {"messages": [{"role": "user", "content": "Hello!"}]},
    "system_user": {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is 2+2?"},
        ]
    },
    "multi_turn": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
            {"role": "user", "content": "Why?"},
        ]
    },
    "unicode_and_whitespace": {
        "messages": [
            {"role": "system", "content": "  " + UNICODE + "  "},
            {"role": "user", "content": UNICODE},
            {"role": "assistant", "content": "\n\nRéponse: ✓\n\n"},
            {"role": "user", "content": "{{ not a template }} {% raw %} <|im_end|>"},
        ]
    },
    "tools_defined": {
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "What's the weather in Paris?"},
        ],
        "tools": TOOLS,
    },
    "tools_nullable_schema": {
        # Hermes 3 recurses forever on a "null" type (each character is a type again):
        # jinja2 hits RecursionError, tide its macro depth limit.
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
            "type": "object", "properties": {"x": {"type": ["string", "null"]}}}}}],
    },
    "tool_call_roundtrip": {
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"})]},
            {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temperature\": 22.5, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "It is 22.5 °C and clear in Paris."},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": TOOLS,
    },
    "tool_call_string_args": {
        "messages": [
            {"role": "user", "content": "Search for jinja."},
            {"role": "assistant", "content": None, "tool_calls": [call("search", {"query": "jinja", "max_results": 3}, as_string=True)]},
            {"role": "tool", "tool_call_id": "call12345", "content": "1. Jinja — templating"},
        ],
        "tools": TOOLS,
    },
    "parallel_tool_calls": {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {
                "role": "assistant",
                "content": "Let me check both.",
                "tool_calls": [call("get_weather", {"city": "Paris"}, "callAAAAA"), call("get_weather", {"city": "東京"}, "callBBBBB")],
            },
            {"role": "tool", "tool_call_id": "callAAAAA", "content": "18"},
            {"role": "tool", "tool_call_id": "callBBBBB", "content": "25"},
        ],
        "tools": TOOLS,
    },
    "tool_call_empty_content": {
        "messages": [
            {"role": "system", "content": "Use tools when useful."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "reasoning_content": "I should call get_weather.",
             "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"})]},
            {"role": "tool", "tool_call_id": "call12345", "content": "22"},
            {"role": "assistant", "content": "<think>\nReport it.\n</think>\n\nIt is 22 degrees."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": TOOLS,
        "kwargs": {"enable_thinking": True},
    },
    "reasoning_content": {
        "messages": [
            {"role": "user", "content": "What is 17*3?"},
            {"role": "assistant", "content": "<think>\n17*3 = 51\n</think>\n\n51", "reasoning_content": "17*3 = 51"},
            {"role": "user", "content": "And 17*4?"},
        ]
    },
    "thinking_off": {
        "messages": [{"role": "user", "content": "Quick answer: capital of France?"}],
        "kwargs": {"enable_thinking": False},
    },
    "thinking_on": {
        "messages": [{"role": "user", "content": "Think about it: capital of France?"}],
        "kwargs": {"enable_thinking": True},
    },
    "assistant_first": {
        "messages": [
            {"role": "assistant", "content": "I speak first."},
            {"role": "user", "content": "OK."},
        ]
    },
    "empty_messages": {"messages": []},
    "list_content": {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "System as parts."}]},
            {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]},
        ]
    },
}


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker tag, reduced to rendering its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromtimestamp(NOW_UNIX, datetime.timezone.utc).strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: render_ref.py OUT.json")
    env = make_env()
    results = []
    for name, tokens in TEMPLATES.items():
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            template = env.from_string(f.read())
        for case_name, case in CASES.items():
            for agp in (False, True):
                # Key order as apply_chat_template builds it; extra kwargs last.
                context = {"messages": copy.deepcopy(case["messages"]), "tools": case.get("tools"),
                           "documents": None, "add_generation_prompt": agp}
                context.update({k: v for k, v in tokens.items() if v is not None})
                context.update(case.get("kwargs", {}))
                entry = {"template": name, "case": f"{case_name}/agp={int(agp)}", "context": context}
                try:
                    entry["output"] = template.render(**copy.deepcopy(context))
                except Exception as e:  # any jinja2 or Python error is "an error" for the C++ side
                    entry["error"] = f"{type(e).__name__}: {e}"
                results.append(entry)
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
