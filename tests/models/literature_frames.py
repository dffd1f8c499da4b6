"""Feature frames with the catalog's columns and dtypes, for the literature model's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import DTYPES, FEATURES
from models.literature import LiteratureModel
from pipeline.config import LiteratureConfig, load_config

LITERATURE = load_config(LiteratureConfig, name="literature")


def catalog_frame(n: int, random_state: int, missing_share: float = 0.15) -> pd.DataFrame:
    """``n`` episodes with plausible values in every catalog column, some missing."""
    rng = np.random.default_rng(random_state)
    values = {
        "age_years": rng.normal(27, 7, n).clip(15, 60),
        "sex": rng.choice(["F", "M"], n, p=[0.4, 0.6]),
        "prior_injuries": rng.poisson(0.8, n).astype(float),
        "prior_injuries_recent": rng.poisson(0.3, n).astype(float),
        "bamic_site": rng.choice(["a", "b", "c"], n, p=[0.4, 0.42, 0.18]),
        "days_injury_to_return_to_sport": rng.lognormal(np.log(28), 0.5, n),
        "slr_deficit_deg": rng.gamma(2.0, 3.0, n),
        "ake_discomfort": rng.random(n) < 0.25,
        "lsi_knee_flexors_last_session": rng.normal(0.9, 0.08, n),
        "nordic_involved_force_n": rng.normal(320, 80, n).clip(80, 700),
    }
    values["intratendinous"] = values["bamic_site"] == "c"
    columns = {}
    for spec in FEATURES:
        dtype = DTYPES[spec.kind]
        if spec.name in values:
            column = pd.Series(values[spec.name]).astype(dtype)
        elif spec.kind == "numeric":
            column = pd.Series(rng.normal(1.0, 0.3, n)).astype(dtype)
        elif spec.kind == "boolean":
            column = pd.Series(rng.random(n) < 0.5).astype(dtype)
        else:
            column = pd.Series(rng.choice(["x", "y"], n)).astype(dtype)
        column[rng.random(n) < missing_share] = pd.NA
        columns[spec.name] = column
    return pd.DataFrame(columns)


def literature_model(reference: pd.DataFrame) -> LiteratureModel:
    """The configured literature model centred on ``reference``."""
    return LiteratureModel.from_config(LITERATURE).fit(reference)
