"""Back-translation's own steps: synthetic pairs written from monolingual text, and the forward run's corpora."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import tiny_config

from sequencer import backtranslation
from sequencer.backtranslation import forward_config, write_synthetic_pairs
from sequencer.config import CorpusSource
from sequencer.errors import DataError


@dataclass
class Found:
    best: list[str]


class Reverser:
    """A translator that spells each sentence backwards ("" for one that starts with "-") and counts its calls."""

    def __init__(self):
        self.calls = []

    def translate(self, sentences):
        self.calls.append(list(sentences))
        return Found(["" if text.startswith("-") else text[::-1] for text in sentences])


def test_each_line_gives_a_tagged_synthetic_source_and_the_line_as_target(tmp_path, monkeypatch):
    monkeypatch.setattr(backtranslation, "CHUNK_LINES", 2)  # chunks of two lines, and a last one of one
    monolingual = tmp_path / "mono.txt"
    monolingual.write_text("Bonjour.\n\n  \nMerci !\r\n-vide\nAu revoir.\n", encoding="utf-8")
    translator, output = Reverser(), tmp_path / "synthetic.txt"
    made = write_synthetic_pairs(translator, monolingual, output, tag="<bt> ")
    assert made == backtranslation.Synthetic(pairs=3, blank=2, empty=1)
    assert output.read_text(encoding="utf-8").splitlines() == [
        "<bt> .ruojnoB\tBonjour.",
        "<bt> ! icreM\tMerci !",
        "<bt> .riover uA\tAu revoir.",
    ]
    assert translator.calls == [["Bonjour.", "Merci !"], ["-vide", "Au revoir."]]


def test_a_line_a_pair_cannot_hold_stops_with_its_file_and_line_and_writes_nothing(tmp_path):
    monolingual, output = tmp_path / "mono.txt", tmp_path / "synthetic.txt"
    monolingual.write_text("Bonjour.\nun\ttab\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mono.txt:2: a tab in a monolingual line"):
        write_synthetic_pairs(Reverser(), monolingual, output)
    monolingual.write_text("\n-\n", encoding="utf-8")
    with pytest.raises(DataError, match="gave no synthetic pair: no sentence in it"):
        write_synthetic_pairs(Reverser(), monolingual, output)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mono.txt"]  # no file, nor a temporary one


def test_the_synthetic_pairs_join_the_real_ones_or_are_a_weighted_corpus_of_their_own(tmp_path):
    config = tiny_config(tmp_path)
    synthetic = Path("/data/synthetic.txt")
    joined = forward_config(config, synthetic, None)
    assert joined.train_dir == (*config.train_dir, CorpusSource(synthetic)) and not joined.weighted
    weighed = forward_config(config, synthetic, 0.5)
    assert [source.weight for source in weighed.train_dir] == [1.0, 0.5]
    already = config.replace(train_dir=(CorpusSource(config.train_dir[0].path, 3.0),))
    assert [source.weight for source in forward_config(already, synthetic, None).train_dir] == [3.0, 1.0]
