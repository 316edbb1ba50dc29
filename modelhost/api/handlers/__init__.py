"""One module per resource family; each exposes OPERATIONS: name -> handler(ctx, body) -> response."""
