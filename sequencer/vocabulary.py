"""Character vocabularies: text to integer ids and back.

Ids 0-3 are reserved for padding, start, end and unknown. They are positions, not characters, so
no character in the data can collide with them (the original example used TAB and newline as start
and end markers, which broke on data containing them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


class Vocabulary:
    """The characters of one side of the corpus, each with an id after the reserved ones."""

    def __init__(self, tokens: Sequence[str]):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be distinct")
        self.tokens = list(tokens)
        self._ids = {token: index + len(SPECIALS) for index, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        """Every character of `texts`, in sorted order so that the ids do not depend on file order."""
        characters = set()
        for text in texts:
            characters.update(text)
        return cls(sorted(characters))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __len__(self) -> int:
        """The number of ids, reserved ones included: the size of the model's one-hot input or softmax."""
        return len(SPECIALS) + len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        """The ids of `text`'s characters, unknown characters as UNK_ID; no start or end markers."""
        ids = self._ids
        return np.fromiter((ids.get(char, UNK_ID) for char in text), dtype=np.int32, count=len(text))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` up to the first end marker; padding and start markers are dropped."""
        characters = []
        for index in ids:
            index = int(index)
            if index == END_ID:
                break
            if index >= len(SPECIALS):
                characters.append(self.tokens[index - len(SPECIALS)])
            elif index == UNK_ID:
                characters.append(SPECIALS[UNK_ID])
        return "".join(characters)

    def to_json(self) -> dict:
        return {"specials": list(SPECIALS), "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: object) -> Vocabulary:
        """A vocabulary saved by `to_json`; ValueError if `data` does not have that shape."""
        if not isinstance(data, dict) or data.get("specials") != list(SPECIALS):
            raise ValueError("not a sequencer vocabulary")
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            raise ValueError("vocabulary tokens must be a list of strings")
        return cls(tokens)
