"""Scoring given translations by teacher forcing: the same numbers search gives its own hypotheses."""

import numpy as np
import pytest

from sequencer.runs import load_run
from sequencer.scoring import PairScore, TeacherForcing
from sequencer.search import BeamSearchDecoder
from sequencer.translation import Translator
from sequencer.vocabulary import END_ID, PAD_ID

SENTENCES = ["Go.", "I am cold.", "Hello!", "Who are you?", "Run!", "We lost.", "Be nice.", "It's me."]


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


@pytest.fixture(scope="module")
def ending_run(trained_run):
    """The trained run with its end marker made likelier (the tiny model, trained two epochs,
    seldom ends a translation): hypotheses of several lengths that end, to compare scores on."""
    run = load_run(trained_run)
    output = run.model.get_layer("decoder_output")
    kernel, bias = output.get_weights()
    bias[END_ID] += 3.0
    output.set_weights([kernel, bias])
    return run


def test_the_score_of_a_beam_hypothesis_is_the_beams_own_score(ending_run):
    # Scores are totals of log-probabilities with the end marker counted; divided by the GNMT
    # length penalty of that length, they are what beam search ranks its hypotheses by.
    run = ending_run
    alpha, teacher_forcing = 0.6, TeacherForcing(run.model, batch_size=3)  # batches of other lengths
    sources = [run.source_vocab.encode(sentence) for sentence in SENTENCES]
    width = max(map(len, sources))
    batch = np.array([np.pad(ids, (0, width - len(ids))) for ids in sources], np.int32)
    found = BeamSearchDecoder(run.model, 3, alpha)(batch, 20, 1, n_best=3)
    compared = 0
    for n in range(3):
        targets = [row[(row != PAD_ID) & (row != END_ID)] for row in found.ids[:, n]]
        ended = [(row == END_ID).any() for row in found.ids[:, n]]
        totals = teacher_forcing(sources, targets)
        for total, target, log_prob, length, score, has_end in zip(
            totals, targets, found.log_probs[:, n], found.lengths[:, n], found.scores(alpha)[:, n], ended
        ):
            if not has_end:  # cut at max_len: search never scored an end marker for it
                continue
            assert len(target) + 1 == length  # the end marker counted in both
            assert total == pytest.approx(log_prob, abs=1e-4)
            assert PairScore(total, int(length)).normalized(alpha) == pytest.approx(score, abs=1e-4)
            compared += 1
    assert compared >= len(SENTENCES)  # most hypotheses ended: the test compared something


def test_a_translation_of_the_model_scores_above_a_random_one_and_unknown_tokens_come_back(ending_run):
    run, translator = ending_run, Translator(ending_run)
    translations = translator.translate(SENTENCES).best
    own = translator.score(list(zip(SENTENCES, translations)))
    shuffled = translator.score(list(zip(SENTENCES, translations[1:] + translations[:1])))
    assert np.mean([p.per_token for p in own.pairs]) > np.mean([p.per_token for p in shuffled.pairs])
    lengths = [min(len(run.target_vocab.encode(text)), translator.max_output_len - 1) + 1 for text in translations]
    assert [p.tokens for p in own.pairs] == lengths  # the end marker counted, within the length limit
    odd = translator.score([("Hello Ж", "Bonjour Ж")])
    assert odd.unknown_tokens["Ж"] == own.unknown_tokens["Ж"] + 2  # once in the source, once in the target
    assert np.isfinite(odd.pairs[0].total)


def test_a_target_longer_than_a_translation_may_be_is_scored_up_to_that_length(run):
    translator = Translator(run, run.config.replace(max_output_len=6))
    (scored,) = translator.score([("Go.", "Bonjour tout le monde")]).pairs
    assert scored.tokens == translator.max_output_len  # the first 5 characters and the end marker


def test_per_token_and_normalized_scores():
    pair = PairScore(-6.0, 3)
    assert pair.per_token == -2.0 and pair.normalized(0.0) == -6.0
    assert pair.normalized(1.0) == pytest.approx(-6.0 / ((5 + 3) / 6))
