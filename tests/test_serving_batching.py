"""sequencer/serving/batching.py: concurrent requests decoded together, within decode_batch_size and one setting.

The app decodes with a stub backend (`Recorder`) that records each decoding call.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_serving import Recorder, serving, stub_config

from sequencer.serving import Batcher


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
    assert len(recorder.calls) < 6 and max(len(sentences) for sentences, _ in recorder.calls) > 2
    assert sorted(sentence for sentences, _ in recorder.calls for sentence in sentences) == sorted(
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
    for sentences, beam_width in recorder.calls:
        assert len(sentences) <= 4 + 2  # a request joins while fewer than decode_batch_size are gathered
        assert all(sentence.startswith(f"b{beam_width}-") for sentence in sentences)


def test_without_dynamic_batching_each_request_is_decoded_alone(config):
    recorder = Recorder()
    bodies = [{"text": [f"r{i}a", f"r{i}b"]} for i in range(4)]
    with serving(recorder, config.replace(dynamic_batching=False)) as client:
        concurrently(client, bodies)
    assert sorted(sentences for sentences, _ in recorder.calls) == sorted(body["text"] for body in bodies)


def test_closing_the_batcher_decodes_what_waits(config):
    recorder = Recorder()

    async def main():
        batcher = Batcher(recorder, batch_size=2, wait_seconds=0.05)
        waiting = [asyncio.create_task(batcher.translate([f"s{i}"], 1, 1)) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        return [task.result() for task in waiting]

    assert asyncio.run(main()) == [[[(f"S{i}", -1.0)]] for i in range(5)]
    assert [len(sentences) for sentences, _ in recorder.calls] == [2, 2, 1]
