"""One module per `posebench` subcommand: `add_parser(sub)` declares its flags, `run(args)` runs it and prints."""
