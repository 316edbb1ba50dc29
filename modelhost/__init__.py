"""modelhost: deploy LLMs to HTTP endpoints on your own machines, speaking the SageMaker hosting API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
