"""The pure translator: sentences in, hypotheses out, and what is worth telling about them returned, not kept."""

import dataclasses
import logging
import math

import numpy as np
import pytest

from sequencer.runs import load_run
from sequencer.search import Hypotheses
from sequencer.translation import Translator, keep_finite, warn_if_young
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

    def decode(source_ids, beam_width, n_best):
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
