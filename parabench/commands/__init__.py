"""One module per subcommand; each exposes `register(subparsers)`. The CLI finds them all."""
