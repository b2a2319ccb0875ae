"""Export: a run as a TensorFlow SavedModel that translates text, with no Python code of this project.

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
`export.json` beside the SavedModel. A subword export needs tensorflow-text's ops where it is loaded (`import
tensorflow_text`; TensorFlow Serving includes them); the others need TensorFlow alone.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import tensorflow as tf

from sequencer import __version__
from sequencer.config import KEYS_IN_EXPORT, Config
from sequencer.errors import DataError
from sequencer.files import atomic_path
from sequencer.runs import EXPORT_FILE, Run, check_export_folder
from sequencer.search import BeamSearchDecoder, GreedyDecoder, length_penalty
from sequencer.text import first_line
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
        description = {
            "sequencer_version": __version__,
            "run": run.path.name,
            "model": run.config.model,
            "token_level": run.source_vocab.level,
            **{name: getattr(config, name) for name in KEYS_IN_EXPORT},
            "max_output_len": translator.max_len,  # as resolved for the run: 0 means a length of its own
            "min_output_len": translator.min_len,
            "needs_tensorflow_text": run.source_vocab.level == "subword",
        }
        (partial / EXPORT_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
