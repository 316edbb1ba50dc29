# The benchmark's copy of the guide-style handler (examples/walkthrough/model/model.py): a transformers
# text-generation pipeline behind `handle(inputs)`, one pipeline call per request. Unlike the walkthrough it
# takes the LMI request schema ({"inputs": ..., "parameters": {...}}), honours max_new_tokens /
# min_new_tokens so every benchmark request makes exactly the asked length, decodes greedily by default, and
# answers {"generated_text", "details": {"generated_tokens", "finish_reason"}} so the load generator can check
# the count. The old walkthrough body ({"text", "text_length"}) still works.
import logging

import torch
from djl_python import Input, Output
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
from transformers.generation.streamers import BaseStreamer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
GENERATE_KEYS = ("max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty")


class TokenCounter(BaseStreamer):
    """Counts the tokens generate() makes: its first put() is the prompt, every later one new tokens."""

    def __init__(self):
        self.seen_prompt = False
        self.count = 0

    def put(self, value):
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        self.count += int(value.numel())

    def end(self):
        pass


def load_model(properties):
    model_location = properties.get("model_id") or properties["model_dir"]
    logging.info(f"Loading model in {model_location}")
    dtype = DTYPES.get(properties.get("dtype", "fp32"), torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_location)
    model = AutoModelForCausalLM.from_pretrained(model_location, dtype=dtype)
    return pipeline(task="text-generation", model=model, tokenizer=tokenizer)


model = None


def handle(inputs: Input):
    global model
    if model is None:
        model = load_model(inputs.get_properties())
    if inputs.is_empty():
        return None  # the initialisation call
    data = inputs.get_as_json()
    parameters = dict(data.get("parameters") or {})
    if "text" in data:  # the walkthrough's body
        prompt = data["text"]
        parameters.setdefault("max_new_tokens", int(data.get("text_length", 100)))
    else:
        prompt = data["inputs"]
    kwargs = {"max_new_tokens": 100, "do_sample": False}
    kwargs.update({k: parameters[k] for k in GENERATE_KEYS if k in parameters})
    counter = TokenCounter()
    messages = [{"role": "user", "content": prompt}]
    outputs = model(messages, streamer=counter, **kwargs)
    answer = outputs[0]["generated_text"][-1]["content"]
    finish = "length" if counter.count >= kwargs["max_new_tokens"] else "eos_token"
    result = {"generated_text": answer}
    if parameters.get("details"):
        result["details"] = {"generated_tokens": counter.count, "finish_reason": finish}
    return Output().add_as_json(result)
