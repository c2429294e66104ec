"""The ``captum-soundness benchmark`` command (``--quick`` end to end) and its options."""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch

from captum_soundness.attr import PRESETS
from captum_soundness.benchmark import (
    DEFAULT_SETTINGS,
    METHODS,
    METRICS,
    QUICK_SETTINGS,
    SANITY_METRICS,
    check_settings,
    format_table,
    parse_fill,
    run_benchmark,
    write_outputs,
)
from captum_soundness.benchmark import _cli as cli
from captum_soundness.fills import BlurFill, ConstantFill, DatasetFill, MeanFill, NoiseFill

FILES = (
    "results.json",
    "results.csv",
    "report.md",
    "maps.png",
    "curves.png",
    "completeness_soundness.png",
)


def test_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli.main(["benchmark", "--quick", "--no-progress", "--out", str(out)]) == 0
    for name in FILES:
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    assert list(data["methods"]) == list(METHODS)
    assert data["settings"]["images"] == 2
    assert len(data["images"]["held_out_indices"]) == 2
    assert data["model"]["held_out_accuracy"] >= 0.97
    for name, entry in data["methods"].items():
        metrics = entry["metrics"]
        assert set(METRICS) <= set(metrics), name
        for key in METRICS:
            assert math.isfinite(metrics[key]), (name, key)
        for key in (
            "completeness_at_prediction",
            "soundness_other_labels_mean",
            "soundness_worst",
            "insertion_auc",
            "deletion_auc",
        ):
            assert 0.0 <= metrics[key] <= 1.0, (name, key)
        assert metrics["soundness_worst"] <= metrics["soundness_other_labels_mean"] + 1e-9
        assert metrics["seconds_per_map"] >= 0.0
        assert entry["num_maps"] == 2 * 10
        assert metrics["seconds_per_map"] == pytest.approx(entry["seconds"] / 20)
        assert len(entry["insertion_curve"]) == len(data["fractions"]) == QUICK_SETTINGS.fractions
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == list(METHODS)
    assert all(float(row["insertion_auc"]) >= 0 for row in rows)
    report = (out / "report.md").read_text()
    for name in ("maps.png", "curves.png", "completeness_soundness.png"):
        assert f"]({name})" in report
    assert "held-out accuracy" in report
    printed = capsys.readouterr().out
    for spec in METHODS.values():
        assert spec.label in printed


def test_bad_method_name_fails_clearly(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["benchmark", "--quick", "--methods", "saliency,nonsense"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "nonsense" in err
    assert "saliency" in err and "simple_masking" in err  # the valid names are listed


def test_module_entry_point_reports_bad_method():
    proc = subprocess.run(
        [sys.executable, "-m", "captum_soundness", "benchmark", "--methods", "Saliencyy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown method name(s): Saliencyy" in proc.stderr
    assert "integrated_gradients" in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmark", "--images", "0"],
        ["benchmark", "--images", "5000"],
        ["benchmark", "--steps", "-3"],
        ["benchmark", "--fill", "purple"],
        ["benchmark", "--quick", "--full"],
        ["benchmark", "--device", "nonsense"],
        ["benchmark", "--threads", "0"],
        ["benchmark", "--seed", "-1"],
        ["benchmark", "--seed", str(2**70)],
        ["benchmark", "--out", __file__],  # an existing file: refused before the run
        ["frobnicate"],
        [],
    ],
)
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_list_methods(capsys):
    assert cli.main(["benchmark", "--list-methods"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in METHODS)


def test_parse_fill():
    assert isinstance(parse_fill("zero"), ConstantFill)
    assert float(parse_fill("0.25").value) == 0.25
    assert float(parse_fill(1.0).value) == 1.0
    assert isinstance(parse_fill("mean"), MeanFill)
    assert isinstance(parse_fill("blur"), BlurFill)
    assert isinstance(parse_fill("noise"), NoiseFill)
    assert isinstance(parse_fill("dataset", torch.zeros(3, 1, 28, 28)), DatasetFill)
    with pytest.raises(ValueError, match="Unknown fill"):
        parse_fill("purple")
    with pytest.raises(ValueError, match="pool"):
        parse_fill("dataset")


def test_run_is_seeded_and_leaves_global_rng_alone():
    settings = QUICK_SETTINGS.replace(
        methods=("smoothgrad", "random", "simple_masking"), show_progress=False, fill="noise"
    )
    state = torch.get_rng_state()
    first = run_benchmark(settings, log=None)
    assert torch.equal(torch.get_rng_state(), state)
    second = run_benchmark(settings, log=None)
    for name in settings.methods:
        a, b = first.methods[name], second.methods[name]
        for key in METRICS:
            if key != "seconds_per_map":
                assert a.metrics[key] == b.metrics[key], (name, key)
        assert torch.equal(a.preview, b.preview)
    other = run_benchmark(settings.replace(seed=1, methods=("random",)), log=None)
    assert not torch.equal(other.methods["random"].preview, first.methods["random"].preview)
    table = format_table(first)
    assert len({len(line) for line in table.splitlines()}) == 1  # aligned columns
    assert "| SmoothGrad |" in format_table(first, markdown=True)


def test_sanity_columns(tmp_path):
    settings = QUICK_SETTINGS.replace(
        methods=("saliency", "random"), sanity=True, sanity_images=2, show_progress=False
    )
    result = run_benchmark(settings, log=None)
    assert set(result.methods["saliency"].sanity) == set(SANITY_METRICS)
    # The random floor ignores the model: sanity columns would only measure how its noise
    # is drawn, so it has none ("-" in the table).
    assert result.methods["random"].sanity == {}
    # Saliency's maps change when the weights are randomised.
    assert result.methods["saliency"].sanity["randomized_spearman"] < 0.9
    write_outputs(result, tmp_path, figures=False)
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["methods"]["saliency"]["sanity"]) == set(SANITY_METRICS)
    assert SANITY_METRICS["class_spearman"][0] in format_table(result)
    assert not (tmp_path / "maps.png").exists()


def test_version_flag(capsys):
    from captum_soundness import __version__

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"captum-soundness {__version__}"


def test_check_settings_names_the_bad_setting():
    from captum_soundness.benchmark import DEFAULT_SETTINGS, check_settings

    with pytest.raises(TypeError, match="`images`"):
        check_settings(DEFAULT_SETTINGS.replace(images=2.0))
    with pytest.raises(ValueError, match="`masking_batch`"):
        check_settings(DEFAULT_SETTINGS.replace(masking_batch=0))
    with pytest.raises(TypeError, match="`explain_batch`"):
        check_settings(DEFAULT_SETTINGS.replace(explain_batch="10"))
    with pytest.raises(ValueError, match="`pool_size`"):
        check_settings(DEFAULT_SETTINGS.replace(pool_size=3500))
    with pytest.raises(ValueError, match="`seed`"):
        check_settings(DEFAULT_SETTINGS.replace(seed=-5))


def test_methods_all_combines_with_names(tmp_path, capsys):
    """'all' among other names selects every method once; random has no sanity columns."""
    out = tmp_path / "r"
    argv = ["benchmark", "--quick", "--no-progress", "--no-figures", "--out", str(out)]
    assert cli.main([*argv, "--methods", "random,all"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert list(data["methods"]) == ["random"] + [m for m in METHODS if m != "random"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ("fast", PRESETS["fast"]["steps"], PRESETS["fast"]["n_fill_samples"])),
        (["--full"], ("paper", 2000, 10)),
        (["--preset", "paper"], ("paper", 2000, 10)),
        (["--preset", "area", "--steps", "7"], ("area", 7, PRESETS["area"]["n_fill_samples"])),
        (["--quick", "--preset", "paper"], ("paper", 2000, 10)),
    ],
)
def test_preset_option_sets_simple_masking_recipe(argv, expected):
    args = cli.build_parser().parse_args(["benchmark", *argv])
    settings = cli._benchmark_settings(args)
    assert (settings.preset, settings.steps, settings.n_fill_samples) == expected
    if "--full" not in argv and "--quick" not in argv:  # benchmark-only options
        ev_argv = ["evaluate", "--model", "m:f", "--data", ".", "--out", "o", *argv]
        ev_settings = cli._evaluate_settings(cli.build_parser().parse_args(ev_argv))
        assert (ev_settings.preset, ev_settings.steps) == expected[:2]


def test_bad_preset_in_settings_is_named():
    with pytest.raises(ValueError, match="preset"):
        check_settings(DEFAULT_SETTINGS.replace(preset="slow"))
