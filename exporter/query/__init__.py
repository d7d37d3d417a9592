"""The query layer shared by the CLI and the dashboard: guard, run, write results."""
