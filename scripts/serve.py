#!/usr/bin/env python3
"""Serve translations over HTTP: POST /translate, POST /score, GET /health, a page at / and the API docs at /docs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import (
    DEVICE_KEYS,
    TranslatingParser,
    chosen_export,
    import_tensorflow,
    keys_of,
    native_log_lines_dropped,
    run_script,
)

USES = ("model_dir", "run", *DEVICE_KEYS, *keys_of("Prediction"), "seed", *keys_of("Serving"))


def serve(config, args):
    from sequencer import serving
    from sequencer.runs import find_trained_run

    # Checked before TensorFlow starts: the model to serve, the settings, the address.
    export = chosen_export(args)
    run_dir = None if export else find_trained_run(config.model_dir, config.run)
    if not export or export[1]["format"] == "ctranslate2":  # a SavedModel's beam width is its own
        serving.check_settings(config)
    sock = serving.listen(config.host, config.port)
    if not export or export[1]["format"] == "savedmodel":
        import_tensorflow()  # a CTranslate2 export needs none
    with native_log_lines_dropped():  # what TensorFlow and SentencePiece log as the model loads
        backend = serving.TranslatorBackend.load(config, run_dir, export and export[0])
        serving.warm_up(backend)
    serving.run_server(serving.create_app(backend, config), sock)


def parser():
    return TranslatingParser(__doc__, USES)


if __name__ == "__main__":
    run_script(parser(), serve)
