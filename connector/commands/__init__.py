"""The `run`, `check` and `send` commands: each turns parsed settings into an exit code."""
