"""The synthetic cohort: five contract tables plus the latent truth behind them.

``simulate_cohort`` draws athletes, their earlier hamstring injuries, index injuries with
rehab and return-to-sport records, strength tests before, during and after rehab, treated
same-side recurrences (index episodes of their own), distractor injuries and loss to
follow-up. Every figure comes from ``configs/simulation.yaml``, which cites its source.

The true first-year recurrence probability of an index episode is logistic-additive in
values that the five tables record as known at the episode's return to sport (see
``configs/simulation.yaml``, ``risk``); there is no hidden frailty. Blank recorded values
read as each effect's reference. The quantities the risk reads, as a feature builder would
compute them from the tables:

- previous injuries: every injury of the athlete dated before the episode's injury date
  (count, any, one within ``recent_days``, one on the same side);
- age: year of the injury date minus ``birth_year``; male: ``sex == "M"``;
- ``bamic_grade``; site b / c (grade 0 has no site and counts as neither);
- days from injury to return to sport minus the expected lay-off for the recorded grade
  (and site c), clipped;
- LSI: mean of involved ÷ uninvolved over knee-flexor tests on the last test date between
  the injury date and return to sport (inclusive); Nordic below threshold: involved-side
  force at the last Nordic test in that span;
- ``peak_sprint_pct`` (capped), ``pain_at_return``, ``slr_deficit_deg``, ``ake_discomfort``;
- phase 3 not done: no ``phase3_end_date`` on or before return to sport;
- ``body_mass_kg`` (no effect in the literature world).

The settings are those of one world (``SimulationConfig.in_world``): the literature, a clinic
unlike the papers, or one where the recorded factors say little (``worlds`` in the YAML).
Whether an episode recurs within the window is its true risk alone; when, given that it does,
is a Weibull truncated to the window whose scale (``timing: episode``) is shorter after a
rushed return (short rehab for the grade, slow last sprint, strength deficit), read from the
same recorded values. The truth carries each episode's true cumulative incidence by each
horizon (``true_risk_{h}d``).

Everything is vectorized over athletes: chains of recurrences are a few levels deep, so the
only Python loops run over levels, sessions and tables, never over athletes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from pipeline import schemas
from pipeline.cohort import TABLES
from pipeline.io import FORMATS, write_tables
from pipeline.schemas import BAMIC_SITES as SITES
from pipeline.schemas import DISCIPLINES, LEVELS, MECHANISMS, SIDES, TESTS
from simulator.config import ATHLETE_MISSING, INJURY_MISSING, REHAB_MISSING, SimulationConfig

# The contract's vocabularies, in the order the simulation config's shares refer to them.
# "unknown" is how a missing muscle reads, not a muscle to draw.
MUSCLES = tuple(m for m in schemas.MUSCLES if m != "unknown")
TEST_UNITS = tuple(schemas.TEST_UNITS[t] for t in TESTS)
FLEXOR = np.array([t != "isokinetic_knee_extension_concentric" for t in TESTS])
NORDIC = TESTS.index("nordic_eccentric")
REHAB_SESSIONS = ("early", "mid", "return")
FOLLOW_UP_SESSIONS = {"one_month": (21, 45), "three_months": (75, 120), "six_months": (150, 210)}
TRUTH_COLUMNS = ("injury_id", "athlete_id", "true_risk", "recurred", "days_to_recurrence")
EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class SimulatedCohort:
    """A simulated cohort: the contract tables and, apart, the latent truth.

    Attributes:
        tables: one frame per table of ``pipeline.cohort.TABLES``, contract column names.
        truth: one row per index episode: ``injury_id, athlete_id, true_risk, recurred``
            (the latent outcome before censoring), ``days_to_recurrence`` (from return to
            sport; ``NaN`` without recurrence), ``level`` (0 = the athlete's first index
            episode, k = its k-th treated recurrence) and ``true_risk_{h}d`` for each of
            ``recurrence.horizons_days``: the true probability of a recurrence within ``h``
            days of return (the last, at the window, is ``true_risk`` itself).
        intercept: the solved log-odds intercept of the true risk.
    """

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    intercept: float


@dataclass(frozen=True)
class SimulationSummary:
    """What ``hamrisk simulate`` reports."""

    rows: dict[str, int]
    episodes: int
    provisional: int
    mean_true_risk: float
    recurrence_share: float
    censored_share: float
    world: str
    timing: str
    truth_auc: float
    folder: Path | None = None
    truth_path: Path | None = None


def horizon_column(days: int) -> str:
    """The truth's column of the true cumulative incidence by ``days`` after return."""
    return f"true_risk_{days}d"


def truth_path_for(out: Path | str) -> Path:
    """Where the truth of a cohort folder goes: ``{out}.truth.csv``, beside the folder."""
    out = Path(out)
    return out.with_name(out.name + ".truth.csv")


def write_simulated(sim: SimulatedCohort, out: Path | str, fmt: str = "csv") -> Path:
    """Write the tables into ``out`` and the truth to ``{out}.truth.csv``; return the latter.

    Raises:
        FileExistsError: ``out`` already holds a table in another format; writing beside it
            would leave a cohort that cannot be read unambiguously.
    """
    out = Path(out)
    clashes = [
        out / f"{name}.{other}"
        for name in sim.tables
        for other in FORMATS
        if other != fmt and (out / f"{name}.{other}").exists()
    ]
    if clashes:
        raise FileExistsError(
            f"{out} already holds {clashes[0].name}; writing {fmt} beside it would make the "
            "cohort ambiguous (use an empty folder or remove the old files)"
        )
    write_tables(sim.tables, out, fmt)
    path = truth_path_for(out)
    sim.truth.to_csv(path, index=False, lineterminator="\n")
    return path


def run_simulation(
    config: SimulationConfig,
    out: Path | str,
    *,
    athletes: int,
    random_state: int,
    fmt: str,
) -> SimulationSummary:
    """The ``simulate`` stage: simulate, write tables and truth, summarize."""
    sim = simulate_cohort(config, athletes, random_state)
    truth_path = write_simulated(sim, out, fmt)
    summary = summarize_simulation(sim, config)
    return replace(summary, folder=Path(out), truth_path=truth_path)


def summarize_simulation(sim: SimulatedCohort, config: SimulationConfig) -> SimulationSummary:
    """Row counts, mean true risk, latent recurrence share, censoring share, the truth's AUC.

    The truth's AUC is that of the true risk against the first-year outcome the tables show,
    over the episodes whose outcome is known (back in sport, not censored): the ceiling of
    what a model can reach on this cohort. ``NaN`` when those episodes hold one outcome only.
    """
    config = config.in_world()
    outcomes = episode_outcomes(sim, config.recurrence.window_days)
    with_rts = outcomes["provisional"].eq(False)
    known = outcomes[with_rts & ~outcomes["censored"]]
    observed = known["observed_recurrence"].to_numpy(dtype=bool)
    auc = (
        float(roc_auc_score(observed, known["true_risk"]))
        if 0 < observed.sum() < observed.size
        else float("nan")
    )
    return SimulationSummary(
        rows={name: len(frame) for name, frame in sim.tables.items()},
        episodes=len(sim.truth),
        provisional=int((~with_rts).sum()),
        mean_true_risk=float(sim.truth["true_risk"].mean()),
        recurrence_share=float(sim.truth["recurred"].mean()),
        censored_share=float(outcomes.loc[with_rts, "censored"].mean()),
        world=config.world,
        timing=config.recurrence.timing,
        truth_auc=auc,
    )


def episode_outcomes(sim: SimulatedCohort, window_days: int) -> pd.DataFrame:
    """Per index episode, what the tables show of its outcome (for reports and tests).

    Returns the truth frame plus ``provisional`` (no return to sport recorded),
    ``observed_recurrence`` (the recurrence is in the tables) and ``censored`` (no recorded
    recurrence and follow-up ended before the window did).
    """
    rtr = sim.tables["return_to_run"][["injury_id", "return_to_sport_date"]]
    frame = sim.truth.merge(rtr, on="injury_id", how="left", validate="one_to_one")
    frame = frame.merge(sim.tables["follow_up"], on="athlete_id", how="left")
    followed = (frame["observed_until"] - frame["return_to_sport_date"]).dt.days
    observed = frame["recurred"] & (frame["days_to_recurrence"] <= followed)
    frame["provisional"] = frame["return_to_sport_date"].isna()
    frame["observed_recurrence"] = observed
    frame["censored"] = ~frame["provisional"] & ~observed & (followed < window_days)
    return frame.drop(columns=["return_to_sport_date", "observed_until"])


# --------------------------------------------------------------------------------------------
# The simulation


def simulate_cohort(config: SimulationConfig, athletes: int, random_state: int) -> SimulatedCohort:
    """Simulate ``athletes`` athletes and their records; deterministic for ``random_state``.

    Raises:
        ValueError: ``athletes`` is below 1.
    """
    if athletes < 1:
        raise ValueError(f"athletes must be at least 1, got {athletes}")
    config = config.in_world()
    streams = iter(np.random.default_rng(random_state).spawn(16))
    people = _draw_athletes(config, athletes, next(streams))
    history = _draw_history(config, people, next(streams))
    chain = _draw_chain(config, people, next(streams))
    _draw_follow_up(config, people, chain, next(streams))
    rehab = _draw_sessions(config, people, chain, next(streams))
    _draw_missing(config, people, chain, next(streams))
    # Recurrence dates move which deeper episodes happen (and so the intercept), and the risks
    # weight the median among recurrences (and so the time scale): place the recurrences on
    # the scale of the typical episode, solve the intercept, solve the scale on those risks,
    # then place and solve once more. With fixed timing the first scale is already the answer.
    log_scale = _timing_log_scale(config, chain, rehab)
    scale = _solve_time_scale(config, np.zeros(1), np.ones(1))
    for _ in range(2 if log_scale.any() else 1):
        chain["scale"] = scale * np.exp(log_scale)
        _place_recurrences(config, people, chain)
        eta = _risk_linear_predictor(config, people, history, chain, rehab)
        intercept = _solve_intercept(config, people, chain, eta)
        exists, risk = _chain_existence(config, people, chain, eta, intercept)
        scale = _solve_time_scale(config, log_scale[exists], risk[exists])
    chain["risk"], chain["lsi_rts"] = risk, rehab["lsi_rts"]
    distractors = _draw_distractors(config, people, chain, exists, next(streams))
    follow = _draw_follow_up_sessions(config, people, chain, exists, next(streams))
    screening = _draw_screening(config, people, next(streams))
    return _assemble(
        config,
        people,
        history,
        chain,
        rehab,
        follow,
        screening,
        distractors,
        exists,
        risk,
        intercept,
    )


def _days(value) -> int:
    return int((np.datetime64(value, "D") - EPOCH).astype(int))


def _year(days: np.ndarray) -> np.ndarray:
    return (days.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970).astype(int)


def _lognormal(rng: np.random.Generator, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Log-normal draws with the given arithmetic mean and SD (durations: no negatives)."""
    sigma2 = np.log1p((sd / mean) ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2))


def _choice(rng: np.random.Generator, shares: dict, keys, size) -> np.ndarray:
    p = np.array([shares.get(k, 0.0) for k in keys], dtype=float)
    return rng.choice(len(keys), size=size, p=p / p.sum())


def _draw_athletes(config: SimulationConfig, n: int, rng: np.random.Generator) -> dict:
    a = config.athlete
    level = _choice(rng, a.levels, LEVELS, n)
    discipline = _choice(rng, a.disciplines, DISCIPLINES, n)
    male = rng.random(n) < a.male_share
    age_mean = np.array([a.age_years[lv].mean for lv in LEVELS])[level]
    age_sd = np.array([a.age_years[lv].sd for lv in LEVELS])[level]
    age = np.clip(np.rint(rng.normal(age_mean, age_sd)), *a.age_range).astype(int)
    mass_mean = np.where(male, a.body_mass_kg["M"].mean, a.body_mass_kg["F"].mean)
    mass_mean = (
        mass_mean
        + np.array([a.body_mass_by_discipline_kg.get(d, 0.0) for d in DISCIPLINES])[discipline]
    )
    mass_sd = np.where(male, a.body_mass_kg["M"].sd, a.body_mass_kg["F"].sd)
    mass = np.round(np.clip(rng.normal(mass_mean, mass_sd), 40, 140), 1)
    share = np.array([[getattr(c.level_share, lv) for c in config.clinics] for lv in LEVELS])
    # Clinic given level: inverse-CDF draw on each athlete's row of shares.
    cdf = np.cumsum(share[level], axis=1)
    clinic = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), len(config.clinics) - 1)
    first = _days(config.cohort_start)
    last = _days(config.export_date) - config.last_index_days_before_export
    entry = rng.integers(first, max(first, last) + 1, size=n)
    strength = np.exp(rng.normal(0.0, config.strength.athlete_strength_sd, n))
    strength *= np.where(level == LEVELS.index("elite"), config.strength.elite_strength_factor, 1)
    strength *= (mass / mass_mean) ** 0.67  # allometric scaling of force (judgement)
    return {
        "n": n,
        "level": level,
        "discipline": discipline,
        "male": male,
        "age": age,
        "birth_year": _year(entry) - age,
        "mass": mass,
        "clinic": clinic,
        "entry": entry,
        "strength": strength,
        "side": rng.integers(0, 2, n),  # side of the first index injury and its chain
    }


def _draw_injury_details(
    config: SimulationConfig, discipline: np.ndarray, rng: np.random.Generator
) -> dict:
    """Grade, site, muscle and mechanism of injuries (``discipline`` per injury)."""
    ix = config.index
    size = discipline.shape
    grade = _choice(rng, ix.grade_shares, range(5), size)
    site = _choice(rng, ix.site_shares, SITES, size)
    hsr = np.array([ix.high_speed_running_share[d] for d in DISCIPLINES])[discipline]
    u = rng.random(size)
    mechanism = np.where(
        u < hsr, 0, np.where(u < hsr + (1 - hsr) * ix.stretching_share_of_rest, 1, 2)
    )
    muscle = _choice(rng, ix.muscle_shares, MUSCLES, size)
    stretch_sm = (mechanism == 1) & (rng.random(size) < ix.stretching_semimembranosus_share)
    muscle = np.where(stretch_sm, MUSCLES.index("semimembranosus"), muscle)
    return {"grade": grade, "site": site, "mechanism": mechanism, "muscle": muscle}


def _draw_history(config: SimulationConfig, people: dict, rng: np.random.Generator) -> dict:
    h = config.history
    mean = np.array([getattr(h.mean_count, lv) for lv in LEVELS])[people["level"]]
    mean = mean * np.exp(h.count_per_year_of_age * (people["age"] - 30))
    count = rng.poisson(mean)
    athlete = np.repeat(np.arange(people["n"]), count)
    age = people["age"][athlete]
    max_back = np.minimum(h.max_years_back * 365.25, (age - h.min_age_years) * 365.25)
    gap = 30 + np.floor(rng.random(athlete.size) * np.maximum(max_back - 30, 1)).astype(int)
    date = people["entry"][athlete] - gap
    same = rng.random(athlete.size) < h.same_side_share
    side = np.where(same, people["side"][athlete], 1 - people["side"][athlete])
    details = _draw_injury_details(config, people["discipline"][athlete], rng)
    return {
        "athlete": athlete,
        "date": date,
        "side": side,
        "count": count,
        "history_missing": _history_blanks(config, athlete.size, rng),
        **details,
    }


def _history_blanks(config: SimulationConfig, size: int, rng: np.random.Generator) -> dict:
    """Blank details of untreated injuries (history, distractors): often poorly recorded."""
    m = config.missing
    rates = {
        "muscle": m.get("history_muscle", 0.0),
        "bamic_grade": m.get("history_bamic_grade", 0.0),
        "bamic_site": m.get("bamic_site", 0.0),
        "mechanism": m.get("history_mechanism", 0.0),
    }
    return {k: rng.random(size) < rate for k, rate in rates.items()}


def _draw_chain(config: SimulationConfig, people: dict, rng: np.random.Generator) -> dict:
    """Every potential index episode: level 0 (the first) and each treated recurrence.

    Arrays are (athletes, levels); injury details have one more column, the untreated
    recurrence of the deepest treated episode. Whether a potential episode happens depends on
    the intercept and when its recurrence falls on the time scale: both are settled later,
    with the dates of the deeper levels; everything drawn here does not depend on them.
    """
    rh = config.rehab
    n, depth = people["n"], config.recurrence.max_treated_recurrences + 1
    shape = (n, depth)
    details = _draw_injury_details(
        config, np.repeat(people["discipline"][:, None], depth + 1, axis=1), rng
    )
    level = np.repeat(people["level"][:, None], depth, axis=1)
    rush = rng.normal(size=shape) + np.array([getattr(rh.rush_shift, lv) for lv in LEVELS])[level]
    grade = details["grade"][:, :depth]
    site_c = (details["site"][:, :depth] == SITES.index("c")) & (grade >= 1)
    mean = np.array([rh.layoff_days_by_grade[g].mean for g in range(5)])[grade]
    sd = np.array([rh.layoff_days_by_grade[g].sd for g in range(5)])[grade]
    c_mean = np.array(
        [rh.layoff_days_site_c.get(g, rh.layoff_days_by_grade[g]).mean for g in range(5)]
    )
    c_sd = np.array([rh.layoff_days_site_c.get(g, rh.layoff_days_by_grade[g]).sd for g in range(5)])
    mean = np.where(site_c, c_mean[grade], mean)
    sd = np.where(site_c, c_sd[grade], sd)
    factor = np.array([c.layoff_factor for c in config.clinics])[people["clinic"]][:, None]
    factor = factor * np.where(details["mechanism"][:, :depth] == 1, rh.stretching_layoff_factor, 1)
    factor = factor * np.exp(rh.rush_layoff_effect * rush)
    layoff = np.maximum(np.rint(_lognormal(rng, mean, sd) * factor), rh.min_layoff_days).astype(int)

    def milestone(name: str) -> np.ndarray:
        lo, hi = rh.phase_fractions[name]
        return np.floor(layoff * rng.uniform(lo, hi, shape)).astype(int)

    phase1, phase2, rtr, phase3 = (
        milestone(k) for k in ("phase1", "phase2", "return_to_run", "phase3")
    )
    phase1 = np.maximum(phase1, 1)  # pain is not settled on the day of the injury
    phase2 = np.maximum(phase2, phase1)
    phase3 = np.clip(phase3, phase2, layoff)
    rtr = np.minimum(rtr, layoff)
    skip_p = np.clip(
        np.array([getattr(rh.phase3_skipped, lv) for lv in LEVELS])[level], 1e-9, 1 - 1e-9
    )
    skipped = rng.random(shape) < expit(
        np.log(skip_p / (1 - skip_p)) + rh.phase3_skipped_rush_log_odds * rush
    )
    done_sprint = rng.normal(rh.peak_sprint_pct_done.mean, rh.peak_sprint_pct_done.sd, shape)
    skip_sprint = rng.normal(rh.peak_sprint_pct_skipped.mean, rh.peak_sprint_pct_skipped.sd, shape)
    peak = np.where(skipped, np.clip(skip_sprint, 40, 100), np.clip(done_sprint, 70, 108))
    peak = np.round(np.clip(peak + rh.peak_sprint_rush_pct * rush, 30, 110))
    pain = np.minimum(rng.poisson(np.exp(rh.pain_log_mean + rh.pain_rush_log * rush)), 10)
    slr = rng.normal(
        rh.slr_deficit_deg.mean + rh.slr_deficit_per_grade * grade + rh.slr_deficit_rush * rush,
        rh.slr_deficit_deg.sd,
    )
    slr = np.round(np.clip(np.abs(slr), 0, 40))
    ake = rng.random(shape) < expit(
        rh.ake_log_odds + rh.ake_rush_log_odds * rush + rh.ake_per_grade_log_odds * (grade - 2)
    )
    # Recurrence: a uniform for its time within the window (placed once the time scale is
    # known, ``_place_recurrences``) and one for "does it recur" (compared with the risk once
    # the intercept is known).
    recurrence_v = rng.random(shape)
    recurrence_u = rng.random(shape)
    return {
        "depth": depth,
        "layoff": layoff,
        "phase1": phase1,
        "phase2": phase2,
        "phase3": phase3,
        "rtr": rtr,
        "skipped": skipped,
        "rush": rush,
        "peak": peak,
        "pain": pain,
        "slr": slr,
        "ake": ake,
        "recurrence_v": recurrence_v,
        "recurrence_u": recurrence_u,
        **details,
    }


def _draw_follow_up(
    config: SimulationConfig, people: dict, chain: dict, rng: np.random.Generator
) -> None:
    """Loss to follow-up after the first return to sport; ``observed_until`` per athlete."""
    f = config.follow_up
    rate = -np.log1p(-f.annual_loss) / 365.25 if f.annual_loss < 1 else np.inf
    rate = rate * np.array([getattr(f.level_factor, lv) for lv in LEVELS])[people["level"]]
    rate = rate * np.exp(f.age_log_factor_per_year * (people["age"] - 30))
    rate = rate * np.where(chain["skipped"][:, 0], f.phase3_skipped_factor, 1.0)
    first_rts = people["entry"] + chain["layoff"][:, 0]
    lost = first_rts + np.floor(rng.exponential(1.0, people["n"]) / rate).astype(np.int64)
    people["observed_until"] = np.minimum(lost, _days(config.export_date))


def _draw_sessions(config: SimulationConfig, people: dict, chain: dict, rng) -> dict:
    """Rehab strength sessions of every potential episode: (athletes, levels, 3 sessions)."""
    s = config.strength
    layoff = chain["layoff"]
    shape = (*layoff.shape, len(REHAB_SESSIONS))
    early = np.maximum(1, np.rint(0.3 * layoff))
    mid = np.maximum(early + 1, np.rint(0.6 * layoff))
    ret = layoff - rng.integers(0, np.minimum(5, layoff // 10) + 1)
    offset = np.stack([early, mid, ret], axis=-1).astype(int)
    present = rng.random(shape) < np.array([s.rehab_sessions[k] for k in REHAB_SESSIONS])
    lsi0 = rng.normal(s.lsi_at_injury.mean, s.lsi_at_injury.sd, layoff.shape)
    lsi_rts = rng.normal(
        s.lsi_at_return.mean + s.lsi_rush_effect * chain["rush"], s.lsi_at_return.sd
    )
    lsi_rts = np.clip(lsi_rts, *s.lsi_range)
    frac = offset / layoff[..., None]
    lsi = lsi0[..., None] + (lsi_rts - lsi0)[..., None] * frac**0.7
    chosen, involved, uninvolved = _measure(config, people, np.clip(lsi, *s.lsi_range), shape, rng)
    return {
        "offset": offset,
        "present": present,
        "lsi_rts": lsi_rts,
        "tests": chosen & present[..., None],
        "involved": involved,
        "uninvolved": uninvolved,
    }


def _measure(config: SimulationConfig, people: dict, lsi: np.ndarray, shape, rng) -> tuple:
    """Which tests a session includes and their recorded values (rounded to 0.1).

    ``lsi`` is the knee-flexor limb symmetry of each session; arrays lead with athletes.
    """
    s = config.strength
    tail = (1,) * (len(shape) - 1)
    clinic = people["clinic"].reshape(-1, *tail)
    avail = np.array([[c.tests.get(t, 0.0) for t in TESTS] for c in config.clinics])
    chosen = rng.random((*shape, len(TESTS))) < avail[clinic][..., :]
    # Every session has at least one knee-flexor test: the clinic's most available one.
    fallback = np.argmax(np.where(FLEXOR, avail, -1.0), axis=1)[clinic]
    none = ~(chosen & FLEXOR).any(axis=-1)
    chosen |= none[..., None] & (np.arange(len(TESTS)) == fallback[..., None])
    male = people["male"].reshape(-1, *tail)
    base = np.array([[s.uninvolved_mean[t]["F"], s.uninvolved_mean[t]["M"]] for t in TESTS])
    base = base[:, 1] * male[..., None] + base[:, 0] * ~male[..., None]
    strength = people["strength"].reshape(-1, *tail)[..., None]
    uninvolved = base * strength * np.exp(rng.normal(0.0, s.session_noise_sd, (*shape, len(TESTS))))
    ratio = lsi[..., None] * np.exp(rng.normal(0.0, s.lsi_test_noise_sd, (*shape, len(TESTS))))
    extension = (
        1
        - s.extension_deficit_share * (1 - lsi[..., None])
        + rng.normal(0.0, s.lsi_test_noise_sd, (*shape, 1))
    )
    ratio = np.where(FLEXOR, ratio, extension)
    involved = np.round(np.maximum(uninvolved * ratio, 1.0), 1)
    return chosen, involved, np.round(uninvolved, 1)


def _draw_missing(config: SimulationConfig, people: dict, chain: dict, rng) -> None:
    """Blank optional fields, as real exports do (fixed before the risk reads them)."""
    m = config.missing
    n, depth = people["n"], chain["depth"]
    people["missing"] = {k: rng.random(n) < m.get(k, 0.0) for k in ATHLETE_MISSING}
    chain["missing"] = {k: rng.random((n, depth + 1)) < m.get(k, 0.0) for k in INJURY_MISSING} | {
        k: rng.random((n, depth)) < m.get(k, 0.0) for k in REHAB_MISSING
    }


def _expected_layoff(config: SimulationConfig, grade: np.ndarray, site: np.ndarray) -> np.ndarray:
    """Expected lay-off for a recorded grade and site (NaN-coded: grade -1 = blank)."""
    rh, ix = config.rehab, config.index
    by_grade = np.array([rh.layoff_days_by_grade[g].mean for g in range(5)])
    by_c = np.array(
        [rh.layoff_days_site_c.get(g, rh.layoff_days_by_grade[g]).mean for g in range(5)]
    )
    overall = sum(ix.grade_shares[g] * by_grade[g] for g in range(5))
    g = np.clip(grade, 0, 4)
    expected = np.where(site == SITES.index("c"), by_c[g], by_grade[g])
    return np.where(grade < 0, overall, expected)


def _risk_linear_predictor(
    config: SimulationConfig, people: dict, history: dict, chain: dict, rehab: dict
) -> np.ndarray:
    """Log-odds of every potential episode without the intercept, from recorded values."""
    rk, e = config.risk, config.risk.effects
    n, depth = people["n"], chain["depth"]
    date = chain["date"][:, :depth]
    miss = chain["missing"]

    def term(effect, value, blank=None) -> np.ndarray:
        value = np.asarray(value, dtype=float)
        if blank is not None:
            value = np.where(blank, effect.reference, value)
        return effect.coefficient * (value - effect.reference)

    # Previous injuries: the history, then each earlier treated episode of the chain.
    last_hist = np.full(n, np.iinfo(np.int64).min // 2)
    np.maximum.at(last_hist, history["athlete"], history["date"])
    same_hist = np.zeros(n, dtype=bool)
    np.logical_or.at(
        same_hist, history["athlete"], history["side"] == people["side"][history["athlete"]]
    )
    level = np.arange(depth)
    count = history["count"][:, None] + level
    last_prior = np.where(level == 0, last_hist[:, None], np.roll(date, 1, axis=1))
    recent = (count > 0) & (date - last_prior <= rk.recent_days)
    same = (level > 0) | same_hist[:, None]

    grade, site, site_unknown = _recorded_grade_site(chain)
    # Age at prediction time (return to sport), as the features read it.
    age = _year(chain["rts"]) - people["birth_year"][:, None]

    lsi, nordic_inv = _last_rehab_strength(rehab)
    eta = (
        term(e.prior_injuries, count)
        + term(e.any_prior_injury, count > 0)
        + term(e.recent_prior_injury, recent)
        + term(e.prior_same_side, same & (count > 0))
        + term(e.age_years, age, people["missing"]["birth_year"][:, None])
        + term(e.male, people["male"][:, None], people["missing"]["sex"][:, None])
        + term(e.bamic_grade, grade, grade < 0)
        + term(e.site_b, site == SITES.index("b"), site_unknown)
        + term(e.site_c, site == SITES.index("c"), site_unknown)
        + term(e.ake_discomfort, chain["ake"], miss["ake_discomfort"])
        + term(e.slr_deficit_deg, chain["slr"], miss["slr_deficit_deg"])
        + term(e.days_vs_expected, _days_vs_expected(config, chain))
        + term(e.lsi_deficit, np.maximum(0.0, 1.0 - lsi), np.isnan(lsi))
        + term(e.nordic_below_threshold, nordic_inv < rk.nordic_threshold_n, np.isnan(nordic_inv))
        + term(
            e.peak_sprint_pct,
            np.minimum(chain["peak"], rk.peak_sprint_cap_pct),
            miss["peak_sprint_pct"],
        )
        + term(e.phase3_not_done, chain["skipped"])
        + term(e.pain_at_return, chain["pain"], miss["pain_at_return"])
        + term(e.body_mass_kg, people["mass"][:, None], people["missing"]["body_mass_kg"][:, None])
    )
    return rk.effect_scale * eta


def _recorded_grade_site(chain: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grade and site as recorded (-1 = blank or none), and whether the site is unknown."""
    depth, miss = chain["depth"], chain["missing"]
    grade = np.where(miss["bamic_grade"][:, :depth], -1, chain["grade"][:, :depth])
    site_blank = (grade >= 1) & miss["bamic_site"][:, :depth]
    no_site = grade <= 0
    site = np.where(no_site | site_blank, -1, chain["site"][:, :depth])
    return grade, site, site_blank | (grade < 0)


def _days_vs_expected(config: SimulationConfig, chain: dict) -> np.ndarray:
    """Days from injury to return minus the expected lay-off for the recorded grade, clipped."""
    grade, site, _ = _recorded_grade_site(chain)
    expected = _expected_layoff(config, grade, site)
    return np.clip(chain["layoff"] - expected, *config.risk.days_vs_expected_range)


# --------------------------------------------------------------------------------------------
# When a recurrence falls: a Weibull truncated to the window, on each episode's time scale


def _timing_log_scale(config: SimulationConfig, chain: dict, rehab: dict) -> np.ndarray:
    """Log time scale of every potential episode against the typical one (0 with fixed timing).

    Read from the recorded values as the risk reads them (blank = the effect's reference).
    """
    r, rk = config.recurrence, config.risk
    shape = chain["layoff"].shape
    if r.timing == "fixed":
        return np.zeros(shape)
    e = r.time_effects
    lsi, _ = _last_rehab_strength(rehab)
    deficit = np.where(np.isnan(lsi), e.lsi_deficit.reference, np.maximum(0.0, 1.0 - lsi))
    peak = np.where(
        chain["missing"]["peak_sprint_pct"],
        e.peak_sprint_pct.reference,
        np.minimum(chain["peak"], rk.peak_sprint_cap_pct),
    )
    return (
        e.days_vs_expected.coefficient
        * (_days_vs_expected(config, chain) - e.days_vs_expected.reference)
        + e.peak_sprint_pct.coefficient * (peak - e.peak_sprint_pct.reference)
        + e.lsi_deficit.coefficient * (deficit - e.lsi_deficit.reference)
    )


def _weibull_cdf(days, scale: np.ndarray, shape: float) -> np.ndarray:
    return -np.expm1(-((np.asarray(days, dtype=float) / scale) ** shape))


def window_share(config: SimulationConfig, days, scale: np.ndarray) -> np.ndarray:
    """Share of an episode's first-year recurrence probability that falls by ``days``.

    ``P(T <= days | T <= window)`` for the Weibull with the episode's ``scale``; the true
    cumulative incidence by ``days`` is the true risk times this.
    """
    r = config.recurrence
    return _weibull_cdf(days, scale, r.weibull_shape) / _weibull_cdf(
        r.window_days, scale, r.weibull_shape
    )


def _solve_time_scale(config: SimulationConfig, log_scale: np.ndarray, risk: np.ndarray) -> float:
    """The common scale whose median among first-year recurrences is ``median_days``.

    Recurrences of an episode are weighted by its true risk; the share of them by the median
    falls as the scale grows, so the root is unique.
    """
    median = config.recurrence.median_days
    weights = risk / risk.sum()

    def gap(log_common: float) -> float:
        share = window_share(config, median, np.exp(log_common + log_scale))
        return float(weights @ share) - 0.5

    return float(np.exp(brentq(gap, np.log(median) - 20.0, np.log(median) + 20.0, xtol=1e-12)))


def _place_recurrences(config: SimulationConfig, people: dict, chain: dict) -> None:
    """Days from return to each potential recurrence, and the dates of the chain's injuries.

    The inverse of the truncated Weibull at each episode's uniform: always within the window,
    whatever the scale, so timing never changes whether a recurrence is in the first year.
    """
    r, depth, layoff = config.recurrence, chain["depth"], chain["layoff"]
    k, scale = r.weibull_shape, chain["scale"]
    f_window = _weibull_cdf(r.window_days, scale, k)
    t = scale * (-np.log1p(-chain["recurrence_v"] * f_window)) ** (1 / k)
    chain["recurrence_days"] = np.clip(np.ceil(t), 1, r.window_days).astype(int)
    date = np.empty((people["n"], depth + 1), dtype=np.int64)
    date[:, 0] = people["entry"]
    for lv in range(depth):
        date[:, lv + 1] = date[:, lv] + layoff[:, lv] + chain["recurrence_days"][:, lv]
    chain["date"], chain["rts"] = date, date[:, :depth] + layoff


def _last_rehab_strength(rehab: dict) -> tuple[np.ndarray, np.ndarray]:
    """LSI (knee flexors, last session) and involved Nordic force (last Nordic) per episode."""
    tests = rehab["tests"]
    ratio = rehab["involved"] / rehab["uninvolved"]
    flex = tests & FLEXOR
    n_flex = flex.sum(axis=-1)
    session_lsi = np.where(
        n_flex > 0, np.where(flex, ratio, 0).sum(axis=-1) / np.maximum(n_flex, 1), np.nan
    )
    nordic = np.where(tests[..., NORDIC], rehab["involved"][..., NORDIC], np.nan)
    return _last_along(session_lsi), _last_along(nordic)


def _last_along(values: np.ndarray) -> np.ndarray:
    """The last non-NaN value along the final axis (sessions are in date order)."""
    ok = ~np.isnan(values)
    idx = values.shape[-1] - 1 - np.argmax(ok[..., ::-1], axis=-1)
    last = np.take_along_axis(values, idx[..., None], axis=-1)[..., 0]
    return np.where(ok.any(axis=-1), last, np.nan)


def _chain_existence(
    config: SimulationConfig, people: dict, chain: dict, eta: np.ndarray, intercept: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which potential episodes happen and are recorded, and the true risk of each."""
    risk = expit(intercept + eta)
    recurs = chain["recurrence_u"] < risk
    exists = np.zeros_like(recurs)
    exists[:, 0] = True
    for lv in range(1, chain["depth"]):
        exists[:, lv] = (
            exists[:, lv - 1]
            & recurs[:, lv - 1]
            & (chain["date"][:, lv] <= people["observed_until"])
        )
    return exists, risk


def _solve_intercept(config: SimulationConfig, people: dict, chain: dict, eta: np.ndarray) -> float:
    """The intercept whose mean true risk over the episodes that happen is ``base_rate``.

    Deeper episodes happen only after a recurrence, so the set of episodes moves with the
    intercept; the random numbers do not, so the mean is a (nearly continuous) increasing
    function of it.
    """

    def gap(b: float) -> float:
        exists, risk = _chain_existence(config, people, chain, eta, b)
        return float(risk[exists].mean()) - config.risk.base_rate

    return float(brentq(gap, -30.0, 30.0, xtol=1e-9))


def _draw_distractors(config: SimulationConfig, people: dict, chain: dict, exists, rng) -> dict:
    """Other-side injuries, and same-side injuries after the window, after the last episode."""
    d = config.distractors
    n = people["n"]
    last = exists.sum(axis=1) - 1
    rows = np.arange(n)
    rts_last = chain["rts"][rows, last]
    recurred_last = chain["recurrence_u"][rows, last] < chain["risk"][rows, last]
    other = rng.random(n) < d.other_side_share
    other_date = rts_last + rng.integers(1, d.other_side_max_days + 1, n)
    late = (rng.random(n) < d.late_same_side_share) & ~recurred_last
    late_date = (
        rts_last + config.recurrence.window_days + rng.integers(1, d.late_same_side_max_days + 1, n)
    )
    athlete = np.concatenate([rows[other], rows[late]])
    date = np.concatenate([other_date[other], late_date[late]])
    side = np.concatenate([1 - people["side"][other], people["side"][late]])
    keep = date <= people["observed_until"][athlete]
    athlete, date, side = athlete[keep], date[keep], side[keep]
    details = _draw_injury_details(config, people["discipline"][athlete], rng)
    return {
        "athlete": athlete,
        "date": date,
        "side": side,
        "history_missing": _history_blanks(config, athlete.size, rng),
        **details,
    }


def _draw_follow_up_sessions(
    config: SimulationConfig, people: dict, chain: dict, exists, rng
) -> dict:
    """Strength sessions after return: recovery of the deficit over months (MSSE 2013)."""
    s = config.strength
    lsi_rts = chain["lsi_rts"]
    shape = (*lsi_rts.shape, len(FOLLOW_UP_SESSIONS))
    bounds = np.array(list(FOLLOW_UP_SESSIONS.values()))
    after = rng.integers(bounds[:, 0], bounds[:, 1] + 1, size=shape)
    present = rng.random(shape) < np.array([s.follow_up_sessions[k] for k in FOLLOW_UP_SESSIONS])
    date = chain["rts"][..., None] + after
    # Only until the next recorded injury of the chain (the recurrence's rehab tests are its
    # own) and until follow-up ends.
    recurs = chain["recurrence_u"] < chain["risk"]
    next_recorded = recurs & (chain["date"][:, 1:] <= people["observed_until"][:, None])
    nxt = np.where(next_recorded, chain["date"][:, 1:], np.iinfo(np.int64).max)
    recorded = exists & (chain["rts"] <= people["observed_until"][:, None])
    present &= (
        recorded[..., None]
        & (date < nxt[..., None])
        & (date <= people["observed_until"][:, None, None])
    )
    lsi = 1 - (1 - lsi_rts[..., None]) * np.exp(-after / s.recovery_days)
    chosen, involved, uninvolved = _measure(config, people, lsi, shape, rng)
    return {
        "date": date,
        "present": present,
        "tests": chosen & present[..., None],
        "involved": involved,
        "uninvolved": uninvolved,
    }


def _final_recurrence_recorded(people: dict, chain: dict, exists: np.ndarray) -> np.ndarray:
    """The deepest treated episode recurred and that injury is on record (untreated)."""
    deepest = chain["depth"] - 1
    recurs = chain["recurrence_u"][:, deepest] < chain["risk"][:, deepest]
    return exists[:, deepest] & recurs & (chain["date"][:, deepest + 1] <= people["observed_until"])


def _draw_screening(config: SimulationConfig, people: dict, rng) -> dict:
    """Pre-injury screening: a healthy, near-symmetric session before the first injury."""
    s = config.strength
    n = people["n"]
    share = np.array([getattr(s.screening_share, lv) for lv in LEVELS])[people["level"]]
    present = rng.random(n) < share
    lo, hi = s.screening_days_before
    date = people["entry"] - rng.integers(lo, hi + 1, n)
    lsi = np.exp(rng.normal(0.0, s.healthy_lsi_sd, n))
    chosen, involved, uninvolved = _measure(config, people, lsi, (n,), rng)
    return {
        "date": date,
        "present": present,
        "tests": chosen & present[:, None],
        "involved": involved,
        "uninvolved": uninvolved,
    }


# --------------------------------------------------------------------------------------------
# From arrays to contract tables


def _ids(prefix: str, count: int, width: int) -> np.ndarray:
    width = max(width, len(str(count)))
    numbers = np.arange(1, count + 1).astype(str)
    return np.char.add(prefix, np.char.zfill(numbers, width)).astype(object)


def _strings(
    codes: np.ndarray, labels: tuple[str, ...], blank: np.ndarray | None = None
) -> pd.array:
    values = np.array(labels, dtype=object)[codes]
    if blank is not None:
        values = np.where(blank, None, values)
    return pd.array(values, dtype="string")


def _dates(days: np.ndarray, blank: np.ndarray | None = None) -> pd.Series:
    values = days.astype("datetime64[D]").astype("datetime64[ns]")
    if blank is not None:
        values = np.where(blank, np.datetime64("NaT", "ns"), values)
    return pd.Series(values, dtype="datetime64[ns]")


def _assemble(
    config, people, history, chain, rehab, follow, screening, distractors, exists, risk, intercept
) -> SimulatedCohort:
    n, depth = people["n"], chain["depth"]
    observed_until = people["observed_until"]
    athlete_ids = _ids("A", n, 6)
    miss = people["missing"]
    athletes = pd.DataFrame(
        {
            "athlete_id": pd.array(athlete_ids, dtype="string"),
            "sex": _strings(people["male"].astype(int), ("F", "M"), miss["sex"]),
            "birth_year": pd.array(
                np.where(miss["birth_year"], None, people["birth_year"]), dtype="Int64"
            ),
            "discipline": _strings(people["discipline"], DISCIPLINES, miss["discipline"]),
            "level": _strings(people["level"], LEVELS, miss["level"]),
            "body_mass_kg": np.where(miss["body_mass_kg"], np.nan, people["mass"]),
        }
    )

    # Injuries: history, treated episodes, the recorded untreated recurrence of the deepest
    # episode, distractors. ``episode`` is the flat (athlete * depth + level) index or -1.
    recurs = chain["recurrence_u"] < risk
    final = _final_recurrence_recorded(people, chain, exists)
    ep_athlete, ep_level = np.nonzero(exists)
    parts = [
        _injury_part(history, history["history_missing"], -1),
        _injury_part(
            {
                "athlete": ep_athlete,
                "date": chain["date"][ep_athlete, ep_level],
                "side": people["side"][ep_athlete],
                **{
                    k: chain[k][ep_athlete, ep_level]
                    for k in ("grade", "site", "muscle", "mechanism")
                },
            },
            {
                k: chain["missing"][k][ep_athlete, ep_level]
                for k in ("muscle", "bamic_grade", "bamic_site", "mechanism")
            },
            ep_athlete * depth + ep_level,
        ),
    ]
    fa = np.nonzero(final)[0]
    parts.append(
        _injury_part(
            {
                "athlete": fa,
                "date": chain["date"][fa, depth],
                "side": people["side"][fa],
                **{k: chain[k][fa, depth] for k in ("grade", "site", "muscle", "mechanism")},
            },
            {
                k: chain["missing"][k][fa, depth]
                for k in ("muscle", "bamic_grade", "bamic_site", "mechanism")
            },
            -1,
        )
    )
    parts.append(_injury_part(distractors, distractors["history_missing"], -1))
    inj = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((inj["date"], inj["athlete"]))
    inj = {k: v[order] for k, v in inj.items()}
    injury_ids = _ids("I", order.size, 7)
    grade_blank = inj["grade_blank"]
    site_blank = grade_blank | (inj["grade"] == 0) | inj["site_blank"]
    injuries = pd.DataFrame(
        {
            "injury_id": pd.array(injury_ids, dtype="string"),
            "athlete_id": pd.array(athlete_ids[inj["athlete"]], dtype="string"),
            "injury_date": _dates(inj["date"]),
            "side": _strings(inj["side"], SIDES),
            "muscle": _strings(inj["muscle"], MUSCLES, inj["muscle_blank"]),
            "bamic_grade": pd.array(np.where(grade_blank, None, inj["grade"]), dtype="Int64"),
            "bamic_site": _strings(inj["site"], SITES, site_blank),
            "mechanism": _strings(inj["mechanism"], MECHANISMS, inj["mechanism_blank"]),
        }
    )

    # Return to run: one row per treated episode, in injury-id order.
    row = np.nonzero(inj["episode"] >= 0)[0]
    flat = inj["episode"][row]
    a, lv = flat // depth, flat % depth
    start = chain["date"][a, lv]
    obs = observed_until[a]
    cm = {k: v[a, lv] for k, v in chain["missing"].items() if v.shape[1] == depth}
    rts = chain["rts"][a, lv]
    provisional = rts > obs

    def milestone(name: str, blank: np.ndarray) -> pd.Series:
        day = start + chain[name][a, lv]
        return _dates(day, blank | (day > obs))

    ret = pd.DataFrame(
        {
            "injury_id": pd.array(injury_ids[row], dtype="string"),
            "clinic_id": pd.array(
                np.array([c.clinic_id for c in config.clinics], dtype=object)[people["clinic"][a]],
                dtype="string",
            ),
            "phase1_end_date": milestone("phase1", cm["phase1_end_date"]),
            "phase2_end_date": milestone("phase2", cm["phase2_end_date"]),
            "phase3_end_date": milestone("phase3", chain["skipped"][a, lv]),
            "return_to_run_date": milestone("rtr", cm["return_to_run_date"]),
            "return_to_sport_date": _dates(rts, provisional),
            "peak_sprint_pct": np.where(
                provisional | cm["peak_sprint_pct"], np.nan, chain["peak"][a, lv]
            ),
            "pain_at_return": pd.array(
                np.where(provisional | cm["pain_at_return"], None, chain["pain"][a, lv]),
                dtype="Int64",
            ),
            "slr_deficit_deg": np.where(
                provisional | cm["slr_deficit_deg"], np.nan, chain["slr"][a, lv]
            ),
            "ake_discomfort": pd.array(
                np.where(provisional | cm["ake_discomfort"], None, chain["ake"][a, lv]),
                dtype="boolean",
            ),
        }
    )

    # Strength tests: screening, rehab sessions of recorded episodes, sessions after return.
    rehab_date = chain["date"][:, :depth, None] + rehab["offset"]
    rehab_ok = (
        rehab["tests"]
        & (exists[..., None] & (rehab_date <= observed_until[:, None, None]))[..., None]
    )
    sessions = [
        (screening["tests"], screening["date"][:, None], screening),
        (rehab_ok, rehab_date[..., None], rehab),
        (follow["tests"], follow["date"][..., None], follow),
    ]
    st = {k: [] for k in ("athlete", "date", "test", "involved", "uninvolved")}
    for tests, date, values in sessions:
        idx = np.nonzero(tests)
        st["athlete"].append(idx[0])
        st["date"].append(np.broadcast_to(date, tests.shape)[idx])
        st["test"].append(idx[-1])
        st["involved"].append(values["involved"][idx])
        st["uninvolved"].append(values["uninvolved"][idx])
    st = {k: np.concatenate(v) for k, v in st.items()}
    order = np.lexsort((st["test"], st["date"], st["athlete"]))
    st = {k: v[order] for k, v in st.items()}
    left_involved = people["side"][st["athlete"]] == 0
    strength_tests = pd.DataFrame(
        {
            "test_id": pd.array(_ids("T", order.size, 8), dtype="string"),
            "athlete_id": pd.array(athlete_ids[st["athlete"]], dtype="string"),
            "test_date": _dates(st["date"]),
            "test": _strings(st["test"], TESTS),
            "left": np.where(left_involved, st["involved"], st["uninvolved"]),
            "right": np.where(left_involved, st["uninvolved"], st["involved"]),
            "unit": _strings(st["test"], TEST_UNITS),
        }
    )

    follow_up = pd.DataFrame(
        {
            "athlete_id": pd.array(athlete_ids, dtype="string"),
            "observed_until": _dates(observed_until),
        }
    )

    recurred = recurs[a, lv]
    truth = pd.DataFrame(
        {
            "injury_id": pd.array(injury_ids[row], dtype="string"),
            "athlete_id": pd.array(athlete_ids[a], dtype="string"),
            "true_risk": risk[a, lv],
            "recurred": recurred,
            "days_to_recurrence": np.where(recurred, chain["recurrence_days"][a, lv], np.nan),
            "level": lv,
        }
    )
    window = config.recurrence.window_days
    for h in config.recurrence.horizons_days:
        share = 1.0 if h == window else window_share(config, h, chain["scale"][a, lv])
        truth[horizon_column(h)] = risk[a, lv] * share
    tables = {
        "athletes": athletes,
        "injuries": injuries,
        "strength_tests": strength_tests,
        "return_to_run": ret,
        "follow_up": follow_up,
    }
    assert tuple(tables) == TABLES
    return SimulatedCohort(tables=tables, truth=truth, intercept=intercept)


def _injury_part(source: dict, blank: dict, episode) -> dict:
    size = source["athlete"].size
    return {
        "athlete": source["athlete"],
        "date": source["date"],
        "side": source["side"],
        "grade": source["grade"],
        "site": source["site"],
        "muscle": source["muscle"],
        "mechanism": source["mechanism"],
        "grade_blank": blank["bamic_grade"],
        "site_blank": blank["bamic_site"],
        "muscle_blank": blank["muscle"],
        "mechanism_blank": blank["mechanism"],
        "episode": np.broadcast_to(np.asarray(episode), (size,)).astype(np.int64),
    }
