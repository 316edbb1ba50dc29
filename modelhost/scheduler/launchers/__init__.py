"""The only code that starts or stops worker processes."""
