"""The `sr-ops` subcommands that need more than a few lines (the parser is in sr_ops/__main__.py)."""
