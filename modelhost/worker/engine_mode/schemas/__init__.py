"""Request parsing and response formatting of the engine's HTTP APIs: LMI, TGI and OpenAI (pure)."""
