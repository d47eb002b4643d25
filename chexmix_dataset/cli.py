"""The ``chexmix`` command line: one subcommand per module, loaded only when used.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``. Bad input
raised as :class:`ChexmixInputError` becomes one line on stderr and exit code 2. Ctrl-C exits
with 130 and SIGTERM with 143, after removing temporary outputs (:mod:`.atomic`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from chexmix_dataset.atomic import Terminated, install_signal_cleanup
from chexmix_dataset.errors import ChexmixInputError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "project": ("chexmix_dataset.commands.project", "project a CT (and lesion mask) to a frontal X-ray"),
    "phantom": ("chexmix_dataset.commands.phantom", "write synthetic chest CT phantoms with lesion masks"),
    "build": ("chexmix_dataset.commands.build", "build a CheXMix config and print a per-split summary"),
    "export": ("chexmix_dataset.commands.export", "export a config as COCO or VIA (Matterport Mask R-CNN)"),
    "show": ("chexmix_dataset.commands.show", "draw a grid of images with lesion overlays"),
    "bench": ("benchmark.cli", "train and score lesion segmentation models on CheXMix"),
    "predict": ("benchmark.predict", "predict lesion masks on chest X-rays with a trained model (research only)"),
    "publish-model": ("benchmark.publish_model", "publish a trained model as a Hugging Face model repository"),
    "publish": ("chexmix_dataset.commands.publish", "publish CheXMix configs to the Hugging Face Hub"),
}


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit code 2 (argparse adds a usage block)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser_for(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    parser = _OneLineErrors(prog="chexmix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv else None
    module = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            # Import only the chosen subcommand: `chexmix project` must not pay for torch.
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = _parser_for(argv)
    args = parser.parse_args(argv)
    install_signal_cleanup(always_raise=True)
    try:
        return int(module.run(args) or 0)  # type: ignore[union-attr]
    except ChexmixInputError as exc:
        print(f"chexmix {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"chexmix {args.command}: interrupted; no partial output left", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"chexmix {args.command}: {exc}; no partial output left", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
