"""A tiny DJL Serving handler: answers every JSON request with what it was sent (no weights, no downloads).

The first call "loads" for ECHO_LOAD_SECONDS seconds (the model's Environment; default 0), logging a line a
second as a real model's shards would, so a deploy can be made to last long enough to watch its logs.
"""

import logging
import os
import time

from djl_python import Input, Output

log = logging.getLogger(__name__)
properties = None


def handle(inputs: Input) -> Output | None:
    global properties
    if properties is None:
        seconds = int(os.environ.get("ECHO_LOAD_SECONDS", "0"))
        for step in range(1, seconds + 1):
            time.sleep(1)
            log.info("echo model: loading step %d/%d", step, seconds)
        properties = inputs.get_properties()
        log.info("echo model: loaded from %s", properties.get("model_dir"))
    if inputs.is_empty():
        return None
    return Output().add_as_json({"echo": inputs.get_as_json(), "content_type": inputs.get_property("Content-Type")})
