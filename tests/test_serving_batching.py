"""sequencer/serving/batching.py: concurrent requests decoded together, within decode_batch_size and one
setting; a request that samples alone; pairs to score together.

The app decodes with a stub backend (`Recorder`) that records each decoding call.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_serving import Recorder, serving, stub_config

from sequencer.scoring import PairScore
from sequencer.serving import Batcher
from sequencer.translation import Sampling


@pytest.fixture
def config():
    return stub_config()


def concurrently(client, bodies):
    """POST each body at the same time; the answers' JSON, in the order of `bodies`."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: client.post("/translate", json=body), bodies))
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    return [answer.json() for answer in answers]


def test_concurrent_requests_are_decoded_together(config):
    recorder = Recorder()
    bodies = [{"text": [f"r{i}a", f"r{i}b"]} for i in range(6)]
    with serving(recorder, config.replace(batch_wait_ms=500, decode_batch_size=256)) as client:
        answers = concurrently(client, bodies)
    assert [answer["translations"] for answer in answers] == [[f"R{i}A", f"R{i}B"] for i in range(6)]
    assert len(recorder.calls) < 6 and max(len(call.items) for call in recorder.calls) > 2
    assert sorted(sentence for call in recorder.calls for sentence in call.items) == sorted(
        sentence for body in bodies for sentence in body["text"]
    )


def test_a_batch_holds_at_most_decode_batch_size_and_one_setting(config):
    recorder = Recorder()
    bodies = [{"text": [f"b{1 + i % 2}-{i}a", f"b{1 + i % 2}-{i}b"], "beam_width": 1 + i % 2} for i in range(8)]
    with serving(recorder, config.replace(batch_wait_ms=500, decode_batch_size=4)) as client:
        answers = concurrently(client, bodies)
    assert [answer["translations"] for answer in answers] == [
        [text.upper() for text in body["text"]] for body in bodies
    ]
    for call in recorder.calls:
        assert len(call.items) <= 4 + 2  # a request joins while fewer than decode_batch_size are gathered
        assert all(sentence.startswith(f"b{call.how}-") for sentence in call.items)


def test_without_dynamic_batching_each_request_is_decoded_alone(config):
    recorder = Recorder()
    bodies = [{"text": [f"r{i}a", f"r{i}b"]} for i in range(4)]
    with serving(recorder, config.replace(dynamic_batching=False)) as client:
        concurrently(client, bodies)
    assert sorted(call.items for call in recorder.calls) == sorted(body["text"] for body in bodies)


def test_closing_the_batcher_decodes_what_waits(config):
    recorder = Recorder()

    async def main():
        batcher = Batcher(recorder, batch_size=2, wait_seconds=0.05)
        waiting = [asyncio.create_task(batcher.translate([f"s{i}"], 1, 1)) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        return [task.result() for task in waiting]

    assert asyncio.run(main()) == [[[(f"S{i}", -1.0)]] for i in range(5)]
    assert [len(call.items) for call in recorder.calls] == [2, 2, 1]


def decoded_together(jobs):
    """What a `Batcher` gives each of `jobs` (coroutine functions of it), all queued before its
    worker gathers any, and the `Recorder`'s calls."""
    recorder = Recorder(seconds=0)

    async def main():
        batcher = Batcher(recorder, batch_size=256, wait_seconds=10)
        waiting = [asyncio.create_task(job(batcher)) for job in jobs]
        await asyncio.sleep(0)
        await batcher.close()  # decodes what waits, at once
        return [task.result() for task in waiting]

    return asyncio.run(main()), recorder.calls


def test_a_request_that_samples_is_drawn_alone():
    sampling = Sampling(0.5, 10, 0.9, 3)
    found, calls = decoded_together(
        [
            lambda batcher: batcher.translate(["a"], 1, 1),
            lambda batcher: batcher.translate(["b", "c"], 1, 2, sampling=sampling),
            lambda batcher: batcher.translate(["d"], 1, 2, sampling=sampling),  # the same settings, still alone
            lambda batcher: batcher.translate(["e"], 1, 1),
        ]
    )
    assert found == [[[("A", -1.0)]], [[("B", -1.0)] * 2, [("C", -1.0)] * 2], [[("D", -1.0)] * 2], [[("E", -1.0)]]]
    assert [(call.items, call.how, call.sampling) for call in calls] == [
        (["a", "e"], 1, None),
        (["b", "c"], "sample", sampling),
        (["d"], "sample", sampling),
    ]


def test_requests_with_and_without_prefixes_are_decoded_together():
    found, calls = decoded_together(
        [
            lambda batcher: batcher.translate(["a", "", "b"], 1, 1, prefixes=["x", "y", ""]),
            lambda batcher: batcher.translate(["c"], 1, 1),
            lambda batcher: batcher.translate(["d"], 2, 1),
        ]
    )
    assert found == [[[("xA", -1.0)], [("", 0.0)], [("B", -1.0)]], [[("C", -1.0)]], [[("D", -1.0)]]]
    # Each sentence keeps its own prefix, an empty sentence is not decoded, a call without prefixes gets None.
    assert [(call.items, call.how, call.prefixes) for call in calls] == [
        (["a", "b", "c"], 1, ["x", "", ""]),
        (["d"], 2, None),
    ]


def test_pairs_to_score_are_scored_together_and_apart_from_translations():
    found, calls = decoded_together(
        [
            lambda batcher: batcher.score([("a", "xy")]),
            lambda batcher: batcher.translate(["b"], 1, 1),
            lambda batcher: batcher.score([("c", "z"), ("d", "")]),
        ]
    )
    assert found == [[PairScore(-2.0, 3)], [[("B", -1.0)]], [PairScore(-1.0, 2), PairScore(-0.0, 1)]]
    assert [(call.items, call.how) for call in calls] == [([("a", "xy"), ("c", "z"), ("d", "")], "score"), (["b"], 1)]


def test_a_scoring_failure_is_a_500_without_its_traceback(config, caplog):
    with caplog.at_level(logging.INFO, "sequencer"), serving(Recorder(failure=RuntimeError("boom")), config) as client:
        answer = client.post("/score", json={"source": ["Hello.", "Bye."], "target": ["Salut.", "Ciao."]})
    assert (answer.status_code, answer.json()) == (500, {"error": "scoring failed on the server; its log says why"})
    assert "scoring 2 pairs failed" in caplog.text and "RuntimeError: boom" in caplog.text
    assert "POST /score 500: 2 pairs, " in caplog.text
