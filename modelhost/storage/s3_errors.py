"""What an S3 error says, shared by the model-data cache (artifacts.py) and the batch/async objects (objects.py)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

MISSING_CODES = ("NoSuchKey", "404", "NotFound")  # an object (or, on HEAD, anything) that is not there


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def bucket_exists(client: Any, bucket: str) -> bool:
    """False only when S3 says the bucket is missing; unknown answers count as present (the object is then
    reported missing rather than guessed at)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        return error_code(exc) not in (*MISSING_CODES, "NoSuchBucket")
    except BotoCoreError:
        return True
    return True
