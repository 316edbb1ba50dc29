"""Data plane: the sagemaker-runtime front door and the table of where instances listen."""
