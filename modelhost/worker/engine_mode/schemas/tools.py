"""OpenAI tool calling for the built-in engine: `tools`/`tool_choice` parsing, prompt rendering, output parsing.

The tools are rendered by modelhost itself, in the Hermes/Qwen convention, into the system message (SmolLM2's
chat template, like many, ignores `tools`): a `<tools>` block of the function signatures and the instruction to
answer a call as `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`. A conversation's history goes
through the model's template as plain messages: an assistant message's `tool_calls` become `<tool_call>` blocks
of its content, and `tool` messages become a user message of `<tool_response>` blocks.

`tool_choice`: `none` offers no tools (and nothing is parsed); `auto` offers them and parses the output (text that
is not a well-formed call of an offered tool stays content); `required` and a named function also constrain
generation with an llguidance Lark grammar, so the output is one call (or, with `parallel_tool_calls`, up to
MAX_PARALLEL_CALLS calls) whose arguments are valid against the function's `parameters`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from modelhost.worker.engine.grammar import json_constraint
from modelhost.worker.engine.types import Constraint
from modelhost.worker.engine_mode.schemas.request import RequestError

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
MAX_PARALLEL_CALLS = 4
MAX_TOOLS = 128
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|$)", re.DOTALL)
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """The request's tools and how they may be used: choice is "auto", "required" or a function's name."""

    tools: tuple[Tool, ...]
    choice: str
    parallel: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tools)

    @property
    def forced(self) -> bool:
        """Generation is constrained to calls (required or a named function)."""
        return self.choice != "auto"


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # the arguments as JSON text, as OpenAI returns them
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def _tool(raw: Any, i: int) -> Tool:
    where = f"tools[{i}]"
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(raw.get("function"), dict):
        raise RequestError(f'{where} must be {{"type": "function", "function": {{...}}}}', where)
    function = raw["function"]
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RequestError(
            f"{where}.function.name must be 1-64 letters, digits, underscores or dashes", f"{where}.function.name"
        )
    description = function.get("description", "")
    if not isinstance(description, str):
        raise RequestError(f"{where}.function.description must be a string", f"{where}.function.description")
    parameters = function.get("parameters")
    param = f"{where}.function.parameters"
    if parameters is None:
        parameters = dict(_EMPTY_PARAMETERS)
    if not isinstance(parameters, dict):
        raise RequestError(f"{param} must be a JSON schema object", param)
    try:
        json_constraint(parameters, param)
    except ValueError as exc:
        raise RequestError(str(exc), param, "invalid_function_parameters") from None
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise RequestError(f"{where}.function.strict must be a boolean", f"{where}.function.strict")
    return Tool(name=name, description=description, parameters=parameters)


def parse_tools(body: dict[str, Any]) -> ToolSpec | None:
    """`tools`, `tool_choice` and `parallel_tool_calls` → a ToolSpec, or None when no tool is offered."""
    raw = body.get("tools")
    if raw is not None and not isinstance(raw, list):
        raise RequestError("tools must be a list", "tools")
    if raw is not None and len(raw) > MAX_TOOLS:
        raise RequestError(f"tools: at most {MAX_TOOLS} tools", "tools")
    tools = tuple(_tool(t, i) for i, t in enumerate(raw or []))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise RequestError("tools: function names must be unique", "tools")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise RequestError("parallel_tool_calls must be a boolean", "parallel_tool_calls")
    choice = body.get("tool_choice")
    if choice is None:
        choice = "auto" if tools else "none"
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise RequestError(
                'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
                "tool_choice",
            )
        if name not in names:
            raise RequestError(f"tool_choice names the function {name!r:.70}, which is not in tools", "tool_choice")
        choice = name
    elif choice not in ("none", "auto", "required"):
        raise RequestError(
            f'tool_choice must be "none", "auto", "required" or a named function, got {choice!r:.60}', "tool_choice"
        )
    elif choice != "none" and not tools:
        raise RequestError(f'tool_choice "{choice}" needs a non-empty tools list', "tool_choice")
    if choice == "none":
        return None
    return ToolSpec(tools=tools, choice=choice, parallel=parallel)


def constraint(spec: ToolSpec) -> Constraint | None:
    """For `required` or a named function, the grammar of the calls; None for `auto`."""
    if not spec.forced:
        return None
    chosen = [t for t in spec.tools if spec.choice == "required" or t.name == spec.choice]
    rules = []
    for i, tool in enumerate(chosen):
        schema = {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["name", "arguments"],
            "additionalProperties": False,
            "x-guidance": {"whitespace_flexible": False},
        }
        rules.append(f"f{i}: %json {json.dumps(schema)}")
    repeat = f'("\\n" call){{0,{MAX_PARALLEL_CALLS - 1}}}' if spec.parallel and spec.choice == "required" else ""
    body = " | ".join(f"f{i}" for i in range(len(chosen)))
    lark = "\n".join([f"start: call {repeat}", f'call: "{CALL_OPEN}\\n" ({body}) "\\n{CALL_CLOSE}"', *rules])
    from llguidance import LLMatcher, grammar_from

    grammar = grammar_from("lark", lark)
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise RequestError(f"tools: the functions' schemas cannot be combined: {error[:300]}", "tools")
    return Constraint(grammar=grammar, param="tool_choice", kind="tool_calls")


def system_prompt(spec: ToolSpec) -> str:
    """The tools block appended to the system message."""
    signatures = "\n".join(
        json.dumps(
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            },
            ensure_ascii=False,
        )
        for t in spec.tools
    )
    return (
        "# Tools\n\nYou may call one or more functions to help with the user's request. The available function "
        f"signatures are inside <tools></tools>:\n<tools>\n{signatures}\n</tools>\n\n"
        "To call a function, answer with a JSON object of its name and arguments inside "
        f"{CALL_OPEN}{CALL_CLOSE} tags:\n{CALL_OPEN}\n"
        '{"name": <function-name>, "arguments": <arguments-json-object>}\n'
        f"{CALL_CLOSE}"
    )


def _history_call(call: Any, where: str) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RequestError(f'{where} must be {{"type": "function", "function": {{"name", "arguments"}}}}', where)
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise RequestError(f"{where}.function.arguments must be JSON text", where) from None
    return CALL_OPEN + "\n" + json.dumps({"name": function["name"], "arguments": arguments}) + "\n" + CALL_CLOSE


def render(messages: list[dict[str, Any]], raw: list[Any], spec: ToolSpec | None) -> list[dict[str, str]]:
    """Messages for the chat template (role and content only): the tools in the system message, a tool
    conversation's history as text. `messages` are the parsed ones (text content), `raw` the request's."""
    out: list[dict[str, str]] = []
    for i, (message, original) in enumerate(zip(messages, raw, strict=True)):
        role, content = message["role"], message["content"]
        if role == "assistant" and original.get("tool_calls"):
            calls = original["tool_calls"]
            if not isinstance(calls, list):
                raise RequestError(f"messages[{i}].tool_calls must be a list", f"messages[{i}].tool_calls")
            blocks = [_history_call(c, f"messages[{i}].tool_calls[{j}]") for j, c in enumerate(calls)]
            content = "\n".join(([content] if content else []) + blocks)
        elif role in ("tool", "function"):
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1]["content"].startswith("<tool_response>"):
                out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + block}
                continue
            role, content = "user", block
        out.append({"role": role, "content": content})
    if spec is not None:
        tools = system_prompt(spec)
        if out and out[0]["role"] in ("system", "developer"):
            out[0] = {"role": out[0]["role"], "content": (out[0]["content"] + "\n\n" + tools).lstrip()}
        else:
            out.insert(0, {"role": "system", "content": tools})
    return out


def _call(body: str, spec: ToolSpec) -> ToolCall | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in spec.names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(name=value["name"], arguments=json.dumps(arguments, ensure_ascii=False))


def parse_output(text: str, spec: ToolSpec) -> tuple[str | None, list[ToolCall]]:
    """The generated text → (content, calls). Calls are `<tool_call>` blocks (the last may lack its closing
    tag), or the whole output being one bare `{"name", "arguments"}` object; anything malformed (bad JSON, a
    function not offered) makes the whole output content."""
    stripped = text.strip()
    if CALL_OPEN not in text:
        bare = _call(stripped, spec) if stripped.startswith("{") else None
        return (None, [bare]) if bare is not None else (text, [])
    start = text.index(CALL_OPEN)
    calls: list[ToolCall] = []
    end = start
    for match in _CALL.finditer(text, start):
        if text[end : match.start()].strip():
            return text, []
        call = _call(match.group(1).strip(), spec)
        if call is None:
            return text, []
        calls.append(call)
        end = match.end()
    if text[end:].strip() or not calls:
        return text, []
    prefix = text[:start].strip()
    return (prefix or None), calls


class ToolStream:
    """Incremental parsing for streaming: content passes through as it arrives (a tail that may begin a
    `<tool_call>` is held back), each call is released when its closing tag arrives (or at the end)."""

    def __init__(self, spec: ToolSpec) -> None:
        self.spec = spec
        self.text = ""
        self.sent = 0  # characters of text already sent as content or consumed by calls
        self.calls: list[ToolCall] = []
        self.failed = False  # a malformed call: the rest is content

    def _held(self) -> int:
        """How much of the unsent tail may be the start of a call marker or of a bare-JSON call."""
        tail = self.text[self.sent :]
        if not self.calls and not self.text[: self.sent].strip() and tail.lstrip().startswith("{"):
            return len(tail)  # the whole output may be one bare call: decided at the end
        for k in range(min(len(CALL_OPEN) - 1, len(tail)), 0, -1):
            if CALL_OPEN.startswith(tail[-k:]):
                return k
        return 0

    def feed(self, piece: str) -> tuple[str, list[ToolCall]]:
        """New content text and newly complete calls."""
        self.text += piece
        return self._step(final=False)

    def finish(self) -> tuple[str, list[ToolCall]]:
        return self._step(final=True)

    def _step(self, final: bool) -> tuple[str, list[ToolCall]]:
        content, new = "", list[ToolCall]()
        while True:
            tail = self.text[self.sent :]
            if self.failed:
                self.sent = len(self.text)
                return content + tail, new
            at = tail.find(CALL_OPEN)
            if at < 0:
                if final and not self.calls and tail.strip().startswith("{") and not self.text[: self.sent].strip():
                    bare = _call(tail.strip(), self.spec)
                    if bare is not None:
                        self.sent = len(self.text)
                        self.calls.append(bare)
                        return content, [*new, bare]
                keep = 0 if final else self._held()
                release = tail[: len(tail) - keep]
                if self.calls and release.strip():
                    self.failed = True  # text after a call: not a well-formed answer
                    continue
                if not self.calls:
                    content += release
                self.sent += len(release)
                return content, new
            if not self.calls:
                content += tail[:at]
            elif tail[:at].strip():
                self.failed = True
                continue
            close = tail.find(CALL_CLOSE, at)
            if close < 0 and not final:
                self.sent += at
                return content, new
            body = tail[at + len(CALL_OPEN) : close if close >= 0 else len(tail)]
            call = _call(body.strip(), self.spec)
            if call is None:
                self.sent += at
                self.failed = True
                continue
            self.calls.append(call)
            new.append(call)
            self.sent += (close + len(CALL_CLOSE)) if close >= 0 else len(tail)
