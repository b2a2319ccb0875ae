"""What the scripts share: flags generated from the config keys, a quiet TensorFlow, logging, clean failure.

A SequencerError (bad configuration or input) is printed as one line and exits with status 2,
without a traceback; so is a mistyped flag, with the closest valid one. A file that cannot be
read or written (OSError) is one line too, with status 1; Ctrl-C and SIGTERM exit with status
130 after the work in hand has cleaned up (serve.py's SIGTERM, a graceful stop, exits 0: see
sequencer/serving/server.py).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Collection
from contextlib import contextmanager
from pathlib import Path

# Before TensorFlow is imported anywhere: most of its C++ start-up chatter (CUDA probing on a CPU
# machine) follows this variable; `import_tensorflow` catches the lines that do not.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sequencer.config import KEYS, KEYS_BY_NAME, Config, load_config, render_config
from sequencer.errors import ConfigError, DataError, SequencerError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("sequencer.cli")

# Lines TensorFlow's C++ libraries log while they load: absl's notice that logging is not set up,
# and log lines in absl's format (I0000 00:00:... file.cc:12] ...) or TensorFlow's own
# (2026-01-01 12:00:00.000000: I file.cc:12] ...); and the information lines of the SentencePiece
# that tensorflow-text links, as it loads a model (normalizer.cc(51) LOG(INFO) ...).
_NATIVE_LOG_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\] .*"
    r"|\S+\.cc\(\d+\) LOG\(INFO\) .*"
)


def keys_of(*sections: str) -> tuple[str, ...]:
    """The names of the config keys of `sections`, in declaration order."""
    return tuple(key.name for key in KEYS if key.section in sections)


# Where and on how many threads TensorFlow computes: every script that runs a model reads them.
DEVICE_KEYS = ("device", "threads")

# The keys training reads (train.py, tune.py): the held-out test split is scored at the end with
# the Prediction settings, and only the best translation of each sentence.
TRAINING_KEYS = (
    "train_dir",
    "model_dir",
    "prepared_dir",
    "run_name",
    *keys_of("Data", "Model", "Training"),
    *(name for name in keys_of("Prediction") if name != "n_best"),
)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, a "did you mean" for a mistyped flag, and the keys a script uses.

    Every config key is a flag (`--epochs 5`), but `--help` lists only the keys in `uses`, and a
    flag of another key is accepted with a warning that the script ignores it.
    """

    def __init__(self, description: str, uses: Collection[str]):
        script = os.path.basename(sys.argv[0]) or "the script"
        super().__init__(
            description=description,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"The other config keys are accepted as flags but {script} does not use them; "
            "docs/configuration.md describes every key.",
        )
        self.uses = frozenset(uses)
        self.add_argument("--config", metavar="FILE", help="config file (default: config.txt in the repository)")
        self.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
        self.add_argument("--quiet", action="store_true", help="no progress and no messages but warnings and errors")
        groups: dict[str, argparse._ArgumentGroup] = {}
        for key in KEYS:
            help_text = argparse.SUPPRESS
            if key.name in self.uses:
                if key.section not in groups:
                    groups[key.section] = self.add_argument_group(f"{key.section} keys (flags override config.txt)")
                default = key.format(key.default) or "empty"
                help_text = f"{key.help}; {key.allowed()} (default: {default})"
            (groups.get(key.section) or self).add_argument(
                f"--{key.name}", metavar=key.kind.upper(), default=argparse.SUPPRESS, help=help_text
            )

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        arguments = sys.argv[1:] if args is None else list(args)
        # Unknown flags first: argparse would otherwise give a mistyped flag's value to a
        # positional argument (predict.py's "-") and complain about that instead.
        for argument in arguments:
            if argument == "--":
                break
            if argument.startswith("--") and argument.split("=", 1)[0] not in self._option_string_actions:
                self._unknown_flag(argument)
        parsed, extras = self.parse_known_args(arguments, namespace)
        if extras:
            if extras[0].startswith("-"):
                self._unknown_flag(extras[0])
            self.error(f"unexpected argument {extras[0]!r}")
        return parsed

    def resolve(self, config: Config, args: argparse.Namespace) -> Config:
        """The configuration the script runs with (and `--print-config` shows): `config` itself,
        unless the script takes it from elsewhere (train.py --resume: the run's)."""
        return config

    def ignored_flags(self, args: argparse.Namespace) -> dict[str, str]:
        """{key: warning} for the config-key flags in `args` that the script does not use."""
        return {
            name: f"--{name} is not a setting {self.prog} uses; it is ignored"
            for name in command_line_flags(args)
            if name not in self.uses
        }

    def _unknown_flag(self, argument: str):
        """Exit naming the flag, and the one meant: of the flags `--help` lists, one the typed
        text begins (`--ep`: `--epochs`), else the closest; of the others, the closest."""
        typed = argument.split("=", 1)[0]
        flags = [option for option in self._option_string_actions if option.startswith("--")]
        listed = [
            flag
            for flag in flags
            if flag.removeprefix("--") in self.uses or flag.removeprefix("--") not in KEYS_BY_NAME
        ]
        begun = [flag for flag in listed if flag.startswith(typed)]
        close = (
            begun[:1] or difflib.get_close_matches(typed, listed, n=1) or difflib.get_close_matches(typed, flags, n=1)
        )
        self.error(f"unknown flag {argument}" + (f" (did you mean {close[0]}?)" if close else ""))

    def error(self, message: str):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


class TranslatingParser(Parser):
    """The parser of the scripts that translate with a run or, with `--export DIR`, an export of
    scripts/export.py (predict.py, evaluate.py, serve.py, score.py). A flag of a key that the export's format
    fixes (a SavedModel's decoding settings) is ignored, with a warning."""

    def __init__(self, description: str, uses: Collection[str]):
        super().__init__(description, uses)
        self.add_argument(
            "--export",
            type=Path,
            metavar="DIR",
            help="use an export of scripts/export.py instead of a run: a SavedModel (its own decoding "
            "settings only) or a CTranslate2 model",
        )

    def ignored_flags(self, args: argparse.Namespace) -> dict[str, str]:
        ignored = super().ignored_flags(args)
        if args.export:
            from sequencer.exports import FIXED_KEYS, read_export

            try:
                fixed, why = FIXED_KEYS[read_export(args.export.absolute())["format"]]
            except DataError:  # not an export: the script says so, after what it checks first
                return ignored
            for name in command_line_flags(args):
                if name in fixed and name not in ignored:
                    ignored[name] = f"--{name} does not apply to {why}; it is ignored"
        return ignored


def chosen_export(args: argparse.Namespace) -> tuple[Path, dict] | None:
    """The folder `--export` names and its export.json, checked (DataError if it is no export); None
    without `--export`. ConfigError if `--run` names a model too."""
    if not args.export:
        return None
    from sequencer.exports import read_export

    if "run" in command_line_flags(args):
        raise ConfigError("--run and --export each name a model to translate with; give one of them")
    folder = args.export.absolute()
    return folder, read_export(folder)


def run_script(parser: Parser, job: Callable[[Config, argparse.Namespace], None]) -> None:
    """Parse the command line, resolve the config and run `job`, turning user errors into exit 2."""
    args = parser.parse_args()
    _configure_logging(logging.WARNING if args.quiet else logging.INFO)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name, warning in parser.ignored_flags(args).items():
            log.warning("%s", warning)
            delattr(args, name)  # dropped, so that a value the script would not use cannot stop it
        config = parser.resolve(load_config(args.config, command_line_flags(args)), args)
        if args.print_config:
            sys.stdout.write(render_config(config))
            return
        job(config, args)
    except SequencerError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except BrokenPipeError:  # what reads standard output stopped (`| head`): nothing is wrong, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush goes nowhere, quietly
        sys.exit(EXIT_FAILED)
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


def warn_of_unread_model_flags(config: Config, args: argparse.Namespace) -> None:
    """Warn of each Model-key flag that the chosen model does not read (`--num_heads` with model=lstm).

    Which keys a model reads is its `Settings`, known only once its file, and so TensorFlow, is imported.
    """
    from sequencer import builders

    read = builders.settings_of(config.model)
    for name in command_line_flags(args):
        if KEYS_BY_NAME[name].section == "Model" and name != "model" and name not in read:
            log.warning("--%s is not a setting model=%s reads; it is ignored", name, config.model)


def import_tensorflow() -> None:
    """Import TensorFlow and Keras without the lines their C++ libraries print as they load.

    TensorFlow 2.21 logs some start-up lines through absl before its own log level applies (the
    oneDNN notice on CPUs where oneDNN is on by default, CUDA probing on machines without CUDA):
    they go straight to file descriptor 2, out of Python's reach, and TF_CPP_MIN_LOG_LEVEL does
    not silence them. oneDNN itself stays as TensorFlow chose.
    """
    with native_log_lines_dropped():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


def start_ray_worker() -> None:
    """Ray's hook for each `tune.py` worker as it starts: TensorFlow imported as `import_tensorflow`
    does, and Ray's notes of every checkpoint a member saves or restores left out of the output."""
    import_tensorflow()
    for name in ("ray.train", "ray.tune.trainable"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def native_log_lines_dropped():
    """Catch file descriptor 2 while the block runs; pass on all but native log lines afterwards.

    If the block fails, everything it wrote is passed on, log lines included, to explain it;
    Ctrl-C is no failure of the block's.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        failed = False
        try:
            yield
        except Exception:  # not KeyboardInterrupt
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode("utf-8", "replace").splitlines():
                if failed or not _NATIVE_LOG_LINE.fullmatch(line):
                    print(line, file=sys.stderr)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return prefix + record.getMessage()


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.setLevel(level)
    logger = logging.getLogger("sequencer")
    logger.addHandler(handler)
    logger.setLevel(level)
    # Not on to the root logger too, where a library (absl, as TensorFlow saves a model) may have
    # put a handler of its own that would print every line again in its format.
    logger.propagate = False
