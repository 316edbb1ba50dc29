"""Durable desired and observed state."""
