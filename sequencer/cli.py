"""What the scripts share: flags generated from the config keys, logging, and clean failure.

A SequencerError (bad configuration or input) is printed as one line and exits with status 2,
without a traceback; a file that cannot be read or written (OSError) likewise, with status 1;
Ctrl-C and SIGTERM exit with status 130 after the work in hand has cleaned up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable

# Before TensorFlow is imported anywhere: its C++ start-up chatter (CUDA probing on a CPU machine)
# buries the messages that matter. Its real errors still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sequencer.config import KEYS, Config, load_config, render_config
from sequencer.errors import SequencerError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser with `--config`, `--print-config` and one `--KEY VALUE` flag per config key."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", metavar="FILE", help="config file (default: config.txt in the repository)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key in KEYS:
        if key.section not in groups:
            groups[key.section] = parser.add_argument_group(f"{key.section} (config keys; flags override config.txt)")
        groups[key.section].add_argument(
            f"--{key.name}",
            metavar=key.kind.upper(),
            default=argparse.SUPPRESS,
            help=f"{key.help}; {key.allowed()} (default: {key.format(key.default) or 'empty'})",
        )
    return parser


def run_script(parser: argparse.ArgumentParser, job: Callable[[Config, argparse.Namespace], None]) -> None:
    """Parse the command line, resolve the config and run `job`, turning user errors into exit 2."""
    args = parser.parse_args()
    _configure_logging()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        config = load_config(args.config, command_line_flags(args))
        if args.print_config:
            sys.stdout.write(render_config(config))
            return
        job(config, args)
    except SequencerError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as error:  # a file that cannot be read or written: the user's to fix, no traceback
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def command_line_flags(args: argparse.Namespace) -> dict[str, str]:
    """{key: text} of the config keys given as flags."""
    return {key.name: getattr(args, key.name) for key in KEYS if hasattr(args, key.name)}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return prefix + record.getMessage()


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("sequencer")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
