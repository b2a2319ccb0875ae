#!/usr/bin/env python3
"""Serve translations over HTTP: POST /translate, GET /health, a page at / and the API docs at /docs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import (
    DEVICE_KEYS,
    Parser,
    command_line_flags,
    import_tensorflow,
    keys_of,
    native_log_lines_dropped,
    run_script,
)
from sequencer.config import KEYS_IN_EXPORT

USES = ("model_dir", "run", *DEVICE_KEYS, *keys_of("Prediction"), *keys_of("Serving"))
# Keys that do not apply to an export: it decodes with the settings fixed in it when it was made.
FIXED_IN_AN_EXPORT = (*KEYS_IN_EXPORT, "max_beam_width")


def serve(config, args):
    from sequencer import serving
    from sequencer.errors import ConfigError
    from sequencer.runs import find_trained_run

    # Checked before TensorFlow starts: the model to serve, the settings, the address.
    if args.export:
        if "run" in command_line_flags(args):
            raise ConfigError("--run and --export each name a model to serve; give one of them")
        export_dir = args.export.absolute()
        serving.read_export(export_dir)
    else:
        run_dir = find_trained_run(config.model_dir, config.run)
        serving.check_settings(config)
    sock = serving.listen(config.host, config.port)
    import_tensorflow()
    with native_log_lines_dropped():  # what TensorFlow and SentencePiece log as the model loads
        if args.export:
            backend = serving.ExportBackend.load(export_dir, config)
        else:
            backend = serving.RunBackend.load(run_dir, config)
        serving.warm_up(backend)
    serving.run_server(serving.create_app(backend, config), sock)


class ServeParser(Parser):
    def ignored_flags(self, args):
        ignored = super().ignored_flags(args)
        if args.export:
            for name in command_line_flags(args):
                if name in FIXED_IN_AN_EXPORT:
                    ignored[name] = (
                        f"--{name} does not apply to an export, which decodes as it was exported; it is ignored"
                    )
        return ignored


def parser():
    parser = ServeParser(__doc__, USES)
    parser.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="serve a SavedModel written by scripts/export.py instead of a run (its own beam_width and n_best only)",
    )
    return parser


if __name__ == "__main__":
    run_script(parser(), serve)
