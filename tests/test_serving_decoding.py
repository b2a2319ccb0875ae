"""POST /translate's prefixes and sampling, and POST /score, through the app with a trained run:
what the server answers is what the run's translator gives (the fields' checks are in
test_serving_requests.py, the exports' answers in test_serving.py)."""

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_serving import SENTENCES, Recorder, backend, config, run, serving, stub_config  # noqa: F401 -- fixtures

from sequencer.errors import ConfigError
from sequencer.serving import check_settings, warm_up
from sequencer.translation import Decoding, Sampling
from sequencer.vocabulary import UNK_ID


@pytest.fixture(scope="module")
def client(backend, config):  # noqa: F811 -- the fixtures imported above
    with serving(backend, config) as client:
        yield client


def texts(found):
    return [[text for text, _ in hypotheses] for hypotheses in found]


def test_a_translation_starts_with_its_prefix(client, backend, run):  # noqa: F811
    prefix = "Je suis"
    assert UNK_ID not in run.target_vocab.encode(prefix)  # read as it is written
    prefixes = [prefix, "", prefix, "J"]
    answer = client.post("/translate", json={"text": SENTENCES, "prefix": prefixes, "beam_width": 2})
    assert answer.status_code == 200, answer.text
    translations = answer.json()["translations"]
    assert translations == backend.translator.translate(SENTENCES, 2, prefixes=prefixes).best
    assert all(translation.startswith(start) for translation, start in zip(translations, prefixes))
    assert translations[1] == backend.translator.translate(SENTENCES[1:2], 2).best[0]  # "" is no prefix
    longest = backend.max_output_len
    too_long = client.post("/translate", json={"text": ["Hi."], "prefix": ["e" * longest]})
    assert too_long.status_code == 400 and too_long.json()["error"] == (
        f"prefix[0] has {longest} target tokens; a prefix may have at most {longest - 1}, as a translation has at "
        f"most {longest} (max_output_len), its end marker included"
    )


def test_a_seed_draws_the_same_samples_whatever_else_is_in_flight(client, backend):  # noqa: F811
    body = {"text": SENTENCES, "decoding": "sample", "n_best": 2, "temperature": 0.8, "seed": 5}
    alone = client.post("/translate", json=body)
    assert alone.status_code == 200, alone.text
    sampling = Sampling(0.8, backend.default.sampling.top_k, backend.default.sampling.top_p, 5)
    expected = backend.translator.translate(SENTENCES, n_best=2, decoding="sample", sampling=sampling)
    assert alone.json()["translations"] == texts(expected.hypotheses)
    others = [
        {"text": SENTENCES},
        {**body, "seed": 6},
        {"text": SENTENCES[:2], "decoding": "sample", "prefix": ["J", ""]},
    ]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda asked: client.post("/translate", json=asked), [body, *others, body]))
    assert all(answer.status_code == 200 for answer in answers)
    assert answers[0].json() == answers[-1].json() == alone.json()


def test_draw_settings_beyond_what_the_model_takes_draw_as_the_nearest_it_does(client, backend):  # noqa: F811
    greedy = client.post("/translate", json={"text": SENTENCES, "beam_width": 1}).json()["translations"]
    tiny = {"temperature": 1e-40, "top_p": 1e-300, "top_k": 10**30}  # the most probable token, every step
    answer = client.post("/translate", json={"text": SENTENCES, "decoding": "sample", **tiny})
    assert answer.status_code == 200 and answer.json()["translations"] == greedy
    more = client.post("/translate", json={"text": SENTENCES, "decoding": "sample", "n_best": 5})
    assert more.status_code == 400 and more.json()["error"] == (
        "n_best must be an integer from 1 to 4 (max_beam_width) with decoding=sample, not 5"
    )


def test_scores_are_the_translators(client, backend, caplog):  # noqa: F811
    pairs = [("Hello!", "Bonjour !"), (" I am cold. ", "J'ai froid."), ("Who are you? Ж🐞", "Qui es-tu ?")]
    with caplog.at_level(logging.INFO, "sequencer"):
        answer = client.post("/score", json={"source": [s for s, _ in pairs], "target": [t for _, t in pairs]})
    assert answer.status_code == 200, answer.text
    expected = backend.translator.score([(source.strip(), target) for source, target in pairs]).pairs
    assert answer.json()["scores"] == pytest.approx([pair.total for pair in expected], abs=1e-4)
    assert answer.json()["per_token"] == pytest.approx([pair.per_token for pair in expected], abs=1e-4)
    assert answer.json()["tokens"] == [pair.tokens for pair in expected] == [10, 12, 12]
    assert answer.json()["model"] == backend.name
    assert "POST /score 200: 3 pairs, " in caplog.text


def test_the_docs_describe_the_new_fields_and_score(client):
    paths = client.get("/openapi.json").json()["paths"]
    translate = paths["/translate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"prefix", "decoding", "temperature", "top_k", "top_p", "seed"} <= set(translate)
    score = paths["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(score) == {"source", "target"}
    assert client.get("/scores").json()["error"] == (
        "GET /scores: there is nothing here; the endpoints are POST /translate, POST /score, GET /health, GET / "
        "and GET /docs"
    )


def test_warm_up_decodes_as_a_request_that_names_nothing_and_scores():
    sampler = Recorder(seconds=0)
    sampler.default = Decoding("sample", 1, 3, Sampling(0.5, 0, 1.0, 1))
    warm_up(sampler)
    assert [(call.how, call.sampling) for call in sampler.calls] == [
        ("sample", sampler.default.sampling),
        ("score", None),
    ]
    saved_model = Recorder(seconds=0)
    saved_model.can_sample = saved_model.can_force = saved_model.can_score = False
    warm_up(saved_model)
    assert [call.how for call in saved_model.calls] == [1]


def test_the_samples_a_request_gets_by_default_are_within_max_beam_width():
    sampling = stub_config().replace(decoding="sample", n_best=9)
    with pytest.raises(ConfigError, match=r"^n_best=9 is more than max_beam_width=8, the most samples a request may"):
        check_settings(sampling)
    check_settings(sampling.replace(n_best=8))
