#!/usr/bin/env python3
"""Export a run as a TensorFlow SavedModel that translates strings, tokenisation and search inside the graph."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import DEVICE_KEYS, Parser, import_tensorflow, keys_of, native_log_lines_dropped, run_script

USES = ("model_dir", "run", *DEVICE_KEYS, *keys_of("Prediction"))


def export(config, args):
    from sequencer.runs import check_export_folder, find_run

    # Checked before TensorFlow starts: the run, and the folder to write.
    run_dir = find_run(config.model_dir, config.run)
    out_dir = args.out_dir.absolute()
    check_export_folder(out_dir, args.force)
    import_tensorflow()
    from sequencer.devices import configure_device
    from sequencer.export import export
    from sequencer.runs import load_run

    configure_device(config.device, config.threads)
    with native_log_lines_dropped():  # what SentencePiece logs as tensorflow-text loads a subword model
        export(load_run(run_dir), config, out_dir, force=args.force)
    logging.getLogger("sequencer.export").info("exported %s to %s", run_dir.name, out_dir)


def parser():
    parser = Parser(__doc__, USES)
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write the SavedModel to")
    parser.add_argument("--force", action="store_true", help="replace an existing export in OUT_DIR")
    return parser


if __name__ == "__main__":
    run_script(parser(), export)
