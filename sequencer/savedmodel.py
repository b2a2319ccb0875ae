"""The SavedModel export: a run as a TensorFlow SavedModel that translates text, with no Python code of this project.

The SavedModel's `serving_default` signature takes a batch of UTF-8 strings (`text`: string[None])
and returns their translations (`translation`: string[None], or string[None, n_best] when
`n_best` > 1, best first) and scores (`score`: float32, the same shape; log-probability divided by
the length penalty). Everything happens in the graph, so TensorFlow Serving, TensorFlow's own
loaders and other languages' bindings run it as it is:

- tokenisation: characters (`tf.strings.unicode_split`), words with the joiners of
  `vocabulary.tokenize_words` (core string ops; a test checks that they give the Python tokens
  for every sentence of the shipped corpus), or subwords with tensorflow-text's
  `SentencepieceTokenizer` over the run's SentencePiece model;
- the vocabulary lookup, from tables whose token files are SavedModel assets; unseen tokens read
  as the unknown id, as in `translation.Translator`;
- the batched greedy or beam search of `search.py`, in core TensorFlow ops;
- detokenisation, as `Vocabulary.decode` does it, without the leading and trailing white space
  that `translation.Translator` strips.

The decoding settings (the Prediction keys declared `in_export`: beam width, n-best, length
penalty and output lengths) are those of the config, fixed in the graph and recorded in
`export.json` beside the SavedModel (see `exports`). A subword export needs tensorflow-text's ops where it is
loaded (`import tensorflow_text`; TensorFlow Serving includes them); the others need TensorFlow alone.
`SavedModelTranslator` translates with one from Python, as the run's `translation.Translator` does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import tensorflow as tf

from sequencer.config import KEYS_IN_EXPORT, Config
from sequencer.devices import configure_device
from sequencer.errors import ConfigError, DataError
from sequencer.exports import check_export_folder, describe, write_description
from sequencer.files import atomic_path
from sequencer.runs import VOCAB_FILE, Run, load_vocabularies
from sequencer.scoring import length_penalty
from sequencer.search import BeamSearchDecoder, GreedyDecoder
from sequencer.text import first_line
from sequencer.translation import BatchTranslator, Decoding, DecodingError, Hypothesis, Sampling, Translations
from sequencer.vocabulary import END_ID, JOINER, PAD_ID, SPECIALS, START_ID, UNK_ID, Vocabulary

# What Python's `\w` matches, as RE2 (TensorFlow's regular expressions) spells it: letters,
# digits and the underscore of every script.
_WORD_CHARACTER = r"[\p{L}\p{N}_]"
# Marks where a word-level token starts, while the graph splits a sentence: a byte that UTF-8
# text never holds, so that no character of a sentence can be taken for it.
_SEPARATOR = b"\xff"
# TensorFlow's errors for a file it cannot write (it maps errno to these: ENOENT, EACCES, EEXIST,
# ENOSPC, ENOTDIR, EFBIG), which are not OSErrors: as one, the scripts report them in a line.
_FILE_ERRORS = (
    tf.errors.NotFoundError,
    tf.errors.PermissionDeniedError,
    tf.errors.AlreadyExistsError,
    tf.errors.ResourceExhaustedError,
    tf.errors.FailedPreconditionError,
    tf.errors.OutOfRangeError,
)


class Tokens(tf.Module):
    """One side's vocabulary in the graph: text to padded ids (source) or ids to text (target)."""

    def __init__(self, vocab: Vocabulary, name: str, folder: Path):
        super().__init__(name=name)
        self.level = vocab.level
        if vocab.level == "subword":
            import tensorflow_text  # only subword exports need its ops

            self.sentencepiece = tensorflow_text.SentencepieceTokenizer(model=vocab.model_proto, out_type=tf.int32)
            return
        if any("\n" in token or "\r" in token for token in vocab.tokens):
            raise DataError(f"the {name} vocabulary holds a line break, which a vocabulary file cannot")
        path = folder / f"{name}.vocab"
        path.write_text("".join(f"{token}\n" for token in vocab.tokens), encoding="utf-8")
        self.vocab_file = tf.saved_model.Asset(str(path))
        line = tf.lookup.TextFileIndex.LINE_NUMBER
        whole = tf.lookup.TextFileIndex.WHOLE_LINE
        self.ids = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                self.vocab_file, tf.string, whole, tf.int64, line, value_index_offset=len(SPECIALS)
            ),
            default_value=UNK_ID,
        )
        self.tokens = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab_file, tf.int64, line, tf.string, whole), default_value=""
        )

    def encode(self, text: tf.Tensor) -> tf.Tensor:
        """Sentences (B,) to ids (B, S), padded with PAD_ID to the longest, and at least one column."""
        if self.level == "subword":
            ids = self.sentencepiece.tokenize(text)
        else:
            tokens = tf.strings.unicode_split(text, "UTF-8") if self.level == "char" else _word_tokens(text)
            ids = tf.ragged.map_flat_values(lambda flat: tf.cast(self.ids.lookup(flat), tf.int32), tokens)
        ids = ids.to_tensor(default_value=PAD_ID)
        return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """Ids (N, T) to text (N,), up to the end marker; padding and the start marker dropped."""
        ended = tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=-1, exclusive=True) > 0
        kept = tf.ragged.boolean_mask(ids, ~ended & tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, START_ID))
        kept = tf.ragged.boolean_mask(kept, tf.not_equal(kept, END_ID))
        if self.level == "subword":
            return self.sentencepiece.detokenize(kept)
        tokens = tf.ragged.map_flat_values(
            lambda flat: tf.where(
                tf.equal(flat, UNK_ID), SPECIALS[UNK_ID], self.tokens.lookup(tf.cast(flat, tf.int64) - len(SPECIALS))
            ),
            kept,
        )
        if self.level == "char":
            return tf.strings.reduce_join(tokens, axis=-1)
        # Words: spaces between tokens, except where a joiner glues two together (detokenize_words).
        return tf.strings.regex_replace(tf.strings.reduce_join(tokens, axis=-1, separator=" "), f" ?{JOINER} ?", "")


def _word_tokens(text: tf.Tensor) -> tf.RaggedTensor:
    """`vocabulary.tokenize_words` as string ops: runs of word characters and single other characters,
    spaces between them, and a joiner on the punctuation side where two tokens touch."""
    marked = tf.strings.regex_replace(text, f"({_WORD_CHARACTER}+|[^\\p{{L}}\\p{{N}}_ ])", _SEPARATOR + rb"\1")
    pieces = tf.strings.split(marked, _SEPARATOR)[:, 1:]  # each token with the spaces after it
    tokens = tf.strings.regex_replace(pieces, " +$", "")
    values, rows = tokens.flat_values, tokens.value_rowids()
    last = tf.concat([tf.not_equal(rows[1:], rows[:-1]), [True]], axis=0)  # a sentence's last token
    touches_next = ~tf.strings.regex_full_match(pieces.flat_values, ".* ") & ~last
    is_word = tf.strings.regex_full_match(values, f"{_WORD_CHARACTER}.*")
    touches_previous = tf.concat([[False], touches_next[:-1]], axis=0)
    next_is_word = tf.concat([is_word[1:], [False]], axis=0)
    prefix = tf.where(touches_previous & ~is_word, JOINER, "")
    suffix = tf.where(touches_next & next_is_word, JOINER, "")
    return tokens.with_flat_values(tf.strings.join([prefix, values, suffix]))


class TranslationGraph(tf.Module):
    """The run's model with its vocabularies and search, as one function from text to text."""

    def __init__(self, run: Run, config: Config, folder: Path):
        super().__init__(name="translator")
        self.model = run.model
        # All of the model's state, its dropout layers' seeds included, which Keras tracks but
        # tf.Module does not reach: a variable the graph captures must be saved with it.
        self.model_state = list(run.model.variables)
        self.source = Tokens(run.source_vocab, "source", folder)
        self.target = Tokens(run.target_vocab, "target", folder)
        self.max_len, self.min_len = run.model.decoding_lengths(config, int(run.summary.get("max_target_len", 0)))
        self.n_best, self.alpha = config.n_best, config.length_penalty
        if config.beam_width == 1:
            self.search = GreedyDecoder(run.model).decode
        else:
            beam = BeamSearchDecoder(run.model, config.beam_width, config.length_penalty)
            self.search = lambda *inputs: beam.decode(*inputs, n_best=config.n_best)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def translate(self, text):
        source_ids = self.source.encode(text)[:, : self.model.max_positions]  # (B, S)
        no_prefix = tf.zeros([tf.shape(source_ids)[0], 1], tf.int32)  # a column of padding
        ids, log_probs, lengths = self.search(
            source_ids, tf.constant(self.max_len), tf.constant(self.min_len), no_prefix
        )
        shape = tf.shape(ids)  # (B, n, T)
        # Without leading and trailing white space, as `translation.Translator` gives them.
        translations = tf.strings.strip(tf.reshape(self.target.decode(tf.reshape(ids, [-1, shape[2]])), shape[:2]))
        scores = log_probs / length_penalty(tf.cast(lengths, tf.float32), self.alpha)
        empty = tf.reduce_all(tf.equal(source_ids, PAD_ID), axis=1)[:, None]  # an empty sentence: no translation
        translations, scores = tf.where(empty, "", translations), tf.where(empty, 0.0, scores)
        if self.n_best == 1:
            translations, scores = translations[:, 0], scores[:, 0]
        return {"translation": translations, "score": scores}


def export(run: Run, config: Config, out_dir: Path, force: bool = False) -> Path:
    """Write the run as a SavedModel to `out_dir`, atomically; an existing export only with `force`."""
    check_export_folder(out_dir, force)
    try:
        _write_export(run, config, out_dir)
    except _FILE_ERRORS as error:  # TensorFlow writes the SavedModel with its own file system, and errors
        raise OSError(f"cannot write the export to {out_dir} ({first_line(error)})") from None
    return out_dir


def _write_export(run: Run, config: Config, out_dir: Path) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sequencer-export-") as scratch, atomic_path(out_dir) as partial:
        translator = TranslationGraph(run, config, Path(scratch))
        tf.saved_model.save(translator, str(partial), signatures={"serving_default": translator.translate})
        settings = {name: getattr(config, name) for name in KEYS_IN_EXPORT}
        # The output lengths as resolved for the run: 0 means a length of its own.
        settings.update(max_output_len=translator.max_len, min_output_len=translator.min_len)
        needs_text = run.source_vocab.level == "subword"
        write_description(partial, run, describe(run, "savedmodel", **settings, needs_tensorflow_text=needs_text))


class SavedModelTranslator(BatchTranslator):
    """A SavedModel of `export`, loaded with `tf.saved_model.load` and translating through its
    `serving_default` signature, in batches of the configuration's `decode_batch_size`.

    It decodes with the beam width, n-best, length penalty and output lengths fixed in its graph
    (`fixed_search`), whatever the configuration says. The run's vocabularies beside it give a
    sentence's length in tokens and its unknown tokens; an export made before they were saved
    there has none, and a sentence's length is then its characters, with no token reported as
    unknown. Whether a translation was cut at max_output_len the signature does not say:
    `at_length_limit` stays 0. A SavedModel whose signature is not export.py's, or which cannot
    translate "Hello." once loaded, is a DataError naming the folder.
    """

    fixed_search = True

    def __init__(self, folder: Path, description: dict, config: Config):
        configure_device(config.device, config.threads)
        if description["needs_tensorflow_text"]:
            import tensorflow_text  # noqa: F401 -- registers the SentencePiece ops of a subword export
        try:
            self._saved_model = tf.saved_model.load(str(folder))  # kept: its signature uses the model's tables
            self._signature = self._saved_model.signatures["serving_default"]
        except Exception as error:  # TensorFlow raises many types for a damaged or foreign folder
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f"{folder}: cannot load the SavedModel ({problem})") from None
        self.name, self.token_level = description["run"], description["token_level"]
        if config.decoding == "sample":
            raise DecodingError(
                f"decoding=sample: {folder} is a SavedModel export, which decodes by search only; translate with "
                "its run or a CTranslate2 export to sample"
            )
        self.default = Decoding("search", description["beam_width"], description["n_best"], Sampling())
        self.length_penalty = description["length_penalty"]
        self.max_output_len, self.min_output_len = description["max_output_len"], description["min_output_len"]
        self.decode_batch_size = config.decode_batch_size
        self.source_vocab = load_vocabularies(folder)[0] if (folder / VOCAB_FILE).is_file() else None
        self._check_signature(folder)

    @property
    def source_unit(self) -> str:
        return self.source_vocab.unit if self.source_vocab else Vocabulary([], self.token_level).unit

    def translate(self, sentences, beam_width=None, n_best=None, progress=None, **options) -> Translations:
        asked = (beam_width or self.beam_width, n_best or self.n_best)
        if asked != (self.beam_width, self.n_best):
            raise ConfigError(
                f"beam_width={asked[0]} and n_best={asked[1]}: this export decodes with "
                f"beam_width={self.beam_width} and n_best={self.n_best} only"
            )
        return super().translate(sentences, progress=progress, **options)

    def _read(self, sentence: str) -> tuple[str, int, list[str]]:
        """The sentence itself (the graph tokenises it), its length and unknown tokens."""
        if self.source_vocab is None:
            return sentence, len(sentence), []
        _, length, unknown = super()._read(sentence)
        return sentence, length, unknown

    def _decode(self, sources: list[str], prefixes: None, how: Decoding) -> tuple[list[list[Hypothesis]], int]:
        output = self._signature(text=tf.constant(sources, tf.string))
        translations = output["translation"].numpy().reshape(len(sources), -1)  # (B,) or (B, n_best)
        scores = output["score"].numpy().reshape(len(sources), -1)
        decoded = [
            [(text.decode("utf-8"), float(score)) for text, score in zip(row, row_scores)]
            for row, row_scores in zip(translations, scores)
        ]
        return decoded, 0

    def _check_signature(self, folder: Path) -> None:
        """DataError unless the signature is export.py's (text in; translation and score out) and translates."""
        inputs = self._signature.structured_input_signature[1]
        outputs = self._signature.structured_outputs
        text = inputs.get("text")
        if text is None or text.dtype != tf.string or not {"translation", "score"} <= set(outputs):
            shown = ", ".join(f"{name}: {spec.dtype.name}" for name, spec in inputs.items())
            raise DataError(
                f"{folder}: its serving_default signature takes ({shown}) and returns ({', '.join(sorted(outputs))}), "
                "not export.py's (text: string) and (translation, score)"
            )
        try:
            self._decode(["Hello."], None, self.default)
        except Exception as error:  # whatever the graph raises, it is the export's
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f'{folder}: the SavedModel cannot translate "Hello." ({problem})') from None
