import json
import shutil
import subprocess
import sys

import pytest
from conftest import DATA

from sequencer.evaluation import ReferenceSet, record, score, scores_table
from sequencer.prediction import Predictor
from sequencer.runs import load_run

HYPOTHESES = ["le chat est noir", "il pleut", "bonjour", "merci beaucoup"]
REFERENCES = [["le chat est noir", "le chat noir"], ["il pleut fort"], ["salut", "bonjour", "coucou"], ["merci"]]


def test_pairs_are_grouped_by_source_with_every_target_a_reference():
    pairs = [("Hi.", "Salut."), ("Go.", "Va !"), ("Hi.", "Bonjour."), ("Hi.", "Salut !")]
    reference_set = ReferenceSet.from_pairs(pairs)
    assert reference_set.sources == ["Hi.", "Go."]
    assert reference_set.references == [["Salut.", "Bonjour.", "Salut !"], ["Va !"]]


def test_scores_equal_sacrebleus_command_line_with_a_variable_number_of_references(tmp_path):
    (tmp_path / "hyp.txt").write_text("\n".join(HYPOTHESES) + "\n")
    reference_files = []
    for position in range(3):  # sacrebleu's command line: one file per reference, empty where there is none
        path = tmp_path / f"ref{position}.txt"
        path.write_text("\n".join(refs[position] if position < len(refs) else "" for refs in REFERENCES) + "\n")
        reference_files.append(str(path))
    command = [sys.executable, "-m", "sacrebleu", *reference_files, "-i", str(tmp_path / "hyp.txt")]
    bleu, chrf = json.loads(
        subprocess.run([*command, "-m", "bleu", "chrf", "-b"], capture_output=True, text=True).stdout
    )
    scores = score(HYPOTHESES, REFERENCES)
    assert round(scores["bleu"], 1) == bleu and round(scores["chrf"], 1) == chrf
    assert scores["exact_match"] == pytest.approx(50.0)  # "le chat est noir" and "bonjour"
    assert (scores["sentences"], scores["references"]) == (4, 7)
    assert scores["bleu_signature"].startswith("nrefs:var|")


def test_scores_are_recorded_per_file_in_the_run(tmp_path):
    record(tmp_path, "a.txt", score(HYPOTHESES, REFERENCES))
    record(tmp_path, "b.txt", score(HYPOTHESES[:1], REFERENCES[:1]))
    results = json.loads((tmp_path / "eval.json").read_text())
    assert set(results) == {"a.txt", "b.txt"} and results["b.txt"]["exact_match"] == 100.0
    assert scores_table(results).splitlines()[2].startswith("| a.txt | 4 | 7 | ")


def test_predicting_a_file_with_targets_scores_it(trained_run, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / "run")  # the shared run stays as trained
    predictor = Predictor(load_run(run_dir))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "pairs.txt").write_text("I tried it.\tJ'ai essayé.\n\nI tried it.\tJe l'ai essayé.\n")
    (tmp_path / "in" / "plain.txt").write_text("I tried it.\n")
    predictor.translate_folder(tmp_path / "in", tmp_path / "out")
    results = json.loads((run_dir / "eval.json").read_text())
    scores = results[str(tmp_path / "in" / "pairs.txt")]
    assert (scores["sentences"], scores["references"]) == (1, 2)
    assert str(tmp_path / "in" / "plain.txt") not in results
    assert scores == predictor.evaluate([("I tried it.", "J'ai essayé."), ("I tried it.", "Je l'ai essayé.")])
    assert (tmp_path / "out" / "pairs.txt").read_text().count("\n") == 3


def test_evaluation_scores_the_models_own_translations_against_every_reference(trained_run):
    predictor = Predictor(load_run(trained_run))
    sources = [line.split("\t")[0] for line in (DATA / "train" / "toy.txt").read_text().splitlines()[:20]]
    own = predictor.translate(sources)
    # Every source with its own translation as one reference and "x" as another: all exact matches.
    pairs = [pair for source, text in zip(sources, own) for pair in ((source, text), (source, "x"))]
    scores = predictor.evaluate(pairs)
    assert scores["exact_match"] == 100.0 and scores["chrf"] == pytest.approx(100.0)
    assert scores["sentences"] == len(set(sources)) and scores["decoding"]["beam_width"] == 1
    wrong = predictor.evaluate([(source, "x") for source in sources])
    assert wrong["exact_match"] == 0.0 and wrong["chrf"] < 10
