"""Our Spearman and ranking code against the numbers the CAR paper reports (tests/data/README.md)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from hfevol.car.metrics import average_ranks, spearman

DATA = Path(__file__).parent / "data"


def read(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as f:
        return list(csv.DictReader(f))


def ap_scores() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in read("car_paper_student_scores.csv"):
        out.setdefault(row["base_model"], {})[row["response_generator"]] = float(row["AP=(LC+AH)/2"])
    return out


def test_student_table_shape_and_ap_definition() -> None:
    rows = read("car_paper_student_scores.csv")
    scores = ap_scores()
    assert len(scores) == 5 and all(len(g) == 19 for g in scores.values())
    for row in rows:  # AP = (LC + AH) / 2, as the paper defines it
        assert float(row["AP=(LC+AH)/2"]) == pytest.approx((float(row["AE2_LC"]) + float(row["AH_WR"])) / 2, abs=1e-9)
    for student, by_generator in scores.items():  # no ties in AP, so the paper's ρ is the no-ties formula
        assert len(set(by_generator.values())) == 19, student


def test_paper_rho_values_fit_our_formula_for_19_generators() -> None:
    # Without ties ρ = 1 - 6·Σd²/(n(n²-1)) = 1 - Σd²/1140 for n = 19, and Σd² is always even.
    # Recompute: a permutation with a known Σd² gives exactly that ρ in our implementation ...
    n = 19
    base = list(range(n))
    swapped = base[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]  # Σd² = 2
    assert spearman(base, swapped) == pytest.approx(1 - 2 / 1140)
    # ... and the paper's 4-decimal values sit on that grid (within rounding) for nearly every cell.
    cells = [(row["base_model"], k, float(v)) for row in read("car_paper_spearman.csv") for k, v in row.items() if k != "base_model"]
    on_grid = [abs((1 - rho) * 1140 / 2 - round((1 - rho) * 1140 / 2)) * 2 < 0.06 for _, _, rho in cells]
    assert len(cells) == 45
    assert sum(on_grid) == 43  # the two off-grid cells: Qwen2-1.5B PPL_GPT2, Minitron IFD_self, [c for c, ok in zip(cells, on_grid) if not ok]


@pytest.mark.parametrize(
    ("metric", "paper_mean"),
    [("CAR", 0.889), ("RM3_Skywork_Gemma", 0.871), ("IFD_self", 0.837), ("PPL_self", 0.432), ("length", 0.590)],
)
def test_table_4_averages_match_the_papers_text(metric: str, paper_mean: float) -> None:
    values = [float(row[metric]) for row in read("car_paper_spearman.csv")]
    assert sum(values) / len(values) == pytest.approx(paper_mean, abs=6e-4)


def test_our_spearman_on_the_papers_scores() -> None:
    # The inputs of the paper's ρ (rewards, losses) are not published; what can be recomputed
    # from its tables is ρ between its own score columns. Our ρ of AP vs itself is 1, and ρ of
    # AP vs LC equals the no-ties formula computed from the rank differences by hand.
    for student, by_generator in ap_scores().items():
        generators = sorted(by_generator)
        ap = [by_generator[g] for g in generators]
        assert spearman(ap, ap) == pytest.approx(1.0)
        lc = {r["response_generator"]: float(r["AE2_LC"]) for r in read("car_paper_student_scores.csv") if r["base_model"] == student}
        lcs = [lc[g] for g in generators]
        if len(set(lcs)) == len(lcs):
            d2 = sum((a - b) ** 2 for a, b in zip(average_ranks(ap), average_ranks(lcs)))
            assert spearman(ap, lcs) == pytest.approx(1 - d2 / 1140)
        assert -1 <= spearman(ap, lcs) <= 1 and not math.isnan(spearman(ap, lcs))
    # The paper's headline: bigger is not better. For Qwen2-1.5B, Qwen2-7B beats Qwen2-72B.
    qwen = ap_scores()["Qwen2-1.5B"]
    assert qwen["Qwen2-7B"] > qwen["Qwen2-72B"]
