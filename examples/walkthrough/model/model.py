# A DJL / LMI handler in the shape of the "deploy Falcon-40B on SageMaker" guides: a transformers
# text-generation pipeline behind `handle(inputs)`. It runs unchanged on SageMaker's LMI container
# and on modelhost; the model id resolves through modelhost's registry (`modelhost models add`).
import logging

import torch
from djl_python import Input, Output
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_model(properties):
    model_location = properties.get("model_id") or properties["model_dir"]
    logging.info(f"Loading model in {model_location}")
    dtype = DTYPES.get(properties.get("dtype", "fp32"), torch.float32)
    if not torch.cuda.is_available() and dtype == torch.float16:
        dtype = torch.float32  # fp16 matmuls are slow or missing on CPU
    tokenizer = AutoTokenizer.from_pretrained(model_location)
    model = AutoModelForCausalLM.from_pretrained(
        model_location,
        dtype=dtype,
        trust_remote_code=properties.get("trust_remote_code", "false").lower() == "true",
    )
    return pipeline(task="text-generation", model=model, tokenizer=tokenizer)


model = None


def handle(inputs: Input):
    global model
    if model is None:
        model = load_model(inputs.get_properties())
    if inputs.is_empty():
        return None  # the initialisation call
    data = inputs.get_as_json()
    text = data["text"]
    text_length = int(data.get("text_length", 100))
    messages = [{"role": "user", "content": text}]
    outputs = model(messages, do_sample=True, temperature=0.6, top_p=0.9, max_new_tokens=text_length)
    answer = outputs[0]["generated_text"][-1]["content"]
    return Output().add_as_json({"outputs": [{"generated_text": answer}]})
