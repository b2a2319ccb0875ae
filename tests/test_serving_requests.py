"""sequencer/serving/requests.py: reading a body within its limits, quoting what a request sent, and
checking each field of POST /translate and POST /score (through the app, with a stub backend)."""

import asyncio
import json

import pytest
from starlette.requests import Request
from test_serving import Recorder, serving, stub_config

from sequencer.serving import ServingError, body_limit, read_body
from sequencer.serving import requests as requests_module
from sequencer.serving.requests import shown
from sequencer.translation import Decoding, Sampling


def test_a_content_length_of_other_digits_than_ascii_is_not_read_as_a_number():
    body = b'{"text": ["Hello."]}'
    parts = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive():
        return next(parts)

    request = Request(
        {"type": "http", "method": "POST", "headers": [(b"content-length", "²".encode("latin-1"))]}, receive
    )
    assert asyncio.run(read_body(request, 1000)) == body  # "²".isdigit(), but int("²") fails


def test_a_body_that_stops_arriving_is_a_408(monkeypatch):
    monkeypatch.setattr(requests_module, "BODY_SECONDS", 0.05)
    parts = iter([{"type": "http.request", "body": b'{"text": ', "more_body": True}])

    async def receive():
        try:
            return next(parts)
        except StopIteration:
            await asyncio.sleep(60)  # the client sends no more

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(ServingError) as refused:
        asyncio.run(read_body(request, 1000))
    assert (refused.value.status, refused.value.message) == (
        408,
        "the body did not arrive within 0.05 seconds (9 bytes came)",
    )


def test_a_value_nested_too_deeply_to_quote_is_named_not_quoted():
    nested = []
    for _ in range(100_000):
        nested = [nested]
    assert shown(nested) == "a deeply nested list"


# ---- the fields of POST /translate and POST /score, through the app with a stub backend (`Recorder`)


class SavedModelLike(Recorder):
    """A stub backend that, as a SavedModel export, can neither sample, take prefixes nor score."""

    can_sample = can_force = can_score = False


@pytest.fixture(scope="module")
def recorder():
    return Recorder(seconds=0)


@pytest.fixture(scope="module")
def client(recorder):
    with serving(recorder, stub_config()) as client:
        yield client


SEARCHES = 'applies to decoding "sample" only, and this request decodes by search; send "decoding": "sample"'
SAMPLE = '"text": ["a"], "decoding": "sample"'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"text": ["a"], "prefix": "x"}', 'prefix must be a list of strings, one per sentence of text, not "x"'),
        (
            '{"text": ["a", "b"], "prefix": ["x"]}',
            'prefix has 1 for 2 sentences of text; give one per sentence ("" for',
        ),
        ('{"text": [], "prefix": [""]}', "prefix has 1 for 0 sentences of text"),
        ('{"text": ["a", "b"], "prefix": ["x", 5]}', "prefix[1] must be a string, not 5"),
        ('{"text": ["a"], "prefix": [null]}', "prefix[0] must be a string, not null"),
        ('{"text": ["a"], "prefix": ["\\ud800"]}', "prefix[0] holds a lone surrogate ('\\ud800'), which is not text"),
        ('{"text": ["a"], "prefix": ["' + "x" * 1001 + '"]}', "prefix[0] has 1001 characters; a prefix may have at"),
        (
            '{"text": ["a"], "prefix": ["0123456789"]}',
            "prefix[0] has 10 target tokens; a prefix may have at most 9, as a translation has at most 10 "
            "(max_output_len), its end marker included",
        ),
        ('{"text": ["a"], "decoding": "beam"}', 'decoding must be "search" or "sample", not "beam"'),
        ('{"text": ["a"], "decoding": 1}', 'decoding must be "search" or "sample", not 1'),
        ('{"text": ["a"], "decoding": ["sample"]}', 'decoding must be "search" or "sample", not ["sample"]'),
        ('{"text": ["a"], "temperature": 0.5}', f"temperature {SEARCHES}"),
        ('{"text": ["a"], "top_k": 5}', f"top_k {SEARCHES}"),
        ('{"text": ["a"], "top_p": 0.9}', f"top_p {SEARCHES}"),
        ('{"text": ["a"], "decoding": "search", "seed": 1}', f"seed {SEARCHES}"),
        ('{"text": ["a"], "decoding": "search", "seed": -1}', f"seed {SEARCHES}"),
        (
            f'{{{SAMPLE}, "beam_width": 2}}',
            'beam_width applies to decoding "search" only, and this request samples (n_best is the samples it draws)',
        ),
        (f'{{{SAMPLE}, "n_best": 3}}', "n_best must be 1 or 2, not 3"),
        (f'{{{SAMPLE}, "n_best": 0}}', "n_best must be 1 or 2, not 0"),
        *(
            (
                f'{{{SAMPLE}, "temperature": {value}}}',
                f"temperature must be a finite number of 0 or more (0 decodes greedily), not {quoted}",
            )
            for value, quoted in [
                ("-1", "-1"),
                ('"1"', '"1"'),
                ("true", "true"),
                ("NaN", "NaN"),
                ("Infinity", "Infinity"),
                ("1e400", "Infinity"),
                ("1" + "0" * 400, "1" + "0" * 36 + "..."),  # an integer beyond floats: a 400, not a 500
                ("[1]", "[1]"),
            ]
        ),
        *(
            (
                f'{{{SAMPLE}, "top_k": {value}}}',
                f"top_k must be an integer of 0 or more (0 draws among all tokens), not {value}",
            )
            for value in ("-1", "1.5", "2.0", "true", '"5"')
        ),
        *(
            (
                f'{{{SAMPLE}, "top_p": {value}}}',
                f"top_p must be a number above 0 and at most 1 (1 draws among all tokens), not {value}",
            )
            for value in ("0", "-0.5", "1.5", "NaN", "false", '"0.5"')
        ),
        *(
            (f'{{{SAMPLE}, "seed": {value}}}', f"seed must be an integer from 0 to 4,294,967,295, not {value}")
            for value in ("-1", "4294967296", "1.0", "true", '"1"')
        ),
    ],
)
def test_a_bad_translation_field_is_a_400_naming_it(client, body, message):
    answer = client.post("/translate", content=body.encode())
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": answer.json()["error"]} and answer.json()["error"].startswith(message)


SEND = 'send {"source": ["a sentence", ...], "target": ["its translation", ...]}'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('["a"]', 'the body must be a JSON object such as {"source": ["Hello."], "target": ["Bonjour."]}, not ["a"]'),
        ('{"source": ["a"], "target": ["b"], "text": ["c"]}', 'unknown field "text"; a score request has source and'),
        ('{"source": ["a"]}', f"target is missing; {SEND}"),
        ('{"target": ["a"]}', f"source is missing; {SEND}"),
        ('{"source": [], "target": []}', f"source is empty; {SEND}"),
        ('{"source": "a", "target": "b"}', 'source must be a list of sentences (strings), not "a"'),
        ('{"source": ["a"], "target": {"b": 1}}', 'target must be a list of sentences (strings), not {"b": 1}'),
        (
            '{"source": ["a"], "target": ["b", "c"]}',
            "target holds 2 sentences and source 1; give one target per source",
        ),
        ('{"source": ["a", 1], "target": ["b", "c"]}', "source[1] must be a string, not 1"),
        ('{"source": ["a"], "target": [false]}', "target[0] must be a string, not false"),
        ('{"source": ["a"], "target": ["\\udfff"]}', "target[0] holds a lone surrogate"),
        ('{"source": ["a"], "target": ["' + "x" * 1001 + '"]}', "target[0] has 1001 characters; a sentence may have"),
        ('{"source": ["a", "b"], "target": ["b", " "]}', "target[1] is empty; a pair to score has a sentence on each"),
        ('{"source": [" "], "target": ["b"]}', "source[0] is empty; a pair to score has a sentence on each side"),
    ],
)
def test_a_bad_score_field_is_a_400_naming_it(client, body, message):
    answer = client.post("/score", content=body.encode())
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": answer.json()["error"]} and answer.json()["error"].startswith(message)


def test_sampling_fields_default_to_the_backends_and_null_is_left_out(client, recorder):
    recorder.calls.clear()
    drawn = client.post("/translate", json={"text": ["ab"], "decoding": "sample", "n_best": 2, "top_k": None})
    assert drawn.status_code == 200 and drawn.json()["translations"] == [["AB", "AB"]]
    asked = {"temperature": 0, "top_k": 5, "top_p": 0.5, "seed": 2**32 - 1}
    assert client.post("/translate", json={"text": ["ab"], "decoding": "sample", **asked}).status_code == 200
    nothing = {"prefix": None, "decoding": None, "beam_width": None, "n_best": None, "temperature": None}
    assert client.post("/translate", json={"text": ["ab"], **nothing}).json()["translations"] == ["AB"]
    assert [(call.how, call.sampling) for call in recorder.calls] == [
        ("sample", Recorder.default.sampling),
        ("sample", Sampling(0.0, 5, 0.5, 2**32 - 1)),
        (1, None),
    ]


def test_a_prefix_is_taken_as_it_is_and_an_empty_sentence_is_not_decoded(client, recorder):
    recorder.calls.clear()
    answer = client.post("/translate", json={"text": [" ab ", "", "cd"], "prefix": [" x", "y", ""]})
    assert answer.status_code == 200 and answer.json()["translations"] == [" xAB", "", "CD"]
    assert [(call.items, call.prefixes) for call in recorder.calls] == [(["ab", "cd"], [" x", ""])]


def test_scores_are_the_backends_in_order(client):
    answer = client.post("/score", json={"source": ["a", " b "], "target": ["xyz", " w"]})
    assert answer.status_code == 200
    assert answer.json() == {"scores": [-3.0, -1.0], "per_token": [-0.75, -0.5], "tokens": [4, 2], "model": "stub"}


def test_a_saved_model_export_refuses_prefixes_sampling_and_scoring():
    only = "is not possible: this server's model is a SavedModel export, which"
    with serving(SavedModelLike(seconds=0), stub_config()) as client:
        for body, message in [
            ({"text": ["a"], "decoding": "sample"}, f'decoding "sample" {only} decodes by search only'),
            ({"text": ["a"], "seed": 3}, f"seed {only} decodes by search only"),
            ({"text": ["a"], "prefix": [""]}, f"prefix {only} cannot start a translation with a prefix"),
        ]:
            answer = client.post("/translate", json=body)
            assert (answer.status_code, answer.json()) == (400, {"error": message})
        scored = client.post("/score", json={"source": ["a"], "target": ["b"]})
        assert (scored.status_code, scored.json()) == (400, {"error": f"POST /score {only} only translates"})
        plain = client.post("/translate", json={"text": ["a"], "decoding": "search", "prefix": None})
        assert plain.status_code == 200 and plain.json()["translations"] == ["A"]


def test_what_sampling_and_scoring_cost_is_bounded_by_max_request_tokens():
    with serving(Recorder(seconds=0), stub_config().replace(max_request_tokens=20)) as client:
        sampled = {"text": ["abcde", "fghij", "k"], "decoding": "sample"}
        assert client.post("/translate", json=sampled).status_code == 200
        costly = client.post("/translate", json={**sampled, "n_best": 2})
        assert (costly.status_code, costly.json()["error"]) == (
            413,
            "text holds 11 source tokens, which at 2 samples a sentence cost 22; a request may cost at most 20 "
            "(max_request_tokens: source tokens x samples)",
        )
        pairs = {"source": ["abcde", "fghij"], "target": ["klmno", "pqrst"]}
        assert client.post("/score", json=pairs).status_code == 200
        dear = client.post("/score", json={"source": [*pairs["source"], "u"], "target": [*pairs["target"], "v"]})
        assert (dear.status_code, dear.json()["error"]) == (
            413,
            "source and target hold 11 and 11 tokens, which cost 22; a request may cost at most 20 "
            "(max_request_tokens: source + target tokens when scoring)",
        )


def test_the_body_limit_holds_a_prefix_per_sentence():
    config = stub_config().replace(max_request_sentences=3, max_sentence_chars=10)
    backend = Recorder(seconds=0)
    backend.max_output_len = 11  # prefixes of 10 tokens
    with serving(backend, config) as client:
        widest = {"text": ["🐞" * 10] * 3, "prefix": ["🐞" * 10] * 3, "decoding": "sample", "temperature": 0.25}
        body = json.dumps({**widest, "top_k": 10, "top_p": 0.95, "seed": 2**32 - 1, "n_best": 2}, indent=8).encode()
        assert len(body) < body_limit(config) and client.post("/translate", content=body).status_code == 200
        pairs = json.dumps({"source": ["🐞" * 10] * 3, "target": ["🐞" * 10] * 3}, indent=8).encode()
        assert len(pairs) < body_limit(config) and client.post("/score", content=pairs).status_code == 200


def test_a_server_that_samples_by_default_samples_unless_a_request_searches():
    sampler = Recorder(seconds=0)
    sampler.default = Decoding("sample", 1, 2, Sampling(0.5, 3, 0.9, 11))
    with serving(sampler, stub_config()) as client:
        assert client.post("/translate", json={"text": ["ab"]}).json()["translations"] == [["AB", "AB"]]
        searched = client.post("/translate", json={"text": ["ab"], "decoding": "search"})
        assert searched.json()["translations"] == ["AB"]  # n_best: at most the beam width, 1
        refused = client.post("/translate", json={"text": ["ab"], "beam_width": 2})
        assert refused.status_code == 400 and refused.json()["error"].startswith("beam_width applies to decoding")
    assert [(call.how, call.sampling) for call in sampler.calls] == [("sample", sampler.default.sampling), (1, None)]
