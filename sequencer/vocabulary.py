"""Vocabularies: text to integer ids and back, by character, by word or by subword.

Ids 0-3 are reserved for padding, start, end and unknown. They are positions, not tokens, so no
token in the data can collide with them (the original example used TAB and newline as start and
end markers, which broke on data containing them).

Subword units come from a SentencePiece model (Kudo and Richardson, 2018) trained on the
training pairs (`SubwordVocabulary`); its ids are the vocabulary's ids.

Word-level tokens are runs of letters and digits, and single other characters (punctuation, and
any space other than U+0020, such as French's narrow no-break space before `!`). Spaces (U+0020)
separate tokens. Where two tokens touch without a space, the punctuation one carries the joiner
`￭` on the touching side (`l'homme` -> `l ￭'￭ homme`, as in OpenNMT's tokenizer), so
`detokenize(tokenize(text))` gives `text` back with runs of spaces made single.
"""

from __future__ import annotations

import io
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import sentencepiece

from sequencer.errors import ConfigError, DataError
from sequencer.files import atomic_path, read_json, write_json

PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3
VOCAB_FILE = "vocab.json"  # a run's or a prepared corpus's vocabularies, beside their SentencePiece models
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
LEVELS = ("char", "word", "subword")
JOINER = "\uffed"
# Threads SentencePiece encodes a list of sentences with: the cores of the machines this runs on.
ENCODING_THREADS = 2
_WORD_PIECES = re.compile(r"\w+|[^\w ]")


def tokenize_words(text: str) -> list[str]:
    """Word-level tokens of `text`, with joiners where tokens touch (see the module docstring)."""
    tokens: list[str] = []
    previous_end = -1
    for match in _WORD_PIECES.finditer(text):
        token = match.group()
        if match.start() == previous_end:  # touches the previous token; at most one of them is a word
            if token[0].isalnum() or token[0] == "_":
                tokens[-1] += JOINER
            else:
                token = JOINER + token
        tokens.append(token)
        previous_end = match.end()
    return tokens


def detokenize_words(tokens: Iterable[str]) -> str:
    """The text of word-level tokens: spaces between them except where a joiner glues two together."""
    text = []
    glued = True  # no space before the first token
    for token in tokens:
        if not (glued or token.startswith(JOINER)):
            text.append(" ")
        glued = token.endswith(JOINER)
        text.append(token.removeprefix(JOINER).removesuffix(JOINER))
    return "".join(text)


def count_tokens(counts: Counter[str], text: str, level: str) -> None:
    """Add the char or word tokens of `text` to `counts`."""
    counts.update(text if level == "char" else tokenize_words(text))


class Vocabulary:
    """The tokens of one side of the corpus, each with an id after the reserved ones."""

    def __init__(self, tokens: Sequence[str], level: str = "char"):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be distinct")
        if level not in LEVELS:
            raise ValueError(f"vocabulary level must be one of {', '.join(LEVELS)}")
        self.tokens = list(tokens)
        self.level = level
        self._ids = {token: index + len(SPECIALS) for index, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], level: str = "char", max_size: int = 0) -> Vocabulary:
        """The tokens of `texts`; with `max_size`, only that many, the most frequent ones."""
        counts: Counter[str] = Counter()
        for text in texts:
            count_tokens(counts, text, level)
        return cls.from_counts(counts, level, max_size)

    @classmethod
    def from_counts(cls, counts: Counter[str], level: str = "char", max_size: int = 0) -> Vocabulary:
        """The tokens counted in `counts`; with `max_size`, only that many, the most frequent ones.

        Tokens are ordered by frequency, then by text, so that the ids do not depend on file order.
        """
        ranked = sorted(counts, key=lambda token: (-counts[token], token))
        return cls(ranked[:max_size] if max_size else ranked, level)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.tokens, self.level) == (other.tokens, other.level)

    def __len__(self) -> int:
        """The number of ids, reserved ones included: the size of the model's input and softmax."""
        return len(SPECIALS) + len(self.tokens)

    @property
    def unit(self) -> str:
        """What a token is, for messages: "character", "word" or "subword"."""
        return {"char": "character"}.get(self.level, self.level)

    def tokenize(self, text: str) -> list[str]:
        return list(text) if self.level == "char" else tokenize_words(text)

    def encode(self, text: str) -> np.ndarray:
        """The ids of `text`'s tokens, unknown tokens as UNK_ID; no start or end markers."""
        ids = self._ids
        tokens = self.tokenize(text)
        return np.fromiter((ids.get(token, UNK_ID) for token in tokens), dtype=np.int32, count=len(tokens))

    def encode_all(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of all `texts`, concatenated, and the number of ids of each text."""
        if self.level == "char":  # one pass over one string: the fast path for the default level
            lengths = np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
            return self.encode("".join(texts)), lengths
        encoded = [self.encode(text) for text in texts]
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        return (np.concatenate(encoded) if encoded else np.zeros(0, np.int32)), lengths

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` up to the first end marker; padding and start markers are dropped."""
        tokens = []
        for index in ids:
            index = int(index)
            if index == END_ID:
                break
            if index >= len(SPECIALS):
                tokens.append(self.tokens[index - len(SPECIALS)])
            elif index == UNK_ID:
                tokens.append(SPECIALS[UNK_ID])
        return "".join(tokens) if self.level == "char" else detokenize_words(tokens)

    def to_json(self) -> dict:
        return {"specials": list(SPECIALS), "level": self.level, "tokens": self.tokens}

    def files(self) -> dict[str, bytes]:
        """Files the vocabulary needs beside its JSON, by name: none, but for subwords."""
        return {}

    @classmethod
    def from_json(cls, data: object, folder: Path | None = None) -> Vocabulary:
        """A vocabulary saved by `to_json` (a subword one with its files in `folder`); ValueError if
        `data` does not have that shape."""
        if not isinstance(data, dict) or data.get("specials") != list(SPECIALS):
            raise ValueError("not a sequencer vocabulary")
        if data.get("level") == "subword":
            return SubwordVocabulary.from_json(data, folder)
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            raise ValueError("vocabulary tokens must be a list of strings")
        return cls(tokens, data.get("level", "char"))


class SubwordVocabulary(Vocabulary):
    """Subword units of a SentencePiece model, which is saved beside the vocabulary as its own file.

    SentencePiece is trained with the reserved ids (padding, start, end, unknown) at 0-3, so its
    ids are this vocabulary's. It keeps the text exactly as it is (no normalisation, spaces kept)
    and falls back to UTF-8 bytes for characters it has no piece for, so that nothing is unknown
    and `decode(encode(text)) == text`: translations are the exact text SentencePiece decodes.
    """

    # Training options that do not depend on the config. The thread count is fixed because the
    # trained model depends on it: the same pairs give the same model on every machine.
    OPTIONS: ClassVar[dict] = {
        "pad_id": PAD_ID,
        "bos_id": START_ID,
        "eos_id": END_ID,
        "unk_id": UNK_ID,
        "pad_piece": SPECIALS[PAD_ID],
        "bos_piece": SPECIALS[START_ID],
        "eos_piece": SPECIALS[END_ID],
        "unk_piece": SPECIALS[UNK_ID],
        "normalization_rule_name": "identity",
        "remove_extra_whitespaces": False,
        "byte_fallback": True,
        "character_coverage": 1.0,
        "hard_vocab_limit": False,  # a small corpus may not have `size` pieces to give
        "num_threads": 2,
        "minloglevel": 2,
    }

    def __init__(self, model_proto: bytes, file_name: str):
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        pieces = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]
        if pieces[: len(SPECIALS)] != list(SPECIALS):
            raise ValueError(f"{file_name} is not a SentencePiece model with ids 0-3 for {', '.join(SPECIALS)}")
        super().__init__(pieces[len(SPECIALS) :], "subword")
        self.model_proto = model_proto
        self.file_name = file_name

    @classmethod
    def train(
        cls, texts: Iterable[str], size: int, model_type: str, file_name: str, sample: int = 0, seed: int = 1
    ) -> SubwordVocabulary:
        """A SentencePiece model of about `size` pieces (`model_type` unigram or bpe) trained on `texts`.

        With `sample`, on that many of them at most, which SentencePiece draws itself as it reads
        them (its `input_sentence_size` and `shuffle_input_sentence`), with `seed`: a corpus of
        any size costs the memory and time of the sample.
        """
        model = io.BytesIO()
        sampling = {"input_sentence_size": sample, "shuffle_input_sentence": True} if sample else {}
        sentencepiece.set_random_generator_seed(seed)
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                vocab_size=size,
                model_type=model_type,
                **sampling,
                **cls.OPTIONS,
            )
        except RuntimeError as error:
            message = str(error).strip().splitlines()[-1]
            # "src/trainer_interface.cc(584) [(...)] Vocabulary size is smaller than required_chars. 300 vs 389. ..."
            needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
            if needed:
                raise ConfigError(
                    f"subword_vocab={size} is too small for these pairs: SentencePiece needs "
                    f"{needed.group(1)} pieces for their characters and its 256 byte pieces"
                ) from None
            message = message.rsplit("] ", 1)[-1].removeprefix("Internal: ")
            raise ConfigError(f"subword_vocab={size}: SentencePiece cannot train on these pairs ({message})") from None
        return cls(model.getvalue(), file_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubwordVocabulary) and self.model_proto == other.model_proto

    def tokenize(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)

    def encode(self, text: str) -> np.ndarray:
        return np.array(self.processor.encode(text), np.int32)

    def encode_all(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.processor.encode(texts, num_threads=ENCODING_THREADS)
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        values = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32, count=int(lengths.sum()))
        return values, lengths

    def decode(self, ids: Iterable[int]) -> str:
        pieces = []
        for index in ids:
            index = int(index)
            if index == END_ID:
                break
            if index not in (PAD_ID, START_ID):
                pieces.append(index)
        return self.processor.decode(pieces)

    def to_json(self) -> dict:
        return {**super().to_json(), "model_file": self.file_name}

    def files(self) -> dict[str, bytes]:
        return {self.file_name: self.model_proto}

    @classmethod
    def from_json(cls, data: dict, folder: Path | None = None) -> SubwordVocabulary:
        name = data.get("model_file")
        if not isinstance(name, str) or "/" in name or folder is None:
            raise ValueError("a subword vocabulary needs the name of its SentencePiece model file")
        try:
            return cls((folder / name).read_bytes(), name)
        except FileNotFoundError:
            raise ValueError(f"its SentencePiece model {folder / name} is missing") from None


def save_vocabularies(folder: Path, vocabularies: tuple[Vocabulary, Vocabulary]) -> None:
    """Write the source and target vocabularies to `folder`: vocab.json and any SentencePiece models."""
    source, target = vocabularies
    for name, data in {**source.files(), **target.files()}.items():
        with atomic_path(folder / name) as temporary:
            temporary.write_bytes(data)
    write_json(folder / VOCAB_FILE, {"source": source.to_json(), "target": target.to_json()})


def load_vocabularies(folder: Path) -> tuple[Vocabulary, Vocabulary]:
    """The vocabularies `save_vocabularies` wrote to `folder`; DataError naming the file if they do not load."""
    vocab = read_json(folder / VOCAB_FILE)
    try:
        return Vocabulary.from_json(vocab.get("source"), folder), Vocabulary.from_json(vocab.get("target"), folder)
    except ValueError as error:
        raise DataError(f"{folder / VOCAB_FILE}: {error}") from None
