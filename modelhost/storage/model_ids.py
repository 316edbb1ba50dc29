"""Which local path a model id names (`option.model_id`, `option.s3url`, `OPTION_MODEL_ID`, `HF_MODEL_ID`), and
whether the model-data limits let a worker read it. Pure apart from resolving symlinks when asked.

A model id is a local path unless it is a model id (`org/name` or `name`: a registered id or a Hugging Face hub
id) or a URL other than file://. `/opt/ml/model` is the model data (SageMaker's mount point). Relative paths are
relative to the model folder, which is where the worker resolves them (serving_mode.py). A path inside the model
folder is part of the model data, already allowed; any other path follows the ModelDataUrl rule of limits.py:
anywhere while no access keys exist and MODELHOST_LOCAL_DATA_ROOTS is unset, nowhere once keys exist unless the
roots allow it, and only under the roots when they are set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelhost.registry.model_id import is_model_id
from modelhost.storage.limits import outside_roots_reason, resolved_outside_roots_reason

SAGEMAKER_MODEL_DIR = "/opt/ml/model"  # HF_MODEL_ID=/opt/ml/model means "the model data"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# where a model id may come from in a model's Environment, in the order the worker takes them
# (worker/properties.py: merge_environment; ServingProperties.model_id prefers model_id over s3url)
ENVIRONMENT_FORMS = ("OPTION_MODEL_ID", "HF_MODEL_ID", "OPTION_S3URL")
FILE_FORMS = ("option.model_id", "option.s3url")
FIX = (
    "put the weights in the model data (ModelDataUrl), or register them with `modelhost models add MODEL_ID PATH` "
    "and name that id"
)


def model_id_path(model_id: str, model_dir: Path | None) -> Path | None:
    """The local path `model_id` names; None when it names none (a model id, an s3:// or https:// URL).
    `/opt/ml/model` is `model_dir`; a relative path is joined to `model_dir` (kept relative without one)."""
    text = model_id.strip()
    if not text or is_model_id(text):
        return None
    if _URL.match(text):
        if not text.lower().startswith("file://"):
            return None
        text = unquote(urlsplit(text).path) or "/"
    if text.rstrip("/") == SAGEMAKER_MODEL_DIR:
        return model_dir if model_dir is not None else Path(SAGEMAKER_MODEL_DIR)
    path = Path(text)
    if not path.is_absolute() and model_dir is not None:
        path = model_dir / path
    return Path(os.path.normpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def model_id_refusal(
    where: str, model_id: str, model_dir: Path | None, roots: tuple[Path, ...] | None, *, resolve: bool
) -> str | None:
    """Why a worker may not read the local path `model_id` names (None: it may, or it names none).

    `where` names the setting (`option.model_id`, `HF_MODEL_ID`). Without `model_dir` (CreateModel) a relative
    path is judged from its text: inside the model data unless a `..` leads out. With `resolve`, symlinks are
    followed (inside the model folder they must stay inside it, else the roots decide). Refusals end with
    what to fix."""
    path = model_id_path(model_id, model_dir)
    if path is None or roots is None or model_id.strip().rstrip("/") == SAGEMAKER_MODEL_DIR:
        return None  # no local path, no limits, or the model data itself
    shown = f"{where}={model_id.strip()}"
    if not path.is_absolute():
        if path.parts[:1] != ("..",):
            return None
        return f"{shown} leads outside the model data; {FIX}"
    if model_dir is not None and _inside(path, Path(os.path.normpath(model_dir))):
        if not resolve:
            return None
        real_dir = Path(os.path.realpath(model_dir))
        if _inside(Path(os.path.realpath(path)), real_dir):
            return None
    reason = outside_roots_reason(path, roots)
    if reason is None and resolve:
        reason = resolved_outside_roots_reason(path, roots)
    if reason is None:
        return None
    return f"{shown}: {reason.removesuffix('; use s3:// or https:// instead')}; {FIX}"


def environment_refusal(
    environment: Mapping[str, str], roots: tuple[Path, ...] | None, model_dir: Path | None = None
) -> str | None:
    """The first refused model id in a model's Environment (CreateModel: no `model_dir`, the text alone)."""
    for name in ENVIRONMENT_FORMS:
        value = environment.get(name)
        if isinstance(value, str):
            reason = model_id_refusal(name, value, model_dir, roots, resolve=model_dir is not None)
            if reason is not None:
                return reason
    return None


def deployment_refusal(
    file_properties: Mapping[str, str], environment: Mapping[str, str], model_dir: Path, roots: tuple[Path, ...] | None
) -> str | None:
    """The first refused model id of a deployment: serving.properties (`option.model_id`, `option.s3url`), then
    the Environment forms (every one is judged, even one the file overrides), symlinks resolved."""
    for key in FILE_FORMS:
        value = file_properties.get(key)
        if value:
            reason = model_id_refusal(f"serving.properties {key}", value, model_dir, roots, resolve=True)
            if reason is not None:
                return reason
    return environment_refusal(environment, roots, model_dir)
