"""SageMaker's nouns as frozen dataclasses and their rules: no I/O, no framework, snake_case inside.

AWS's PascalCase shapes exist only at the API edge (`modelhost/api/shapes.py` converts once) and the store
serialises these records (`modelhost/store/records.py`); nothing else sees a raw row.
"""
