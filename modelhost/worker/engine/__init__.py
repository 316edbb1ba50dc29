"""The built-in LLM engine: continuous batching over a model runner, token streams out."""
