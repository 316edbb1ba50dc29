"""The built-in LLM engine: continuous batching over a model runner, token streams out.

Entry point: `modelhost.worker.engine.factory.create_backend(EngineConfig)`; the contract is in `types.py`.
Importing this package or `types`/`factory` does not import torch.
"""
