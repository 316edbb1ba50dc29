"""Where instances run: instance types, the host's GPUs, and the launchers that start workers."""
