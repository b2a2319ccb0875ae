"""Scoring given translations by teacher forcing: the same numbers search gives its own hypotheses."""

import numpy as np
import pytest

from sequencer.runs import load_run
from sequencer.scoring import PairScore, Scorer
from sequencer.search import BeamSearchDecoder
from sequencer.translation import Translator
from sequencer.vocabulary import END_ID, PAD_ID

SENTENCES = ["Go.", "I am cold.", "Hello!", "Who are you?", "Run!", "We lost.", "Be nice.", "It's me."]


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


def test_the_score_of_a_beam_hypothesis_is_the_beams_own_score(run):
    alpha, scorer = 0.6, Scorer(run, run.config.replace(decode_batch_size=3))  # batches of other lengths
    sources = [run.source_vocab.encode(sentence) for sentence in SENTENCES]
    width = max(map(len, sources))
    batch = np.array([np.pad(ids, (0, width - len(ids))) for ids in sources], np.int32)
    found = BeamSearchDecoder(run.model, 3, alpha)(batch, 20, 1, n_best=3)
    for n in range(3):
        targets = [row[(row != PAD_ID) & (row != END_ID)] for row in found.ids[:, n]]
        ended = [(row == END_ID).any() for row in found.ids[:, n]]
        scored = scorer.score_ids(sources, targets)
        for pair, log_prob, length, score, has_end in zip(
            scored, found.log_probs[:, n], found.lengths[:, n], found.scores(alpha)[:, n], ended
        ):
            if not has_end:  # cut at max_len: search never scored an end marker for it
                continue
            assert pair.tokens == length  # the end marker counted in both
            assert pair.total == pytest.approx(log_prob, abs=1e-4)
            assert pair.normalized(alpha) == pytest.approx(score, abs=1e-4)


def test_a_translation_of_the_model_scores_above_a_random_one_and_unknown_tokens_come_back(run):
    translations = Translator(run).translate(SENTENCES).best
    scorer = Scorer(run)
    own = scorer.score(list(zip(SENTENCES, translations)))
    shuffled = scorer.score(list(zip(SENTENCES, translations[1:] + translations[:1])))
    assert np.mean([p.per_token for p in own.pairs]) > np.mean([p.per_token for p in shuffled.pairs])
    assert not own.unknown_tokens
    odd = scorer.score([("Hello Ж", "Bonjour Ж")])
    assert odd.unknown_tokens == {"H": 1, "Ж": 2} or odd.unknown_tokens["Ж"] == 2


def test_per_token_and_normalized_scores():
    pair = PairScore(-6.0, 3)
    assert pair.per_token == -2.0 and pair.normalized(0.0) == -6.0
    assert pair.normalized(1.0) == pytest.approx(-6.0 / ((5 + 3) / 6))
