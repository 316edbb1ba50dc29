"""`python -m modelhost` runs the CLI."""

from modelhost.cli.main import main

main()
