#!/usr/bin/env python3
"""Export a run to translate without it: a TensorFlow SavedModel that translates strings (tokenisation
and search inside the graph), or with --format ctranslate2 a CTranslate2 model of a Transformer."""

import logging
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
from sequencer.exports import FORMATS, QUANTIZATIONS

USES = ("model_dir", "run", *DEVICE_KEYS, *keys_of("Prediction"))


def export(config, args):
    from sequencer.errors import ConfigError
    from sequencer.exports import check_convertible, check_export_folder
    from sequencer.runs import find_run, load_config

    # Checked before TensorFlow starts: the run, that the format can express its model, and the folder to write.
    run_dir = find_run(config.model_dir, config.run)
    out_dir = args.out_dir.absolute()
    if args.quantization and args.format != "ctranslate2":
        raise ConfigError("--quantization applies to --format ctranslate2 only (a SavedModel keeps float32 weights)")
    if config.decoding == "sample" and args.format != "ctranslate2":
        raise ConfigError(
            "decoding=sample: a SavedModel decodes by search only (beam_width); a CTranslate2 export samples "
            "when it translates (--format ctranslate2)"
        )
    check_convertible(args.format, load_config(run_dir).model, run_dir)
    check_export_folder(out_dir, args.force)
    import_tensorflow()
    from sequencer.devices import configure_device
    from sequencer.runs import load_run

    configure_device(config.device, config.threads)
    run = load_run(run_dir)
    with native_log_lines_dropped():  # what SentencePiece logs as tensorflow-text loads a subword model
        if args.format == "ctranslate2":
            from sequencer.ctranslate import convert

            convert(run, out_dir, args.quantization or "float32", force=args.force)
        else:
            from sequencer.savedmodel import export

            export(run, config, out_dir, force=args.force)
    logging.getLogger("sequencer.exports").info("exported %s to %s (%s)", run_dir.name, out_dir, args.format)


class ExportParser(Parser):
    def ignored_flags(self, args):
        ignored = super().ignored_flags(args)
        if args.format == "ctranslate2":
            for name in command_line_flags(args):
                if name in KEYS_IN_EXPORT:
                    ignored[name] = (
                        f"--{name} is not fixed in a CTranslate2 export, which decodes with the Prediction keys "
                        "of whoever translates with it; it is ignored"
                    )
        return ignored


def parser():
    parser = ExportParser(__doc__, USES)
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write the export to")
    parser.add_argument("--force", action="store_true", help="replace an existing export in OUT_DIR")
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="savedmodel",
        help="savedmodel (default): a TensorFlow SavedModel; ctranslate2: a CTranslate2 model (model=transformer)",
    )
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        help="ctranslate2: the weights' type (default float32; int8 is smaller and may be faster)",
    )
    return parser


if __name__ == "__main__":
    run_script(parser(), export)
