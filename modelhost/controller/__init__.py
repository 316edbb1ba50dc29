"""Converges running instances to the desired state in the store."""
