"""Archives' user interfaces: the command line (and, later, the Textual dashboard)."""
