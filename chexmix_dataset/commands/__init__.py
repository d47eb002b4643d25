"""One module per ``chexmix`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
