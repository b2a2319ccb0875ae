import io
import logging

import numpy as np
import pytest
from conftest import DATA

from sequencer import prediction
from sequencer.errors import ConfigError
from sequencer.prediction import Predictor
from sequencer.runs import load_run
from sequencer.search import Hypotheses
from sequencer.vocabulary import END_ID

MIXED = DATA / "predict" / "mixed.txt"


@pytest.fixture(scope="module")
def predictor(trained_run):
    run = load_run(trained_run)
    return Predictor(run, run.config.replace(decode_batch_size=2))


def test_folder_translation_keeps_names_order_and_line_count(predictor, tmp_path, caplog):
    before = MIXED.read_bytes()
    caplog.set_level(logging.WARNING)
    [written] = predictor.translate_folder(MIXED.parent, tmp_path / "out")
    lines = written.read_text(encoding="utf-8").split("\n")
    assert written == tmp_path / "out" / "mixed.txt"
    assert len(lines) - 1 == len(before.decode().splitlines()) == 5 and lines[-1] == ""
    assert lines[1] == ""  # empty input line, empty output line
    assert lines[2] == predictor.translate(["I am cold."])[0]  # tab columns: the first is the source
    assert lines[0] == predictor.translate(["Hello!"])[0]
    assert MIXED.read_bytes() == before
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind
    warnings = [record.getMessage() for record in caplog.records if "never seen in training" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("6 character(s)")  # H (not in the toy corpus) Ж у к — 🐞


def test_translation_does_not_depend_on_batching_or_chunking(predictor, monkeypatch):
    sentences = ["Run!", "", "Who are you?", "Go.", "I am cold.", "Hello!", "It's me."]
    expected = [predictor.translate([sentence])[0] for sentence in sentences]
    assert predictor.translate(sentences) == expected
    monkeypatch.setattr(prediction, "CHUNK_LINES", 3)
    assert list(predictor.translate_lines(sentences)) == expected


def test_output_length_is_bounded(trained_run):
    run = load_run(trained_run)
    bounded = Predictor(run, run.config.replace(max_output_len=4))
    assert all(len(text) <= 4 for text in bounded.translate(["Who are you?", "Hello!"]))


def test_stream_translation_matches_file_translation(predictor, tmp_path):
    output = io.StringIO()
    predictor.translate_stream(io.BytesIO(MIXED.read_bytes()), output)
    predictor.translate_file(MIXED, tmp_path / "mixed.txt")
    assert output.getvalue() == (tmp_path / "mixed.txt").read_text(encoding="utf-8")


def test_refuses_to_write_over_its_inputs(predictor):
    with pytest.raises(ConfigError) as caught:
        predictor.translate_folder(MIXED.parent, MIXED.parent)
    assert "would overwrite the inputs" in str(caught.value)


def test_n_best_translations_are_tab_columns_best_first(trained_run):
    run = load_run(trained_run)
    beam = Predictor(run, run.config.replace(beam_width=4, n_best=3))
    lines = list(beam.translate_lines(["Hello!", "", "I am cold.\tJ'ai froid."]))
    assert lines[1] == ""
    for line, sentence in zip(lines[::2], ["Hello!", "I am cold."]):
        columns = line.split("\t")
        assert len(columns) == 3 and columns[0] == beam.translate([sentence])[0]


def test_progress_line_counts_lines(predictor, capsys):
    predictor.show_progress = True
    try:
        predictor.translate_stream(io.BytesIO(MIXED.read_bytes()), io.StringIO())
    finally:
        predictor.show_progress = False
    progress = capsys.readouterr().err
    assert "\r5 lines, " in progress and progress.endswith(" lines/s\n")


def test_n_best_needs_a_beam(tmp_path):
    from conftest import tiny_config

    with pytest.raises(ConfigError) as caught:
        tiny_config(tmp_path, n_best="2")
    assert "n_best=2 needs beam_width >= 2" in str(caught.value)


@pytest.mark.parametrize(
    "output, warning",
    [
        ([END_ID], "were translated as empty or blank lines"),
        ([*" ", END_ID], "were translated as empty or blank lines"),
        ([5, 6, 5, 6], "were cut at the length limit of 4 tokens"),
    ],
    ids=["empty", "blank", "cut"],
)
def test_mostly_empty_blank_or_cut_translations_are_a_warning(trained_run, tmp_path, caplog, output, warning):
    run = load_run(trained_run)
    predictor = Predictor(run, run.config.replace(min_output_len=0, max_output_len=4))
    ids = [i if isinstance(i, int) else int(run.target_vocab.encode(i)[0]) for i in output]

    # A model that ends every translation at once, or after a space, or never, as a barely trained one may.
    def decode(source_ids, beam_width, n_best):
        batch = len(source_ids)
        return Hypotheses(np.tile(np.array(ids, np.int32), (batch, 1, 1)), np.zeros((batch, 1)), np.ones((batch, 1)))

    predictor.translator._search = decode
    caplog.set_level(logging.WARNING)
    predictor.translate_file(MIXED, tmp_path / "mixed.txt")
    [message] = [record.getMessage() for record in caplog.records if warning in record.getMessage()]
    assert message.startswith(f"{MIXED}: 4 of 4 sentences")  # the empty line is not counted
