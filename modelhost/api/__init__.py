"""SageMaker-compatible control-plane edge (AWS JSON 1.1, X-Amz-Target)."""
