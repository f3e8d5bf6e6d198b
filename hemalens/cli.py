"""The `hemalens` command: headless subcommands, or the desktop app when none is given.

Subcommands live in the package that owns them and are imported only when used, so
`hemalens classify` never loads Qt and `hemalens` (the app) never loads the CLI tools.
Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hemalens import RESEARCH_USE_STATEMENT, __version__
from hemalens.native_memory import return_large_buffers_to_os

SUBCOMMANDS: dict[str, str] = {
    "classify": "inference.cli_classify",
    "models": "inference.cli_models",
    "evaluate": "inference.cli_evaluate",
    "report": "gui.cli_report",
}


def _run_subcommand(name: str, argv: list[str]) -> int:
    module = importlib.import_module(SUBCOMMANDS[name])
    summary = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None
    parser = argparse.ArgumentParser(prog=f"hemalens {name}", description=summary, epilog=RESEARCH_USE_STATEMENT)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return int(module.run(args) or 0)


def _app_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hemalens",
        description="Review blood-smear images with local AI classifiers. "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (hemalens SUBCOMMAND --help).",
        epilog=RESEARCH_USE_STATEMENT,
    )
    parser.add_argument("paths", nargs="*", help="images or folders to open in the app")
    parser.add_argument("--version", action="version", version=f"HemaLens {__version__}")
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="load every bundled model, classify a generated image with a heatmap, exit 0/1",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return_large_buffers_to_os()  # before any image is decoded (hemalens.native_memory)
    for stream in (sys.stdout, sys.stderr):  # an odd file name printed must not end the run in a traceback
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if argv and argv[0] in SUBCOMMANDS:
        return _run_subcommand(argv[0], argv[1:])
    args = _app_parser().parse_args(argv)
    if args.selftest:
        from gui.selftest import run_selftest

        return run_selftest()
    from gui.app import run_app

    return run_app(args.paths)


if __name__ == "__main__":
    raise SystemExit(main())
