"""Every configuration key, declared once, and how a configuration is resolved.

`KEYS` is the single declaration of each key: its type, default, allowed values and a one-line
description. Validation, the command-line flags and the comments in `config.txt` all follow from it.

Values are taken from, highest precedence first:

1. a command-line flag (`--epochs 5`),
2. an environment variable (`SEQUENCER_EPOCHS=5`),
3. the `.env` file beside the config file (`SEQUENCER_EPOCHS=5` lines),
4. the config file (`config.txt`, or `--config FILE`), `KEY=VALUE` lines read with python-dotenv,
5. the defaults below.

Relative paths in the config file and `.env` are relative to the config file's folder, so the scripts
work from any working directory; relative paths given on the command line or in the environment are
relative to the working directory, as a shell user expects.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from sequencer.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_FILE = REPO_ROOT / "config.txt"
ENV_PREFIX = "SEQUENCER_"
log = logging.getLogger(__name__)
# Configs from the original sequencer group their keys under `[Files]`-style headers: ignored.
_SECTION_HEADER = re.compile(r"^\[[^\]]*\]$")


@dataclass(frozen=True)
class Key:
    """One configuration key. `kind` is int, float, bool, str, path, run, corpora, choice or list (comma-separated).

    `choices` is a tuple, or a function returning one for choices found at run time (plug-ins);
    `aliases` maps other names of a choice to it (a key that was a bool keeps taking `true`).
    A str key may have a `pattern` (a regular expression the whole value must match), described
    to the user by `pattern_help`. A `run` is a run folder: a bare name means a folder in
    `model_dir` (see `run_folder`). `corpora` are comma-separated paths of folders or files,
    each with an optional `:WEIGHT` (see `CorpusSource`). `resumable` keys of the training sections may change when a
    run is resumed; the others must stay as the run was started (see `check_resume`). The
    Prediction keys `in_export` are fixed in a SavedModel when it is exported.
    """

    name: str
    kind: str
    default: Any
    help: str
    section: str
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True when `low` itself is not allowed
    high_open: bool = False  # True when `high` itself is not allowed
    pattern: str = ""
    pattern_help: str = ""
    resumable: bool = False
    in_export: bool = False  # a Prediction key that scripts/export.py fixes in a SavedModel
    aliases: dict[str, str] | None = None  # a choice's other names, case-insensitive (`true`: float16)

    def options(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    def allowed(self) -> str:
        """What a valid value looks like, for error messages and `config.txt` comments."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.options())
        if self.kind == "list":
            return "comma-separated, from " + ", ".join(self.options()) + "; empty for none"
        if self.kind == "path":
            return "a path"
        if self.kind == "run":
            return "a run folder: its name in model_dir, or a path"
        if self.kind == "corpora":
            return "comma-separated folders or files, each optionally followed by :WEIGHT (a number > 0)"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return self.pattern_help or "text"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {opening}{_fmt(self.low)}, {_fmt(self.high)}{closing}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_fmt(self.low)}"
        return noun

    def parse(self, text: str) -> Any:
        """Turn the text of a value into its typed value; ValueError if it is not allowed."""
        text = text.strip()
        if self.kind in ("path", "run"):
            if not text and self.default:  # only a path that is empty by default may be left empty
                raise ValueError
            return text
        if self.kind == "corpora":
            entries = [_corpus_entry(item.strip()) for item in text.split(",") if item.strip()]
            if not entries:
                raise ValueError
            return entries
        if self.kind == "str":
            if self.pattern and not re.fullmatch(self.pattern, text):
                raise ValueError
            return text
        if self.kind == "choice":
            text = (self.aliases or {}).get(text.lower(), text)
            if text not in self.options():
                raise ValueError
            return text
        if self.kind == "bool":
            if text.lower() not in _BOOLEANS:
                raise ValueError
            return _BOOLEANS[text.lower()]
        if self.kind == "list":
            items = [item.strip() for item in text.split(",") if item.strip()]
            if any(item not in self.options() for item in items):
                raise ValueError
            return items
        value = int(text) if self.kind == "int" else float(text)
        if not self.within(value):
            raise ValueError
        return value

    def within(self, value: float) -> bool:
        """Whether a number is one this key allows: finite, and within its bounds (also what the
        server checks a request's sampling fields by)."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def format(self, value: Any) -> str:
        """The text of a value as it is written in `config.txt`."""
        if self.kind == "list":
            return ",".join(value)
        if self.kind == "corpora":  # the default is the text of one path
            return value if isinstance(value, str) else ",".join(str(entry) for entry in value)
        if self.kind == "bool":
            return "true" if value else "false"
        return str(value)


@dataclass(frozen=True)
class CorpusSource:
    """One entry of `train_dir`: a folder (its *.txt and *.txt.gz files) or a file of pairs, and
    the weight its pairs are sampled with when several corpora train together (None: not given)."""

    path: Path
    weight: float | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.weight:g}" if self.weight is not None else str(self.path)


def _corpus_entry(text: str) -> tuple[str, float | None]:
    """(path text, weight) of `PATH[:WEIGHT]`; ValueError for an empty path or a weight not above 0.

    A colon followed by anything but a number is part of the path."""
    path, colon, weight = text.rpartition(":")
    try:
        number = float(weight) if colon else None
    except ValueError:
        number = None
    if number is None:
        path, number = text, None
    elif not (math.isfinite(number) and number > 0):
        raise ValueError
    if not path:
        raise ValueError
    return path, number


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# The sections whose keys say how a run is trained: they name the run folder, and resuming may
# change only their `resumable` keys.
TRAINING_SECTIONS = ("Data", "Model", "Training")
OPTIMIZERS = ("adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "ftrl", "lion", "nadam", "rmsprop", "sgd")


def _models() -> tuple[str, ...]:
    from sequencer import builders

    return tuple(builders.available())


def _batchers() -> tuple[str, ...]:
    from sequencer import batchers

    return tuple(batchers.available())


_NUMBER_PAIR = r"\d+(\.\d*)?([eE]-?\d+)?,\d+(\.\d*)?([eE]-?\d+)?"

KEYS: tuple[Key, ...] = (
    # Files
    Key(
        "train_dir",
        "corpora",
        "./training_files",
        "training pairs, one source<TAB>target per line: folders (their *.txt and *.txt.gz files) or files, "
        "comma-separated; with a :WEIGHT after any of them each is a corpus sampled in proportion to its weight "
        "(1 where none is given), else all are one corpus",
        "Files",
    ),
    Key(
        "model_dir",
        "path",
        "./models",
        "folder that receives one folder per training run, and the file `latest` naming the newest",
        "Files",
    ),
    Key(
        "prepared_dir",
        "path",
        "",
        "folder of prepared corpora (scripts/prepare.py): the training pairs as ids in shards, one folder per "
        "corpus and settings, found again by their fingerprint; empty means a folder prepared in model_dir",
        "Files",
    ),
    Key("predict_in", "path", "./predict_input", "folder of *.txt files to translate, one sentence per line", "Files"),
    Key(
        "predict_out",
        "path",
        "./predict_output",
        "folder the translations are written to, one file per input file, same name",
        "Files",
    ),
    Key(
        "run",
        "run",
        "",
        "run folder predict.py, evaluate.py, export.py, serve.py and average.py use; empty: the newest in model_dir",
        "Files",
    ),
    Key(
        "run_name",
        "str",
        "",
        "name of a new run folder; empty means the model, its token level and the time it started",
        "Files",
        pattern=r"[^/\\\s.][^/\\\s]*|",
        pattern_help="a folder name without slashes or spaces, not starting with a dot; or empty",
    ),
    # Data
    Key(
        "num_samples",
        "int",
        10000,
        "number of pairs read from train_dir, in file order; 0 reads them all",
        "Data",
        low=0,
    ),
    Key(
        "val_split",
        "float",
        0.2,
        "fraction of the pairs held out for validation, drawn at random with seed",
        "Data",
        low=0,
        high=1,
        high_open=True,
    ),
    Key(
        "test_split",
        "float",
        0.0,
        "fraction of the pairs held out by source sentence, never trained on, scored at the end of training",
        "Data",
        low=0,
        high=1,
        high_open=True,
    ),
    Key(
        "token_level",
        "choice",
        "char",
        "what the model reads and writes: characters (char), words and punctuation (word), "
        "or subwords of a SentencePiece model trained on the pairs (subword)",
        "Data",
        choices=("char", "word", "subword"),
    ),
    Key(
        "max_vocab",
        "int",
        0,
        "char and word: keep the most frequent tokens of each side, the rest read as unknown; 0 keeps all",
        "Data",
        low=0,
    ),
    Key(
        "subword_vocab",
        "int",
        8000,
        "subword: the number of pieces of the SentencePiece model (at most; a small corpus may give fewer)",
        "Data",
        low=300,
    ),
    Key(
        "subword_model",
        "choice",
        "unigram",
        "subword: SentencePiece's segmentation, a unigram language model (unigram) or byte-pair encoding (bpe)",
        "Data",
        choices=("unigram", "bpe"),
    ),
    Key(
        "joint_vocab",
        "bool",
        True,
        "subword: one SentencePiece model for both sides, so that model=transformer shares one embedding table",
        "Data",
    ),
    Key(
        "subword_sample",
        "int",
        1000000,
        "subword: the sentences SentencePiece trains on, drawn at random from all of them (its "
        "input_sentence_size); 0 trains on every sentence",
        "Data",
        low=0,
    ),
    Key(
        "max_len",
        "int",
        0,
        "leave out pairs with a side longer than this many tokens; 0 keeps every length",
        "Data",
        low=0,
    ),
    Key(
        "max_len_ratio",
        "float",
        0.0,
        "leave out pairs whose longer side has more than this many times the tokens of the shorter (a "
        "misaligned pair); 0 keeps every ratio",
        "Data",
        low=0,
    ),
    Key(
        "dedup",
        "bool",
        False,
        "leave out pairs that repeat an earlier pair exactly",
        "Data",
    ),
    Key(
        "shard_pairs",
        "int",
        1000000,
        "pairs of a corpus per shard of the prepared corpus (about: pairs are dealt out at random); training reads "
        "one shard at a time, and under distribution=multi_worker each worker reads shards of its own when every "
        "corpus has as many as there are workers",
        "Data",
        low=1,
    ),
    Key(
        "reverse",
        "bool",
        False,
        "train the other direction: the second column of the pairs is the source and the first the target "
        "(fra.txt then trains French to English); evaluate.py and score.py read pairs files so too",
        "Data",
    ),
    Key(
        "on_bad_line",
        "choice",
        "error",
        "a malformed training line stops with its file:line (error) or is skipped and counted (skip)",
        "Data",
        choices=("error", "skip"),
    ),
    Key(
        "seed",
        "int",
        1,
        "random seed of the splits, the initial weights, the order of the batches, and the draws of decoding=sample",
        "Data",
        low=0,
        high=2**32 - 1,  # NumPy's seeds are 32-bit
    ),
    # Model
    Key(
        "model",
        "choice",
        "lstm",
        "the model: a file in sequencer/builders (python scripts/train.py --list)",
        "Model",
        choices=_models,
    ),
    Key(
        "latent_dim",
        "int",
        256,
        "number of units in each encoder and decoder LSTM (each direction's, when bidirectional)",
        "Model",
        low=1,
    ),
    Key(
        "num_layers",
        "int",
        1,
        "stacked LSTM layers in the encoder and in the decoder; model=transformer: the encoder's layers "
        "(and the decoder's, unless decoder_layers is above 0)",
        "Model",
        low=1,
    ),
    Key(
        "embedding_dim",
        "int",
        0,
        "size of the learned token embeddings; 0 feeds one-hot vectors, as the original model does",
        "Model",
        low=0,
    ),
    Key(
        "dropout",
        "float",
        0.0,
        "fraction of each layer's inputs dropped at random during training; 0 drops none",
        "Model",
        low=0,
        high=1,
        high_open=True,
        resumable=True,
    ),
    Key(
        "attention",
        "choice",
        "luong",
        "how model=attention scores encoder outputs: multiplicative (luong) or additive (bahdanau)",
        "Model",
        choices=("luong", "bahdanau"),
    ),
    Key("model_dim", "int", 256, "model=transformer: the width of embeddings and layers", "Model", low=1),
    Key("num_heads", "int", 4, "model=transformer: attention heads; model_dim must be a multiple", "Model", low=1),
    Key("ffn_dim", "int", 1024, "model=transformer: units of each layer's feed-forward network", "Model", low=1),
    Key(
        "decoder_layers",
        "int",
        0,
        "model=transformer: layers of the decoder; 0: as many as num_layers (the encoder's)",
        "Model",
        low=0,
    ),
    Key(
        "positions",
        "choice",
        "sinusoidal",
        "model=transformer: how token positions are encoded, fixed sinusoids (sinusoidal) or learned (learned)",
        "Model",
        choices=("sinusoidal", "learned"),
    ),
    # Training
    Key("optimizer", "choice", "rmsprop", "Keras optimizer", "Training", choices=OPTIMIZERS),
    Key(
        "learning_rate",
        "float",
        0.001,
        "the optimizer's initial learning rate",
        "Training",
        low=0,
        low_open=True,
        resumable=True,
    ),
    Key(
        "lr_schedule",
        "choice",
        "constant",
        "the learning rate over the optimizer updates, after warmup_steps: learning_rate (constant), learning_rate "
        "* sqrt(warmup_steps / update) (inverse_sqrt), or a cosine decay to 0 at the last update (cosine)",
        "Training",
        choices=("constant", "inverse_sqrt", "cosine"),
    ),
    Key(
        "warmup_steps",
        "int",
        0,
        "optimizer updates (each of accumulate_steps batches) over which the learning rate rises linearly from 0 "
        "to learning_rate; 0 starts there",
        "Training",
        low=0,
    ),
    Key(
        "label_smoothing",
        "float",
        0.0,
        "fraction of each target's probability spread over the whole vocabulary in the loss; 0 smooths nothing",
        "Training",
        low=0,
        high=1,
        high_open=True,
    ),
    Key("clipnorm", "float", 0.0, "clip each gradient to this norm; 0 means no clipping", "Training", low=0),
    Key(
        "loss",
        "choice",
        "categorical_crossentropy",
        "training loss; both names mean cross-entropy on integer targets (the sparse form), padding excluded",
        "Training",
        choices=("categorical_crossentropy", "sparse_categorical_crossentropy"),
    ),
    Key(
        "metrics",
        "list",
        ["accuracy"],
        "metrics reported each epoch, padding excluded",
        "Training",
        choices=("accuracy",),
    ),
    Key(
        "batch_size",
        "int",
        64,
        "pairs per training batch (unless batch_tokens is set)",
        "Training",
        low=1,
        resumable=True,
    ),
    Key(
        "batch_tokens",
        "int",
        0,
        "fill each batch with pairs of similar length up to this many tokens (pairs x the longer side after "
        "padding) instead of batch_size pairs; 0 counts pairs",
        "Training",
        low=0,
    ),
    Key(
        "accumulate_steps",
        "int",
        1,
        "apply the optimizer once every this many batches, with their mean gradient: an effective batch this many "
        "times larger",
        "Training",
        low=1,
    ),
    Key(
        "average_last",
        "int",
        0,
        "keep the last this many epoch checkpoints (or snapshots, with average_every) and, at the end of training, "
        "average their weights; the average replaces model.keras if it scores better on the validation pairs; "
        "0 or 1 does not average",
        "Training",
        low=0,
    ),
    Key(
        "average_every",
        "int",
        0,
        "with average_last: average snapshots of the weights taken every this many optimizer updates instead of "
        "the epoch checkpoints, so that the average spans the end of a short run; 0 averages epoch checkpoints",
        "Training",
        low=0,
    ),
    Key(
        "ema_decay",
        "float",
        0.0,
        "keep an exponential moving average of the weights, after each batch average = ema_decay * average + "
        "(1 - ema_decay) * weights; validation, model.keras and the checkpoints hold the average; 0 keeps none",
        "Training",
        low=0,
        high=1,
        high_open=True,
    ),
    Key(
        "init_from",
        "run",
        "",
        "start a new run from this trained run's weights and vocabularies (fine-tuning on new data): its name in "
        "model_dir, or a path; the model keys must be its own; empty starts from random weights",
        "Training",
    ),
    Key(
        "keep_optimizer",
        "bool",
        False,
        "with init_from: go on with that run's optimizer state and learning-rate schedule rather than fresh ones",
        "Training",
    ),
    Key(
        "batcher",
        "choice",
        "bucketed",
        "how pairs are grouped into batches: a file in sequencer/batchers (--list)",
        "Training",
        choices=_batchers,
    ),
    Key(
        "epochs",
        "int",
        100,
        "epochs to train: passes over the training pairs, or of steps_per_epoch updates",
        "Training",
        low=1,
        resumable=True,
    ),
    Key(
        "steps_per_epoch",
        "int",
        0,
        "optimizer updates an epoch lasts, whatever the corpus size: validation, checkpoints, early stopping and "
        "the metrics row come at its end; 0 makes an epoch one pass over the training pairs",
        "Training",
        low=0,
        resumable=True,
    ),
    Key(
        "train_steps",
        "int",
        0,
        "stop after this many optimizer updates in all, at the end of an epoch or within one (instead of after "
        "epochs); 0: epochs decides",
        "Training",
        low=0,
        resumable=True,
    ),
    Key(
        "max_minutes",
        "float",
        0.0,
        "stop training after this many minutes of it, counted over every resumption, with a checkpoint; 0: no limit",
        "Training",
        low=0,
        resumable=True,
    ),
    Key(
        "monitor",
        "choice",
        "val_loss",
        "metric that picks the best epoch for model.keras, early stopping and the learning-rate schedule",
        "Training",
        choices=("val_loss", "loss", "val_accuracy", "accuracy", "val_chrf"),
    ),
    Key(
        "mode",
        "choice",
        "auto",
        "whether a lower (min) or higher (max) monitor is better; auto: min for losses, max for accuracy and chrF",
        "Training",
        choices=("auto", "min", "max"),
    ),
    Key(
        "eval_every",
        "int",
        0,
        "translate validation pairs every this many epochs and log their chrF as val_chrf; 0 never does",
        "Training",
        low=0,
    ),
    Key("eval_pairs", "int", 200, "validation pairs that eval_every translates", "Training", low=1),
    Key(
        "early_stopping_patience",
        "int",
        0,
        "stop after this many epochs without a better monitor; 0 never stops early",
        "Training",
        low=0,
        resumable=True,
    ),
    Key(
        "lr_patience",
        "int",
        0,
        "multiply the learning rate by lr_factor after this many epochs without a better monitor; 0 never does",
        "Training",
        low=0,
    ),
    Key(
        "lr_factor",
        "float",
        0.5,
        "factor that lr_patience applies to the learning rate",
        "Training",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    ),
    Key(
        "device",
        "str",
        "auto",
        "where to compute: auto (a GPU if there is one), cpu, gpu (the first) or gpu:N",
        "Training",
        pattern=r"auto|cpu|gpu(:\d+)?",
        pattern_help="auto, cpu, gpu or gpu:N",
        resumable=True,
    ),
    Key(
        "threads",
        "int",
        0,
        "threads TensorFlow uses within one operation and for operations that run in parallel "
        "(intra-op and inter-op); 0 lets TensorFlow choose, about one per core",
        "Training",
        low=0,
        resumable=True,
    ),
    Key(
        "distribution",
        "choice",
        "auto",
        "train on one device (none), the local GPUs (mirrored) or the machines in TF_CONFIG (multi_worker); "
        "auto: mirrored when several GPUs are visible",
        "Training",
        choices=("auto", "none", "mirrored", "multi_worker"),
        resumable=True,
    ),
    Key(
        "jit_compile",
        "choice",
        "auto",
        "compile training steps with XLA: auto lets Keras decide (off on a CPU), true or false",
        "Training",
        choices=("auto", "true", "false"),
    ),
    Key(
        "mixed_precision",
        "choice",
        "false",
        "compute in float16 (Keras mixed_float16; needs a GPU; true is float16 too) or bfloat16 (mixed_bfloat16: "
        "a GPU of compute capability 8.0+, or a CPU, native with avx512_bf16 or amx_bf16) with float32 weights; "
        "false: float32",
        "Training",
        choices=("false", "float16", "bfloat16"),
        aliases={"true": "float16", "false": "false"},  # a run's config.json from before holds a JSON boolean
    ),
    # Prediction
    Key(
        "beam_width",
        "int",
        1,
        "hypotheses kept per sentence in beam search; 1 decodes greedily",
        "Prediction",
        low=1,
        in_export=True,
    ),
    Key(
        "decoding",
        "choice",
        "search",
        "how translations are made: by search, greedy or beam (beam_width), or drawn from the model (sample: "
        "temperature, top_k, top_p, and n_best samples per sentence, reproducible with seed)",
        "Prediction",
        choices=("search", "sample"),
    ),
    Key(
        "temperature",
        "float",
        1.0,
        "decoding=sample: divides the model's log-probabilities (below 1 sharpens, above 1 flattens); 0 is greedy",
        "Prediction",
        low=0,
    ),
    Key(
        "top_k",
        "int",
        0,
        "decoding=sample: draw among the this many most probable tokens only; 0 draws among all",
        "Prediction",
        low=0,
    ),
    Key(
        "top_p",
        "float",
        1.0,
        "decoding=sample: draw among the fewest most probable tokens whose probabilities add up to this "
        "(nucleus sampling); 1 draws among all",
        "Prediction",
        low=0,
        high=1,
        low_open=True,
    ),
    Key(
        "length_penalty",
        "float",
        0.6,
        "GNMT length penalty alpha of beam search: 0 compares plain log-probabilities, higher favours longer output",
        "Prediction",
        low=0,
        in_export=True,
    ),
    Key(
        "n_best",
        "int",
        1,
        "translations written per line, best first, tab-separated: at most beam_width, or samples with decoding=sample",
        "Prediction",
        low=1,
        in_export=True,
    ),
    Key("decode_batch_size", "int", 256, "sentences translated together in one batch", "Prediction", low=1),
    Key(
        "max_output_len",
        "int",
        0,
        "longest translation in tokens; 0 means twice the longest target seen in training",
        "Prediction",
        low=0,
        in_export=True,
    ),
    Key(
        "min_output_len",
        "int",
        1,
        "shortest translation in tokens of a non-empty sentence: the end marker cannot come sooner; 0 allows none",
        "Prediction",
        low=0,
        in_export=True,
    ),
    # Serving
    Key(
        "host",
        "str",
        "127.0.0.1",
        "address scripts/serve.py listens on; 0.0.0.0 opens it to other machines",
        "Serving",
        pattern=r"[\w.:-]+",
        pattern_help="a host name or IP address",
    ),
    Key("port", "int", 8000, "port scripts/serve.py listens on", "Serving", low=1, high=65535),
    Key(
        "allowed_hosts",
        "str",
        "",
        "host names, besides IP addresses, localhost and host, that requests to scripts/serve.py may name and "
        "its pages come from (a reverse proxy's public name); * lets requests name any host (no DNS-rebinding guard)",
        "Serving",
        pattern=r"(\*|[\w.-]+)(,(\*|[\w.-]+))*|",
        pattern_help="comma-separated host names, *, or empty",
    ),
    Key(
        "dynamic_batching",
        "bool",
        True,
        "decode the sentences of concurrent requests together, up to decode_batch_size at a time",
        "Serving",
    ),
    Key(
        "batch_wait_ms",
        "int",
        5,
        "with dynamic_batching, how long a request waits for others to join its batch, in milliseconds",
        "Serving",
        low=0,
    ),
    Key("max_request_sentences", "int", 64, "sentences one request may hold", "Serving", low=1),
    Key("max_sentence_chars", "int", 1000, "characters one sentence of a request may hold", "Serving", low=1),
    Key(
        "max_beam_width",
        "int",
        8,
        "the widest beam a request may ask for, and the most samples (n_best with decoding=sample)",
        "Serving",
        low=1,
    ),
    Key(
        "max_request_tokens",
        "int",
        30000,
        "the most decoding one request may cost: its sentences' source tokens times its beam width (or samples); "
        "a /score request's source and target tokens; 0: no bound",
        "Serving",
        low=0,
    ),
    # Tuning
    Key("population_size", "int", 4, "members trained side by side by scripts/tune.py", "Tuning", low=2),
    Key("ready_after", "int", 2, "epochs between two exploit-and-explore steps of the population", "Tuning", low=1),
    Key("stop_after", "int", 10, "epochs each member trains in all", "Tuning", low=1),
    Key(
        "truncation",
        "float",
        0.2,
        "at each step, the members in this bottom fraction copy a member of the top fraction and perturb its settings",
        "Tuning",
        low=0,
        high=0.5,
        low_open=True,
    ),
    Key(
        "learning_rate_range",
        "str",
        "0.0001,0.01",
        "learning rates the population explores, drawn log-uniformly",
        "Tuning",
        pattern=_NUMBER_PAIR,
        pattern_help="LOW,HIGH with 0 < LOW < HIGH",
    ),
    Key(
        "dropout_range",
        "str",
        "0.0,0.5",
        "dropout rates the population explores, drawn uniformly",
        "Tuning",
        pattern=_NUMBER_PAIR,
        pattern_help="LOW,HIGH with 0 <= LOW < HIGH < 1",
    ),
    Key(
        "batch_size_choices",
        "str",
        "32,64,128",
        "batch sizes the population explores",
        "Tuning",
        pattern=r"[1-9]\d*(,[1-9]\d*)*",
        pattern_help="comma-separated positive integers",
    ),
    Key(
        "ray_address",
        "str",
        "",
        "Ray cluster to tune on; empty starts a local Ray in scripts/tune.py",
        "Tuning",
        pattern=r"([\w.-]+:\d+)?",
        pattern_help="HOST:PORT, or empty",
    ),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}
KEYS_IN_EXPORT = tuple(key.name for key in KEYS if key.in_export)


class Config:
    """A resolved configuration: every key has a typed value; paths are absolute `Path`s."""

    def __init__(self, values: dict[str, Any], config_file: Path | None):
        self._values = values
        self.config_file = config_file

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Config:
        """A copy with some values changed (already typed), e.g. for tests and tools."""
        unknown = set(changes) - set(KEYS_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r}")
        values = {**self._values, **changes}
        _check_together(values)
        return Config(values, self.config_file)

    @property
    def monitor_mode(self) -> str:
        """ "min" or "max": `mode`, or for auto, which way the monitored metric is better."""
        if self.mode != "auto":
            return self.mode
        return "max" if higher_is_better(self.monitor) else "min"

    @property
    def validation_monitor(self) -> tuple[str, str]:
        """The metric that compares two models on the validation pairs, and its mode: `monitor`
        with `monitor_mode`, or val_loss ("min") when the monitor is a training metric."""
        if self.monitor.startswith("val_"):
            return self.monitor, self.monitor_mode
        return "val_loss", "min"

    @property
    def prepared_folder(self) -> Path:
        """Where prepared corpora are: `prepared_dir`, or `model_dir/prepared`."""
        return self.prepared_dir or self.model_dir / "prepared"

    @property
    def weighted(self) -> bool:
        """Whether `train_dir` names corpora with weights (each its own corpus) rather than one corpus."""
        return any(source.weight is not None for source in self.train_dir)

    @property
    def constant_learning_rate(self) -> bool:
        """Whether the learning rate is one number (which lr_patience may lower) rather than a schedule."""
        return self.lr_schedule == "constant" and not self.warmup_steps

    def output_lengths(self, longest_target: int) -> tuple[int, int]:
        """The (longest, shortest) translation in tokens: `max_output_len`, or twice the longest
        training target (`longest_target`; 100 if unknown), and `min_output_len` within it."""
        longest = self.max_output_len or 2 * longest_target or 100
        return longest, min(self.min_output_len, longest)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (paths as strings), in declaration order."""
        return {
            key.name: str(value) if isinstance(value, Path) else key.format(value) if key.kind == "corpora" else value
            for key, value in ((KEYS_BY_NAME[name], value) for name, value in self._values.items())
        }


@dataclass(frozen=True)
class _Setting:
    """A value's text and where it came from: the place for error messages, the folder for paths."""

    text: str
    where: str
    base_dir: Path


def load_config(
    config_file: str | Path | None = None,
    flags: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Resolve the configuration from flags, environment, `.env`, the config file and defaults.

    `config_file` None means `config.txt` at the repository root, which may be absent (defaults
    apply); a file named explicitly must exist. Raises ConfigError naming the key, the value and
    where it was set.
    """
    environ = dict(os.environ if environ is None else environ)
    cwd = Path.cwd()
    if config_file is None:
        path = DEFAULT_CONFIG_FILE
        if not path.is_file():
            path = None
    else:
        path = Path(config_file).expanduser().absolute()
        if not path.is_file():
            # Not a pipe either (`--config <(...)`): python-dotenv reads the file twice.
            problem = (
                "is a folder, not a file"
                if path.is_dir()
                else "is not a regular file"
                if path.exists()
                else "does not exist"
            )
            raise ConfigError(f"config file {config_file} {problem}")
    base_dir = path.parent if path else REPO_ROOT

    settings: dict[str, _Setting] = {}
    if path:
        settings.update(_read_config_file(path))
    dotenv_file = base_dir / ".env"
    if dotenv_file.is_file():
        settings.update(_read_dotenv(dotenv_file, base_dir))
    settings.update(_read_environment(environ, "environment variable ", cwd))
    for name, text in (flags or {}).items():
        if name not in KEYS_BY_NAME:
            raise ConfigError(f"unknown key {name!r}")
        settings[name] = _Setting(text, f"--{name}", cwd)

    return _resolve(settings, base_dir, path)


def config_from_dict(data: dict, where: str, flags: dict[str, str] | None = None) -> Config:
    """A Config from a saved `config.json` (as `Config.to_dict` wrote it), then `flags` on top.

    Keys the saved config lacks take their defaults, so runs saved by an older version still load.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object of config keys")
    settings = {}
    for name, value in data.items():
        if name not in KEYS_BY_NAME:
            raise ConfigError(f"{where}: unknown key {name!r}{_suggest(name)}")
        text = ",".join(value) if isinstance(value, list) else str(value)
        settings[name] = _Setting(text, f"{where}: {name}", Path.cwd())
    for name, text in (flags or {}).items():
        settings[name] = _Setting(text, f"--{name}", Path.cwd())
    return _resolve(settings, Path.cwd(), None)


def _resolve(settings: dict[str, _Setting], base_dir: Path, config_file: Path | None) -> Config:
    """Typed values for every key: the settings' values where given, else the defaults."""
    values = {}
    for key in KEYS:
        setting = settings.get(key.name)
        if setting is None:
            value = key.default
            base = base_dir
        else:
            try:
                value = key.parse(setting.text)
            except ValueError:
                raise ConfigError(
                    f"{setting.where}: {key.name}={setting.text!r} is not allowed; expected {key.allowed()}"
                ) from None
            base = setting.base_dir
        if key.kind == "path" and value != "":
            value = (base / Path(value).expanduser()).resolve()
        if key.kind == "corpora":
            entries = [_corpus_entry(value)] if isinstance(value, str) else value  # a default is one path
            value = tuple(CorpusSource((base / Path(path).expanduser()).resolve(), weight) for path, weight in entries)
        if key.kind == "run" and value != "":
            value = run_folder(value, values["model_dir"], base)
        values[key.name] = value
    _check_together(values)
    return Config(values, config_file)


def run_folder(text: str, model_dir: Path, base_dir: Path) -> Path:
    """The run folder `text` names: a bare name (no slash) is a run in `model_dir`, as `models/latest`
    names it; anything else is a path, relative to `base_dir`."""
    if not any(mark in text for mark in ("/", os.sep, "~")) and text not in (".", ".."):
        return model_dir / text
    return (base_dir / Path(text).expanduser()).resolve()


def check_architecture(trained: Config, config: Config, model_keys: frozenset[str], run_dir: Path) -> None:
    """ConfigError if `config` builds another model than the run `trained` was trained with: the
    model, and the keys it reads (`model_keys`: its Settings' fields, and those of the
    vocabularies), must be the run's."""
    for name in ("model", *sorted(model_keys)):
        before, now = getattr(trained, name), getattr(config, name)
        if before != now:
            key = KEYS_BY_NAME[name]
            raise ConfigError(
                f"{name}={key.format(now)} differs from the {key.format(before)} of {run_dir}, whose weights and "
                f"vocabularies init_from starts from; set {name}={key.format(before)}"
            )


def check_resume(saved: Config, config: Config, run_dir: Path) -> None:
    """ConfigError if `config` changes a setting that a run resumed from `saved` must keep.

    The settings of the training sections shape the data, the weights and the optimizer; only
    the keys declared `resumable` may change between the start of a run and its resumption.
    Files, prediction and tuning keys do not concern the weights and may always change.
    """
    for key in KEYS:
        if key.section not in TRAINING_SECTIONS or key.resumable:
            continue
        before, now = getattr(saved, key.name), getattr(config, key.name)
        if before != now:
            allowed = ", ".join(key.name for key in KEYS if key.resumable)
            raise ConfigError(
                f"{key.name} cannot change when resuming {run_dir} (it was {key.format(before) or 'empty'}, "
                f"not {key.format(now) or 'empty'}); only {allowed} can"
            )


def where_to_set(name: str) -> str:
    """How a user changes the key `name`, for the end of a message about its value."""
    return f"set {name} in the config file, or with --{name}"


def higher_is_better(metric: str) -> bool:
    """Whether a higher value of `metric` is better: accuracy and chrF yes, losses no."""
    return not metric.endswith("loss")


def number_pair(text: str) -> tuple[float, float]:
    """The two numbers of a `LOW,HIGH` value (a key with the _NUMBER_PAIR pattern)."""
    low, high = map(float, text.split(","))
    return low, high


def _check_together(values: dict[str, Any]) -> None:
    """Values that are each allowed but not with each other."""
    monitor = values["monitor"]
    if monitor.startswith("val_") and values["val_split"] == 0:
        raise ConfigError(
            f"monitor={monitor} needs validation pairs, but val_split=0; set monitor=loss or val_split > 0"
        )
    if values["val_split"] + values["test_split"] >= 1:
        raise ConfigError(
            f"val_split={values['val_split']} and test_split={values['test_split']} leave no training pairs"
        )
    if values["decoding"] == "sample" and values["beam_width"] > 1:
        raise ConfigError(
            f"beam_width={values['beam_width']} is beam search's; decoding=sample draws n_best samples instead "
            "(set beam_width=1, or decoding=search)"
        )
    if values["decoding"] == "search" and values["n_best"] > values["beam_width"]:
        raise ConfigError(
            f"n_best={values['n_best']} needs beam_width >= {values['n_best']} (beam_width={values['beam_width']})"
        )
    for name, low, high in (("learning_rate_range", 0, math.inf), ("dropout_range", 0, 1)):
        first, second = number_pair(values[name])
        if not (low <= first < second < high) or (name == "learning_rate_range" and first == 0):
            raise ConfigError(f"{name}={values[name]}: expected {KEYS_BY_NAME[name].pattern_help}")
    if monitor == "val_chrf" and not values["eval_every"]:
        raise ConfigError("monitor=val_chrf needs eval_every >= 1")
    if values["token_level"] == "subword" and values["max_vocab"]:
        raise ConfigError(
            f"max_vocab={values['max_vocab']} applies to char and word tokens; subwords use subword_vocab"
        )
    if values["model_dim"] % values["num_heads"]:
        raise ConfigError(f"model_dim={values['model_dim']} must be a multiple of num_heads={values['num_heads']}")
    if values["lr_patience"] and not Config(values, None).constant_learning_rate:
        raise ConfigError("lr_patience lowers a constant learning rate, not a schedule (lr_schedule or warmup_steps)")
    if values["lr_schedule"] == "inverse_sqrt" and not values["warmup_steps"]:
        raise ConfigError("lr_schedule=inverse_sqrt needs warmup_steps >= 1 (its peak comes at the end of warm-up)")
    if values["average_last"] > 1 and not values["val_split"]:
        raise ConfigError("average_last compares the average with the best epoch on validation pairs; val_split=0")
    if values["average_every"] and values["average_last"] < 2:
        raise ConfigError(
            f"average_every={values['average_every']} needs average_last=2 or more (the snapshots to average); "
            "or set average_every=0 to take none"
        )
    if 0 < values["max_len_ratio"] < 1:
        raise ConfigError(
            f"max_len_ratio={values['max_len_ratio']} would leave out every pair (a ratio is at least 1); "
            "0 keeps every ratio"
        )
    if values["max_output_len"] and values["min_output_len"] > values["max_output_len"]:
        raise ConfigError(
            f"min_output_len={values['min_output_len']} is more than max_output_len={values['max_output_len']}"
        )
    if values["keep_optimizer"] and not values["init_from"]:
        raise ConfigError("keep_optimizer=true keeps the optimizer of the run init_from names; init_from is empty")
    if monitor.endswith("accuracy") and "accuracy" not in values["metrics"]:
        raise ConfigError(f"monitor={monitor} needs accuracy in metrics (metrics={','.join(values['metrics'])})")


def _read_config_file(path: Path) -> dict[str, _Setting]:
    """`KEY=VALUE` lines read with python-dotenv; every key must be declared, and set once
    (python-dotenv would keep the last of two lines, silently)."""
    bindings = _readable_bindings(path)
    values = dotenv_values(path, encoding="utf-8-sig")
    settings, lines = {}, {}  # lines: the line each key is set on
    for binding in bindings:
        if binding.key is None or (binding.value is None and _SECTION_HEADER.match(binding.key)):
            continue
        where = _where(path, binding)
        if binding.key not in KEYS_BY_NAME:
            raise ConfigError(f"{where}: unknown key {binding.key!r}{_suggest(binding.key)}")
        if binding.value is None:
            raise ConfigError(f"{where}: key {binding.key!r} has no value; expected {binding.key}=VALUE")
        if binding.key in lines:
            first = lines[binding.key]
            raise ConfigError(f"{where}: {binding.key} is set again (first on line {first}); set each key once")
        settings[binding.key] = _Setting(values[binding.key], where, path.parent)
        lines[binding.key] = _line(binding)
    return settings


def _read_dotenv(path: Path, base_dir: Path) -> dict[str, _Setting]:
    """The `SEQUENCER_<KEY>` variables of a `.env` file, warning of a line that sets a key without
    the prefix (`EPOCHS=5`): the file may hold other tools' variables, but that one was meant for us."""
    for binding in _readable_bindings(path):
        if binding.key and binding.key.lower() in KEYS_BY_NAME:
            log.warning(
                "%s: %s is not read: a .env line needs the prefix, %s%s=",
                _where(path, binding),
                binding.key,
                ENV_PREFIX,
                binding.key.upper(),
            )
    return _read_environment(dotenv_values(path), f"{_display(path)}: ", base_dir)


def _readable_bindings(path: Path) -> list:
    """python-dotenv's bindings of the lines of `path` (a config file or a .env file); ConfigError
    naming the file and line of one it cannot read, which dotenv_values would skip with a notice."""
    try:
        with open(path, encoding="utf-8-sig") as stream:
            bindings = list(parse_stream(stream))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{_display(path)}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    for binding in bindings:
        if binding.error:
            where = _where(path, binding)
            raise ConfigError(f"{where}: cannot read {binding.original.string.strip()!r}; expected KEY=VALUE")
    return bindings


def _where(path: Path, binding) -> str:
    """file:line of a binding."""
    return f"{_display(path)}:{_line(binding)}"


def _line(binding) -> int:
    """The line of a binding's key: dotenv starts a binding at the blank lines before it."""
    text = binding.original.string
    return binding.original.line + text[: len(text) - len(text.lstrip())].count("\n")


def _read_environment(variables: dict[str, str | None], where: str, base_dir: Path) -> dict[str, _Setting]:
    """The `SEQUENCER_<KEY>` variables among `variables`; other variables are not ours to judge."""
    settings = {}
    for variable, text in variables.items():
        if not variable.startswith(ENV_PREFIX) or text is None:
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if name not in KEYS_BY_NAME:
            raise ConfigError(f"{where}{variable}: unknown key {name!r}{_suggest(name)}")
        settings[name] = _Setting(text, f"{where}{variable}", base_dir)
    return settings


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), KEYS_BY_NAME, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(KEYS_BY_NAME)})"


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory where possible."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_config(config: Config | None = None) -> str:
    """The text of a config file holding `config`'s values (the defaults if None), every key commented.

    The shipped `config.txt` is this text for the defaults; a test keeps the two identical.
    """
    lines = [
        "# sequencer configuration: KEY=VALUE lines; `#` starts a comment.",
        "# Relative paths are relative to this file's folder. A command-line flag (--epochs 5) or an",
        "# environment variable (SEQUENCER_EPOCHS=5, also read from a .env file beside this one) overrides",
        "# a value here. The keys and comments below come from the declarations in sequencer/config.py.",
    ]
    section = None
    for key in KEYS:
        if key.section != section:
            section = key.section
            lines += ["", f"# ---- {section} ----"]
        value = key.default if config is None else config.to_dict()[key.name]
        lines.append(f"# {key.help} ({key.allowed()})")
        lines.append(f"{key.name}={key.format(value)}")
    return "\n".join(lines) + "\n"
