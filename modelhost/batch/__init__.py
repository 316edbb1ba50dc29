"""Batch transform jobs: records, filters, progress and the runner."""
