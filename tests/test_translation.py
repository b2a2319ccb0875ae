"""The pure translator: sentences in, hypotheses out, and what is worth telling about them returned, not kept."""

import dataclasses
import logging
import math

import numpy as np
import pytest
from conftest import untrained_transformer

from sequencer.runs import load_run
from sequencer.search import Hypotheses
from sequencer.translation import DecodingError, Sampling, Translator, keep_finite, warn_if_young
from sequencer.vocabulary import END_ID


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


def test_unknown_tokens_come_back_with_the_translations_and_nothing_is_kept(run):
    translator = Translator(run)
    first = translator.translate(["Hello Ж!", "", "I am cold."])
    assert len(first.hypotheses) == 3 and first.hypotheses[1] == [("", 0.0)]
    assert first.unknown_tokens == {"H": 1, "Ж": 1}  # H: no sentence of the toy corpus starts with it
    second = translator.translate(["I am cold."])
    assert not second.unknown_tokens  # nothing carried over from the first call
    assert second.best == [first.best[2]]


def test_the_best_hypothesis_stays_and_alternatives_of_probability_zero_go():
    assert keep_finite([("a", -math.inf), ("b", -1.0), ("c", -math.inf)]) == [("a", -math.inf), ("b", -1.0)]


def test_translations_lose_their_edge_spaces_and_cuts_at_the_length_limit_are_counted(run, monkeypatch):
    translator = Translator(run, run.config.replace(max_output_len=6))
    padded = [*run.target_vocab.encode("  oui  "), END_ID]  # a character model pads with spaces as with anything
    endless = list(run.target_vocab.encode("ouioui"))  # six tokens, no end marker: cut at the limit

    def decode(source_ids, prefix_ids, how):
        rows = [padded, endless + [0] * (len(padded) - len(endless))]
        ids = np.array([rows[i % 2] for i in range(len(source_ids))], np.int32)[:, None, :]
        return Hypotheses(ids, np.zeros((len(source_ids), 1)), np.full((len(source_ids), 1), 6))

    monkeypatch.setattr(translator, "_search", decode)
    found = translator.translate(["Go.", "Run!", "Hi."])
    assert sorted(found.best) == ["oui", "oui", "ouioui"]
    assert found.at_length_limit == 1


def test_a_run_still_inside_its_warm_up_is_a_warning(run, caplog):
    young = dataclasses.replace(
        run, config=run.config.replace(warmup_steps=1000), summary={**run.summary, "updates": 16}
    )
    with caplog.at_level(logging.WARNING, logger="sequencer.translation"):
        warn_if_young(young)
        warn_if_young(run)  # no warm-up: nothing to say
    assert caplog.messages == [
        f"{run.path} has trained 16 updates, still inside its warm-up of warmup_steps=1000: expect poor translations "
        f"(train.py --resume {run.path.name} --epochs N trains it further)"
    ]


PREFIXES = ["Je suis", "", "Il", "Qui est", "Nous"]


@pytest.mark.parametrize("level", ["char", "word", "subword"])
def test_a_translation_starts_with_its_prefix_s_tokens_exactly_whatever_the_decoding(level, tmp_path):
    run = untrained_transformer(tmp_path, level)
    translator = Translator(run, run.config.replace(max_output_len=12))
    sentences = ["Go.", "I am cold.", "Who are you?", "Run!", "We lost."]
    for how in ({}, {"beam_width": 3, "n_best": 2}, {"decoding": "sample", "n_best": 2, "sampling": Sampling(seed=3)}):
        found = translator.translate(sentences, prefixes=PREFIXES, **how)
        for prefix, hypotheses in zip(PREFIXES, found.hypotheses):
            # As written: "Q" is not in the toy corpus's characters, and decodes as <unk>. (That the
            # decoders keep the prefix's ids is test_search's; re-encoding the text would not tell,
            # as subwords segment "Il" + "lll" otherwise than "Illll".)
            assert all(text.startswith(prefix) for text, _ in hypotheses), (level, how, prefix, hypotheses)


def test_a_prefix_of_unknown_tokens_is_counted_and_one_too_long_is_a_decoding_error(run):
    translator = Translator(run, run.config.replace(max_output_len=8))
    found = translator.translate(["Go."], prefixes=["Ж"])
    assert found.unknown_tokens["Ж"] == 1
    with pytest.raises(DecodingError, match=r"prefix 2 has 8 tokens; a translation may have 8 \(max_output_len\)"):
        translator.translate(["Go.", "Run!"], prefixes=["", "abcdefgh"])
    with pytest.raises(DecodingError, match="1 prefixes for 2 sentences"):
        translator.translate(["Go.", "Run!"], prefixes=[""])


def test_sampling_reproduces_with_its_seed_and_varies_without(run):
    translator = Translator(run, run.config.replace(decoding="sample", n_best=4))
    first, again = (translator.translate(["I am cold.", "Go."], sampling=Sampling(seed=7)) for _ in range(2))
    assert first.hypotheses == again.hypotheses
    assert all(len(hypotheses) == 4 for hypotheses in first.hypotheses)
    other = translator.translate(["I am cold.", "Go."], sampling=Sampling(seed=8))
    assert other.hypotheses != first.hypotheses
    greedy = Translator(run).translate(["I am cold.", "Go."]).best
    assert translator.translate(["I am cold.", "Go."], sampling=Sampling(temperature=0), n_best=1).best == greedy


def test_sampling_settings_at_their_limits_draw_the_most_probable_token(run):
    # A temperature or top_p too small for 32-bit floats, a top_k beyond the vocabulary: as
    # sharp as the settings say, without overflowing or emptying the nucleus.
    translator, sentences = Translator(run), ["I am cold.", "Go."]
    greedy = translator.translate(sentences).best
    for extreme in (Sampling(temperature=1e-40), Sampling(top_p=1e-300), Sampling(top_k=10**9, temperature=1e-30)):
        assert translator.translate(sentences, decoding="sample", sampling=extreme).best == greedy


def test_a_pair_with_an_empty_source_is_a_decoding_error_naming_it(run):
    with pytest.raises(DecodingError, match="pair 2 has an empty source"):
        Translator(run).score(iter([("Go.", "Va !"), ("", "Rien.")]))


def test_a_translation_is_one_line_whatever_bytes_the_model_emits(run, monkeypatch):
    # A subword model falls back on byte pieces, which can spell a tab, a line break or NUL.
    translator = Translator(run)
    monkeypatch.setattr(translator, "_decode", lambda sources, prefixes, how: ([[("a\tb\nc\x00d\r\n", -1.0)]], 0))
    assert translator.translate(["Go."]).best == ["a b c d"]
