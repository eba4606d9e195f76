def add_commands(subparsers) -> None:
    """Placeholder until the trebuchet commands land."""
