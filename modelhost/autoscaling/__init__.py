"""Application Auto Scaling for SageMaker endpoint variants: the API (`api.py`), its records (`records.py`) and
their persistence (`scaling_store.py`), and the scaling decisions (`decider.py`) the controller applies."""
