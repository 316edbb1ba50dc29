"""Engine mode: the built-in engine (modelhost.worker.engine) behind /ping, /invocations and the OpenAI routes.

serving_mode decides handler vs engine mode and builds the EngineConfig; server owns the HTTP surface;
generation opens and collects generations; schemas/ parse and answer the LMI, TGI and OpenAI shapes.
"""
