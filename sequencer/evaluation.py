"""Scoring translations as the field does: corpus BLEU and chrF computed by sacrebleu, and exact matches.

Tatoeba, like most parallel corpora, translates many source sentences several ways. Every
translation of a source sentence is a reference for it, so a test file is first grouped by
source: one hypothesis per distinct source, scored against all of its references.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from sequencer.files import read_json, write_json
from sequencer.text import markdown_table

EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class ReferenceSet:
    """Distinct source sentences, in order of first appearance, each with all its references."""

    sources: list[str]
    references: list[list[str]]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> ReferenceSet:
        grouped: dict[str, list[str]] = {}
        for source, target in pairs:
            grouped.setdefault(source, []).append(target)
        return cls(list(grouped), list(grouped.values()))


def score(hypotheses: list[str], references: list[list[str]]) -> dict:
    """Corpus BLEU, chrF and exact-match rate (percentages) of one hypothesis per sentence.

    Sentences may have different numbers of references: sacrebleu takes one stream per reference
    position, with None where a sentence has fewer.
    """
    streams = [
        [refs[position] if position < len(refs) else None for refs in references]
        for position in range(max(map(len, references), default=0))
    ]
    bleu, chrf = BLEU(), CHRF()
    exact = sum(hypothesis in refs for hypothesis, refs in zip(hypotheses, references))
    return {
        "sentences": len(hypotheses),
        "references": sum(map(len, references)),
        "bleu": bleu.corpus_score(hypotheses, streams).score,
        "chrf": chrf.corpus_score(hypotheses, streams).score,
        "exact_match": 100.0 * exact / max(len(hypotheses), 1),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def record(run_dir: Path, name: str, scores: dict) -> None:
    """Add the scores of one test file to the run's eval.json, keeping the other files' scores."""
    path = run_dir / EVAL_FILE
    results = read_json(path) if path.is_file() else {}
    results[name] = scores
    write_json(path, results)


def scores_table(rows: dict[str, dict]) -> str:
    """A Markdown table of scores, one row per test file."""
    return markdown_table(
        ["file", "sentences", "references", "BLEU", "chrF", "exact %"],
        [
            [name, s["sentences"], s["references"], f"{s['bleu']:.2f}", f"{s['chrf']:.2f}", f"{s['exact_match']:.1f}"]
            for name, s in rows.items()
        ],
        numeric=[False] + [True] * 5,
    )
