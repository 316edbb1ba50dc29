"""Model ids (`org/name` or `name`, Hugging Face hub rules) and the folder names derived from them."""

from __future__ import annotations

import re

MAX_MODEL_ID_LENGTH = 96

# One or two segments of letters, digits, `_`, `-`, `.`; each starts and ends with a letter, digit or `_`.
# The same rules as huggingface_hub's `validate_repo_id`, so a valid id here is a valid hub repo id.
_SEGMENT = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?"
_MODEL_ID = re.compile(rf"(?:{_SEGMENT}/)?{_SEGMENT}")


def validate_model_id(model_id: str) -> str:
    """Return `model_id` unchanged when it is a valid model id; raise ValueError saying why not otherwise."""
    if not isinstance(model_id, str) or not model_id:
        raise ValueError("model id must be a non-empty string such as 'tiiuae/falcon-40b'")
    if len(model_id) > MAX_MODEL_ID_LENGTH:
        raise ValueError(f"model id {model_id!r} is longer than {MAX_MODEL_ID_LENGTH} characters")
    if model_id.count("/") > 1:
        raise ValueError(f"model id {model_id!r} has more than one '/': use 'org/name' or 'name'")
    if "--" in model_id or ".." in model_id:
        raise ValueError(f"model id {model_id!r} must not contain '--' or '..'")
    if model_id.endswith(".git"):
        raise ValueError(f"model id {model_id!r} must not end with '.git'")
    if not _MODEL_ID.fullmatch(model_id):
        raise ValueError(
            f"model id {model_id!r} is not valid: use 'org/name' or 'name' made of letters, digits, "
            "'_', '-' and '.', not starting or ending with '-' or '.'"
        )
    return model_id


def is_model_id(text: str) -> bool:
    """True when `text` is a valid model id (a local path or a URL is not)."""
    try:
        validate_model_id(text)
    except ValueError:
        return False
    return True


def entry_folder_name(model_id: str) -> str:
    """The registry's folder name for an id: `org/name` -> `org--name` (ids never contain `--`)."""
    return model_id.replace("/", "--")


def hub_folder_name(model_id: str) -> str:
    """The Hugging Face hub-cache folder of a model repo: `org/name` -> `models--org--name`."""
    return "models--" + entry_folder_name(model_id)


# `from_pretrained("org/name"` or `from_pretrained('name'` with a literal first argument.
_FROM_PRETRAINED_LITERAL = re.compile(
    r"""from_pretrained\(\s*(?:pretrained_model_name_or_path\s*=\s*)?["']([^"'\n]+)["']"""
)


def referenced_model_ids(source: str) -> list[str]:
    """Model ids passed as string literals to `from_pretrained(...)` in Python source (a user's model.py).

    Lets the caller learn which ids handler code will load, so a worker can be made offline when one of
    them is registered (see ModelRegistry.worker_environment). Paths and other non-ids are left out.
    """
    found = (match.group(1) for match in _FROM_PRETRAINED_LITERAL.finditer(source))
    return list(dict.fromkeys(text for text in found if is_model_id(text)))
