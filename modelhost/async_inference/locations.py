"""Where one async request's result or error document goes (the server's Objects: storage/objects.py `objects_for`).

Results land at `<S3OutputPath>[/<S3OutputPathExtension>]/<name>`, errors at
`<S3FailurePath>[/<S3OutputPathExtension>]/<name>`; `<name>` is the caller's `Filename` when given, else
`<InferenceId>.out` and `<InferenceId>-error.out`. An InferenceId that is not a plain file name (it may hold
any printable character) names its objects by a server-made uuid instead.
"""

from __future__ import annotations

import re
import uuid

from modelhost.storage.objects import output_uri

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RESULT_SUFFIX = ".out"
ERROR_SUFFIX = "-error.out"


def object_name(inference_id: str) -> str:
    """The stem results are named by: the InferenceId when it is a plain file name, else a fresh uuid."""
    if SAFE_NAME.fullmatch(inference_id) and ".." not in inference_id:
        return inference_id
    return str(uuid.uuid4())


def result_locations(
    output_path: str, failure_path: str | None, stem: str, extension: str | None, filename: str | None
) -> tuple[str, str | None]:
    """(output location, failure location or None). ValueError when a location would leave its folder."""
    output = output_uri(_joined(output_path, extension), filename or stem, "" if filename else RESULT_SUFFIX)
    failure = None
    if failure_path is not None:
        failure = output_uri(_joined(failure_path, extension), filename or stem, "" if filename else ERROR_SUFFIX)
    return output, failure


def _joined(path: str, extension: str | None) -> str:
    if not extension:
        return path
    return f"{path.rstrip('/')}/{extension.strip('/')}"
