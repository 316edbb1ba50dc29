"""Model runners: execute one engine step (prompt chunks + decodes) and return the next-token logits."""
