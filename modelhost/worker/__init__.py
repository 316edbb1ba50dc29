"""The worker process: serves one SageMaker instance (GET /ping, POST /invocations) from a model folder."""
