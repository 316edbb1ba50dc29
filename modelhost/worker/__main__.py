"""`python -m modelhost.worker` starts a worker from the spec in MODELHOST_WORKER_SPEC."""

from modelhost.worker.main import main

main()
