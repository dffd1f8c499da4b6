"""The benchmark code paths at tiny sizes, so `make bench` cannot rot between runs."""

from __future__ import annotations

from pathlib import Path

from bench.__main__ import merge_sections, run
from bench.curves import CurvesSettings
from bench.lookup import LookupBench, render_lookup
from bench.measure import Spread, run_child
from bench.quality import QualitySettings
from bench.scoring import ScorePoint, ScoringBench, render_scoring
from bench.spread import SpreadSettings

TINY = {
    "data_athletes": 150,
    "data_repeats": 1,
    "quality": QualitySettings(seeds=(3,), sizes=(300,), main_size=300, test_athletes=300),
    "spread": SpreadSettings(sizes=(300,), test_athletes=300),
    "training": {400: 1},
    "store_athletes": 0,
    "scoring": {},
    "lookup_repeats": 0,
    "censoring": (300,),
    "curves": CurvesSettings(athletes=300, test_athletes=300),
    "ladder": {"sizes": [100], "seeds": [3], "test_athletes": 300},
    "registered": {"seeds_per_size": {300: 2}, "first_seed": 3, "test_athletes": 300},
}


def test_bench_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    text = run(quick=True, out=out, work=tmp_path / "work", sizes=TINY)

    assert out.read_text() == text
    for heading in (
        "# Benchmarks",
        "## Reading",
        "## Data: simulate and validate",
        "## Model quality against the limit and the peers",
        "## Learning curves over training-cohort size",
        "## Risk spread and interval coverage against the truth",
        "## Training time against episodes",
        "## Follow-up and censoring weights",
        "## Scoring and lookup",
        "## Risk over time against the true curves",
        "## Ladder: training that respects the sample",
        "## Spread of the registered model against the truth, draw by draw",
    ):
        assert heading in text
    assert "Not measured: the benchmark failed" not in text
    assert "| truth (the limit) | " in text
    assert "| 300 | survey lagging |" in text
    assert "| weak | 300 | 2 |" in text
    assert not (tmp_path / "work").exists()


def test_scoring_and_lookup_render_measured_and_missing() -> None:
    point = ScorePoint(
        target=10,
        episodes=10,
        athletes=8,
        score=Spread((2.0, 3.0)),
        peak_bytes=(100 * 1024**2,),
        predict=Spread((0.5,)),
    )
    measured = render_scoring(ScoringBench(points=(point,), command="hamrisk score X"))
    assert "5.0×" in measured and "episodes/s" in measured
    slower = ScorePoint(10, 10, 8, Spread((4.0,)), (100 * 1024**2,), Spread((0.5,)))
    both = render_scoring(
        ScoringBench(
            points=(point,),
            command="hamrisk score X",
            model_form="stumps",
            interactions=slower,
            interactions_form="7-leaf trees",
        )
    )
    assert "The model (what `hamrisk train` picked" in both and "stumps" in both
    assert "7-leaf trees" in both and "8.0×" in both
    missing = render_scoring(ScoringBench(points=(), command="x", not_measured="no command"))
    assert "Not measured: no command." in missing

    lookup = render_lookup(
        LookupBench(
            lookup=Spread((1.0, 1.2)),
            mlflow=None,
            lookup_command="hamrisk lookup",
            mlflow_command="mlflow models predict",
            not_measured={"mlflow": "exit 1"},
        )
    )
    assert "not measured" in lookup and "Not measured (mlflow): exit 1." in lookup


def test_child_peak_memory_is_its_own() -> None:
    ballast = bytearray(300 * 1024**2)  # the parent is large, as the bench is when it scores
    ballast[::4096] = b"x" * len(ballast[::4096])
    big = run_child(
        ["python3", "-c", "b = bytearray(200 * 1024**2); b[::4096] = b'x' * len(b[::4096])"]
    )
    small = run_child(["python3", "-c", "pass"])
    assert big.returncode == small.returncode == 0
    assert big.max_rss_bytes > 150 * 1024**2 > small.max_rss_bytes


def test_a_section_measured_alone_replaces_its_namesake_and_keeps_the_rest() -> None:
    document = (
        "# Benchmarks\n\nheader\n\n## Data\n\nold data\n\n## Ladder\n\nold ladder\n\n"
        "## Notes\n\n- n\n"
    )
    stamp = "*measured alone*"
    merged = merge_sections(
        document, ["## Ladder\n\nnew ladder", "## Risk over time\n\nnew curves"], stamp
    )
    assert "old ladder" not in merged and "new ladder" in merged
    assert "old data" in merged and merged.startswith("# Benchmarks\n\nheader\n\n## Data")
    # A new section goes before the notes, and each one measured alone says so.
    assert merged.index("## Risk over time") < merged.index("## Notes")
    assert merged.count(stamp) == 2
    assert merged.index("## Ladder\n\n*measured alone*\n\nnew ladder") > 0


def test_a_section_measured_alone_replaces_the_placeholder_of_a_failed_run() -> None:
    document = (
        "# Benchmarks\n\nheader\n\n## Scoring\n\nNot measured: the benchmark failed.\n\n"
        "## Risk over time against the true curves\n\nold curves\n\n## Notes\n\n- n\n"
    )
    merged = merge_sections(
        document, ["## Scoring: end to end against bare predict\n\nnew scoring"], "*alone*"
    )
    assert "Not measured" not in merged and "new scoring" in merged
    assert merged.count("## Scoring") == 1 and "old curves" in merged
