"""``python -m bench [--quick] [--out FILE] [--sections NAME ...]``: run the benchmarks and
write the document.

With ``--sections`` only the named sections run, and each replaces its namesake in the
existing document (or is added before the notes), marked with when and at which commit it
was measured; the rest of the document is left as the full run wrote it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.censoring import render_censoring, run_censoring
from bench.configs import load_configs
from bench.curves import CurvesSettings, render_curves_bench, run_curves
from bench.data import render_data, run_data
from bench.literature import (
    WORLDS,
    render_ladder,
    render_spread_by_size,
    run_ladder,
    run_spread_by_size,
)
from bench.lookup import render_lookup, run_lookup
from bench.measure import PROJECT_DIR, machine, progress
from bench.quality import render_curves, render_quality, run_quality, settings_for
from bench.report import render_header, render_reading
from bench.scoring import render_scoring, run_scoring
from bench.spread import render_spread, run_spread
from bench.spread import settings_for as spread_settings_for
from bench.store import train_bench_model, train_interaction_model
from bench.training import render_training, run_training

FULL = {
    "data_athletes": 100_000,
    "data_repeats": 3,
    "training": {1_000: 2, 5_000: 3, 20_000: 1},
    "store_athletes": 2_000,
    "scoring": {10_000: 3, 100_000: 2, 1_000_000: 1},
    "interactions_at": 100_000,
    "lookup_repeats": 5,
    "censoring": (2_000, 20_000),
    "curves": CurvesSettings(athletes=2_000, test_athletes=3_000),
    # One seed at every size (the 5,000-athlete clinics take about two minutes each in each
    # world on this machine), two more up to 1,000 athletes, where one seed is mostly noise.
    "ladder": {
        "sizes": [50, 100, 250, 500, 1_000, 5_000],
        "seeds": [20261126],
        "extra_seeds": (20261127, 20261128),
        "extra_up_to": 1_000,
        "test_athletes": 10_000,
    },
    # What `hamrisk train` registers, draw by draw: at 1,000 athletes one clinic's slope
    # against the truth scatters by about ±0.15, so its mean needs many draws (a 1,000-athlete
    # fit takes a few seconds; 20,000 about three minutes per world).
    "registered": {
        "seeds_per_size": {1_000: 20, 2_000: 10, 5_000: 3, 10_000: 1, 20_000: 1},
        "first_seed": 20261126,
        "test_athletes": 5_000,
    },
}
QUICK = {
    "data_athletes": 2_000,
    "data_repeats": 2,
    "training": {500: 1, 1_000: 1},
    "store_athletes": 600,
    "scoring": {2_000: 2, 5_000: 1},
    "interactions_at": 2_000,
    "lookup_repeats": 2,
    "censoring": (2_000,),
    "curves": CurvesSettings(athletes=600, test_athletes=600),
    "ladder": {"sizes": [100, 500], "seeds": [20261126], "test_athletes": 2_000},
    "registered": {
        "seeds_per_size": {500: 2, 1_000: 2},
        "first_seed": 20261126,
        "test_athletes": 2_000,
    },
}


def _section(name: str, fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run one benchmark; a failure is reported in the document rather than ending the run."""
    try:
        return fn(), None
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        traceback.print_exc()
        return (
            None,
            f"## {name}\n\nNot measured: the benchmark failed ({type(exc).__name__}: {exc}).",
        )


SECTIONS = (
    "data", "quality", "censoring", "spread", "curves", "training", "ladder", "registered",
    "scoring",
)  # fmt: skip


def run(
    quick: bool,
    out: Path,
    work: Path,
    sizes: dict[str, Any] | None = None,
    only: tuple[str, ...] = (),
) -> str:
    """Run the benchmarks (all, or the sections in ``only``) and write the document to
    ``out``; return its text."""
    start = time.perf_counter()
    sizes = sizes or (QUICK if quick else FULL)
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; one of {', '.join(SECTIONS)}")

    def wanted(name: str) -> bool:
        return not only or name in only

    host = machine()
    configs = load_configs(quick)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    sections = []

    data = quality = training = scoring = curves = None
    if wanted("data"):
        data, failed = _section(
            "Data", lambda: run_data(work, sizes["data_athletes"], sizes["data_repeats"])
        )
        sections.append(failed or render_data(data))

    if wanted("quality"):
        quality_settings = sizes.get("quality") or settings_for(quick)
        quality, failed = _section(
            "Model quality",
            lambda: run_quality(
                work, quality_settings, configs.simulation, configs.features, configs.train
            ),
        )
        sections += [failed] if failed else [render_quality(quality), render_curves(quality)]

    if wanted("censoring"):
        censoring, failed = _section(
            "Follow-up and censoring weights",
            lambda: run_censoring(work, configs, sizes.get("censoring", ())),
        )
        sections.append(failed or render_censoring(censoring, configs))

    if wanted("spread"):
        spread_settings = sizes.get("spread") or spread_settings_for(quick)
        spread, failed = _section(
            "Risk spread and interval coverage",
            lambda: run_spread(work, configs, spread_settings),
        )
        sections.append(failed or render_spread(spread, configs))

    if wanted("curves") and sizes.get("curves") is not None:
        curves, failed = _section(
            "Risk over time", lambda: run_curves(work, configs, sizes["curves"])
        )
        sections.append(failed or render_curves_bench(curves))

    if wanted("training"):
        training, failed = _section(
            "Training", lambda: run_training(work, configs, sizes["training"])
        )
        sections.append(failed or render_training(training, configs))

    if wanted("ladder"):
        ladder_sizes = sizes["ladder"]
        ladder, failed = _section(
            "Ladder",
            lambda: run_ladder(
                ladder_sizes["sizes"], list(WORLDS), ladder_sizes["seeds"],
                ladder_sizes["test_athletes"],
                extra_seeds=ladder_sizes.get("extra_seeds", ()),
                extra_up_to=ladder_sizes.get("extra_up_to", 0),
            ),
        )  # fmt: skip
        sections.append(failed or render_ladder(ladder))

    if wanted("registered") and sizes.get("registered") is not None:
        registered_sizes = sizes["registered"]
        registered, failed = _section(
            "Spread of the registered model",
            lambda: run_spread_by_size(
                registered_sizes["seeds_per_size"], list(WORLDS),
                registered_sizes["first_seed"], registered_sizes["test_athletes"],
            ),
        )  # fmt: skip
        sections.append(failed or render_spread_by_size(registered))

    if wanted("scoring"):
        if not sizes["scoring"] and not sizes["lookup_repeats"]:
            model, failed = None, "## Scoring and lookup\n\nNot measured: no sizes requested."
        else:
            model, failed = _section(
                "Scoring and lookup",
                lambda: train_bench_model(work, configs, sizes["store_athletes"]),
            )
        if failed:
            sections.append(failed)
        else:
            interactions = None
            # Only worth measuring when the benchmark model is additive (scored from tables).
            if sizes.get("interactions_at") and getattr(model.risk_model, "additive_", None):
                interactions, failed = _section(
                    "Scoring with interacting trees",
                    lambda: train_interaction_model(work, configs, model),
                )
                if failed:
                    sections.append(failed)
            scoring, failed = _section(
                "Scoring",
                lambda: run_scoring(
                    work,
                    configs,
                    model,
                    sizes["scoring"],
                    interactions=interactions,
                    interactions_at=sizes.get("interactions_at"),
                ),
            )
            sections.append(failed or render_scoring(scoring))
            lookup, failed = _section(
                "Lookup", lambda: run_lookup(work, model, sizes["lookup_repeats"])
            )
            sections.append(failed or render_lookup(lookup))

    if only:
        stamp = (
            f"*Measured alone (`python -m bench --sections {' '.join(only)}`"
            f"{' --quick' if quick else ''}) on {host['date']} at commit {host['commit']}, load"
            f" average {host['load']}, in {(time.perf_counter() - start) / 60:.1f} min; the"
            " rest of this document comes from the run described at the top.*"
        )
        previous = out.read_text() if out.exists() else render_header(host, quick, 0.0)
        text = merge_sections(previous, sections, stamp)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        shutil.rmtree(work, ignore_errors=True)
        progress(f"updated {', '.join(only)} in {out}")
        return text

    reading = render_reading(quality, training, scoring, curves)
    header = render_header(host, quick, time.perf_counter() - start)
    notes = (
        "## Notes\n\n"
        "- The machine is shared: other work may have run at the same time (see the load"
        " average above), which widens the spreads and slows the medians; ratios are measured"
        " back to back in the same run.\n"
        "- Scratch data goes to `.bench/` and is deleted at the end; the models for scoring and"
        " lookup are registered in a private MLflow store there (`HAMRISK_HOME`), never in the"
        " project's store."
    )
    text = "\n\n".join([header, reading, *sections, notes]) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    shutil.rmtree(work, ignore_errors=True)
    progress(f"wrote {out} in {(time.perf_counter() - start) / 60:.1f} min")
    return text


def merge_sections(document: str, sections: list[str], stamp: str) -> str:
    """``document`` with each of ``sections`` (markdown starting ``## Title``) in place of
    its namesake, or added before ``## Notes`` (at the end without one), each stamped.

    A namesake is a section of the same title, or the short placeholder a failed run wrote
    in its place (``## Scoring`` for ``## Scoring: end to end...``)."""
    head, *parts = document.split("\n## ")
    titled = [("## " + part).rstrip("\n") for part in parts]
    for section in sections:
        title = section.splitlines()[0]
        first, _, rest = section.partition("\n")
        stamped = f"{first}\n\n{stamp}\n{rest}".rstrip("\n")
        at = next(
            (i for i, t in enumerate(titled) if _same_section(t.splitlines()[0], title)), None
        )
        if at is None:
            notes = next((i for i, t in enumerate(titled) if t.startswith("## Notes")), None)
            titled.insert(len(titled) if notes is None else notes, stamped)
        else:
            titled[at] = stamped
    return "\n\n".join([head.rstrip("\n"), *titled]) + "\n"


def _same_section(old: str, new: str) -> bool:
    """Whether heading ``old`` is ``new`` or the placeholder of a failed run for it."""
    return old == new or new.startswith(old + ":") or new.startswith(old + " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="development sizes (minutes)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="document to write (default: docs/benchmarks.md, or .bench/benchmarks-quick.md"
        " with --quick)",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=(),
        help="run only these sections and replace them in the existing document",
    )
    args = parser.parse_args(argv)
    out = args.out or (
        PROJECT_DIR / ".bench" / "benchmarks-quick.md"
        if args.quick
        else PROJECT_DIR / "docs" / "benchmarks.md"
    )
    warnings.filterwarnings("ignore")
    run(args.quick, out, PROJECT_DIR / ".bench" / "work", only=tuple(args.sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
