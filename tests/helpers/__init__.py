"""Shared test helpers: commands, workspaces, test-only trainers, converter checks."""
