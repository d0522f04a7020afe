"""The wording check of generated reports (pretroost.experiment.wording)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pretroost.experiment.wording import check_equality_claims, equality_claims

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "sentence",
    [
        "The trees are level with Darwin (p = 0.38).",
        "Ten members score 0.3298 eV, which matches MODNet.",
        "Both models are equal on glass.",
        "Our model is on par with CrabNet.",
        "Steels: indistinguishable from TPOT-Mat, so equal.",
    ],
)
def test_equality_without_evidence_is_flagged(sentence: str) -> None:
    assert equality_claims(sentence) == [sentence]
    with pytest.raises(ValueError, match="equality"):
        check_equality_claims("A first sentence. " + sentence, source="x")


@pytest.mark.parametrize(
    "sentence",
    [
        "The two are equal within ±0.01 eV by a TOST at alpha 0.05.",
        "The kernels match the pure-torch path to 1e-5.",
        "Our featuriser matches matminer (max deviation 4.6e-13).",
        "A p above 0.05 means a difference is not shown, not that the scores are equal.",
        "The trees are behind Darwin by 0.0125 eV (2/5 folds better, p = 0.38): not distinguishable.",
    ],
)
def test_supported_negated_or_absent_equality_passes(sentence: str) -> None:
    assert equality_claims(sentence) == []
    check_equality_claims(sentence)


def test_code_blocks_are_not_read() -> None:
    check_equality_claims("Run this:\n\n```bash\nmake equal  # matches\n```\n")


@pytest.mark.parametrize("doc", ["README.md", "docs/findings.md"])
def test_the_projects_own_results_text_passes(doc: str) -> None:
    check_equality_claims((ROOT / doc).read_text(), source=doc)


def test_the_reports_own_explanations_pass() -> None:
    """The generator's fixed text (statistics, selection) passes the check it applies."""
    from pretroost.experiment.report import _statistics_lines
    from pretroost.experiment.selection import selection_lines

    rows = [{"git_sha": "abc+dirty", "task": "matbench_steels", "strategy": "scratch"}] * 2
    summary = {
        "matbench_steels": {
            "n": 17, "best": "trees", "best_mean": 79.5, "second": "blend(a|b)", "lead": 1.5,
            "noise_sd": 4.4, "noise_range": (2.5, 7.1), "expected_max_z": 1.79,
            "chance_gain": 7.9,
        }
    }  # fmt: skip
    text = "\n".join(_statistics_lines(rows) + selection_lines(summary))
    check_equality_claims(text)
    assert "2 of 2 rows (100 %)" in text and "| matbench_steels | 17 | trees (79.5) |" in text
    assert "blend(a\\|b)" in text  # a table cell's | escaped
