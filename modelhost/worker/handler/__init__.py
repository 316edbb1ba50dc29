"""Handler mode: a user's DJL-style model.py served behind /ping and /invocations.

server (routes, load) -> dispatcher (queue, DJL dynamic batching by batching + batch_format) -> thread (the one
handler thread, timeouts) -> service (entry point import, init call, handle); codec maps HTTP to djl_python
Input/Output (djl: the shim's classes), streaming relays streamed Outputs.
"""
