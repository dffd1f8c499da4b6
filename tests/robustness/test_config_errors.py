"""A config file with a typo or a value out of range: exit 2, naming the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import CONFIG_DIR
from tests.robustness.conftest import TRAIN_FAST

runner = CliRunner()


def edited(source: Path, target: Path, path: tuple[str, ...], value: object, rename=None) -> Path:
    """``source`` with the key at ``path`` set to ``value`` (or renamed to ``rename``)."""
    document = yaml.safe_load(source.read_text())
    node = document
    for key in path[:-1]:
        node = node[key]
    if rename is not None:
        node[rename] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    target.write_text(yaml.safe_dump(document))
    return target


SIMULATION = CONFIG_DIR / "simulation.yaml"
FEATURES = CONFIG_DIR / "features.yaml"

CASES = {
    # case: (option, file, key path, new value or None, renamed key, expected message)
    "train-typo": (
        "--config", TRAIN_FAST, ("split", "test_fraction"), None, "test_fracion",
        r"split\.test_fracion: unknown key \(check its spelling\)",
    ),
    "train-range": (
        "--config", TRAIN_FAST, ("split", "test_fraction"), 1.5, None,
        r"split\.test_fraction: Input should be less than .* \(got 1\.5\)",
    ),
    "train-gate-range": (
        "--config", TRAIN_FAST, ("registry", "gates", "auc_min"), 2, None,
        r"registry\.gates\.auc_min: .*\(got 2\)",
    ),
    "train-type": (
        "--config", TRAIN_FAST, ("random_state",), "seven", None,
        r"random_state: Input should be a valid integer",
    ),
    "features-typo": (
        "--features-config", FEATURES, ("outcome", "window_days"), None, "window_day",
        r"outcome\.window_day: unknown key",
    ),
    "features-range": (
        "--features-config", FEATURES, ("outcome", "window_days"), 0, None,
        r"outcome\.window_days: Input should be greater than or equal to 1 \(got 0\)",
    ),
    "simulate-typo": (
        "--config", SIMULATION, ("athletes",), None, "athlets",
        r"^error: \S+: athlets: unknown key",  # named first, before the "required" it causes
    ),
    "simulate-range": (
        "--config", SIMULATION, ("athletes",), 0, None,
        r"athletes: Input should be greater than or equal to 1 \(got 0\)",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("option", "source", "path", "value", "rename", "message"), CASES.values(), ids=CASES.keys()
)
def test_config_mistake_names_the_key_and_exits_2(
    tmp_path, private_home, option, source, path, value, rename, message
):
    config = edited(source, tmp_path / source.name, path, value, rename)
    if source == SIMULATION:
        args = ["simulate", str(tmp_path / "out"), option, str(config)]
    else:
        args = ["train", str(tmp_path / "no-cohort-needed"), option, str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: {config}: ")
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing is written on a bad config


UNREADABLE = {
    "missing": (lambda p: None, "config file not found"),
    "folder": (lambda p: p.mkdir(), "is a folder, not a config file"),
    "not_utf8": (lambda p: p.write_bytes(b"athletes: 1\xff\n"), r"not UTF-8 text \(byte 0xff"),
    "not_yaml": (lambda p: p.write_text("athletes: [1\n"), "not valid YAML"),
    "not_a_mapping": (lambda p: p.write_text("- 1\n- 2\n"), "expected a mapping"),
}


@pytest.mark.parametrize(("make", "message"), UNREADABLE.values(), ids=UNREADABLE.keys())
@pytest.mark.parametrize("command", ["simulate", "train", "train-features"])
def test_unreadable_config_file_exits_2_naming_it(tmp_path, private_home, command, make, message):
    config = tmp_path / "settings.yaml"
    make(config)
    option = "--features-config" if command == "train-features" else "--config"
    args = [command.split("-")[0], str(tmp_path / "out"), option, str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: {config}: ")
    assert re.search(message, result.stderr), result.stderr
