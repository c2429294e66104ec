"""``captum-soundness evaluate``: own model and image folder, torchrun, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_soundness.benchmark import _cli as cli

#: ``tests``: the subprocesses import the model as ``helpers.models:tiny_cnn`` from there.
TESTS = Path(__file__).resolve().parents[1]
#: Cheap methods plus SimpleMasking with few steps (the one that needs the pool).
METHODS = "saliency,gradcam,simple_masking,random"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """6 evaluated 32x32 photos in two class folders, 3 pool photos (skimage.data)."""
    import skimage.data as photos

    root = tmp_path_factory.mktemp("evaluate")
    names = ["astronaut", "chelsea", "coffee", "rocket", "cat", "camera", "retina", "logo"]
    names.append("immunohistochemistry")
    images = []
    for name in names:
        array = getattr(photos, name)()
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        images.append(Image.fromarray(array[..., :3].astype(np.uint8)).resize((32, 32)))
    for i, image in enumerate(images[:6]):
        (root / "data" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        image.save(root / "data" / "ab"[i % 2] / f"photo{i}.png")
    (root / "pool").mkdir()
    for i, image in enumerate(images[6:]):
        image.save(root / "pool" / f"fill{i}.jpg")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs on one thread, as each torchrun process (faster on 2 shared cores);
    the numbers do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _args(folders, out, *extra):
    return [
        "evaluate",
        "--model",
        "helpers.models:tiny_cnn",
        "--data",
        str(folders / "data"),
        "--pool",
        str(folders / "pool"),
        "--image-size",
        "32",
        "--methods",
        METHODS,
        "--steps",
        "8",
        "--batch-size",
        "1",
        "--no-progress",
        "--no-figures",
        "--out",
        str(out),
        *extra,
    ]


def _env():
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")


def _numbers(out):
    """Everything in results.json that does not measure time."""
    methods = json.loads((out / "results.json").read_text())["methods"]
    for entry in methods.values():
        entry["metrics"].pop("seconds_per_map")
        entry.pop("seconds")
    return methods


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory):
    """One uninterrupted single-process run (in this process, the tiny model importable)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli.main(_args(folders, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_reference_run_writes_the_outputs(reference):
    data = json.loads((reference / "results.json").read_text())
    assert list(data["methods"]) == METHODS.split(",")
    assert data["model"]["labels"] == [0, 1, 2]
    assert data["model"]["gradcam_layer"] == "2"  # the last convolution
    assert data["images"]["held_out_indices"] == list(range(6))
    assert data["images"]["labels"] == [0, 0, 0, 1, 1, 1]  # class sub-folders a, b
    for entry in data["methods"].values():
        assert entry["num_maps"] == 6 * 3
        assert 0.0 <= entry["metrics"]["soundness_other_labels_mean"] <= 1.0
    assert "captum-soundness evaluate" in (reference / "report.md").read_text()
    assert len(list((reference / "records" / "saliency").glob("*.json"))) == 6


def test_two_process_torchrun_equals_one_process(folders, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "captum_soundness", *_args(folders, out)]
    proc = subprocess.Popen(
        command,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # torchrun and its workers in one process group
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    assert "2 process(es)" in stdout
    assert _numbers(out) == _numbers(reference)


def test_killed_run_resumes_to_the_same_numbers(folders, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "captum_soundness", *_args(folders, out)]
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = out / "records" / "simple_masking"
    deadline = time.monotonic() + 240
    while not list(records.glob("*.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no record written"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()  # killed midway
    done = len(list(records.glob("*.json")))
    assert 1 <= done < 6
    with pytest.raises(SystemExit) as info:
        cli.main(_args(folders, out))  # an occupied --out without --resume: refused
    assert info.value.code == 2
    assert cli.main([*_args(folders, out), "--resume"]) == 0
    assert _numbers(out) == _numbers(reference)


def test_torchvision_model_with_weights_file(folders, tmp_path):
    from torchvision.models import resnet18

    weights = tmp_path / "resnet18.pt"
    torch.save(resnet18(num_classes=3).state_dict(), weights)
    out = tmp_path / "out"
    argv = ["evaluate", "--model", "torchvision.models:resnet18"]
    argv += ["--model-kwargs", '{"num_classes": 3}', "--weights", str(weights)]
    argv += ["--data", str(folders / "data"), "--image-size", "32", "--images", "2"]
    argv += ["--methods", "saliency,gradcam", "--no-progress", "--no-figures", "--out", str(out)]
    assert cli.main(argv) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["model"]["gradcam_layer"] == "layer4.1.conv2"
    assert data["model"]["num_parameters"] == sum(
        p.numel() for p in resnet18(num_classes=3).parameters()
    )
    assert len(data["images"]["held_out_indices"]) == 2
    assert set(data["methods"]) == {"saliency", "gradcam"}


def test_resume_with_other_weights_is_refused(folders, tmp_path, capsys):
    from torchvision.models import resnet18

    out = tmp_path / "out"
    argv = ["evaluate", "--model", "torchvision.models:resnet18"]
    argv += ["--model-kwargs", '{"num_classes": 3}', "--weights", str(tmp_path / "w.pt")]
    argv += ["--data", str(folders / "data"), "--image-size", "32", "--images", "1"]
    argv += ["--methods", "saliency", "--no-progress", "--no-figures", "--out", str(out)]
    for seed in (0, 1):  # the same architecture, other weights
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            torch.save(resnet18(num_classes=3).state_dict(), tmp_path / "w.pt")
        if seed == 0:
            assert cli.main(argv) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--resume"])
    assert info.value.code == 2
    assert "model_sha256" in capsys.readouterr().err


def test_occupied_out_is_refused(folders, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")
    with pytest.raises(SystemExit) as info:
        cli.main(_args(folders, out))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--resume" in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--model": "not a spec"}, "MODULE:CALLABLE"),
        ({"--model": "helpers.models:nothing_here"}, "no callable"),
        ({"--model": "no_such_module_xyz:f"}, "cannot import"),
        ({"--model-kwargs": "[1, 2]"}, "JSON object"),
        ({"--model-kwargs": '{"bogus": 1}'}, "failed"),
        ({"--data": "/nonexistent/folder"}, "not a folder"),
        ({"--normalize": "purple"}, "imagenet, none or MEAN,STD"),
        ({"--normalize": "0.5,0.5,0.2,0.2"}, "give one value each or 3 each"),
        ({"--labels": "3"}, "at least 2"),
        ({"--labels": "0,7"}, "`labels`"),
        ({"--methods": "saliency,nonsense"}, "unknown method name(s): nonsense"),
        ({"--images": "50"}, "holds 6"),
        ({"--steps": "0"}, "positive integer"),
        ({"--fill": "purple"}, "Unknown fill"),
        ({"--gradcam-layer": "nope"}, "nope"),
        ({"--weights": "/nonexistent.pt"}, "not a file"),
    ],
)
def test_bad_arguments_fail_in_one_line(folders, tmp_path, capsys, change, message):
    argv = _args(folders, tmp_path / "out")
    for option, value in change.items():
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "records").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning")
def test_torchscript_file(folders, tmp_path):
    from helpers.models import tiny_cnn

    scripted = tmp_path / "tiny.pt"
    torch.jit.script(tiny_cnn()).save(str(scripted))
    out = tmp_path / "out"
    argv = ["evaluate", "--model", str(scripted), "--data", str(folders / "data")]
    argv += ["--image-size", "32", "--images", "2", "--methods", "saliency,random"]
    argv += ["--no-progress", "--no-figures", "--out", str(out)]
    assert cli.main(argv) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["model"]["name"] == str(scripted)


def test_evaluate_dataset_on_a_label_subset():
    """The API on a TensorDataset of images without labels, 2 of 3 labels, GradCAM."""
    from helpers.models import tiny_cnn

    from captum_soundness.benchmark import evaluate_dataset

    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.TensorDataset(images)
    model = tiny_cnn()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = evaluate_dataset(model, data, ["gradcam", "random"], labels=[2, 0], log=None)
    assert result.model_info["gradcam_layer"] == "model.2"  # inside the label subset
    assert result.model_info["labels"] == [2, 0]
    assert set(result.predicted) <= {0, 2}
    assert result.image_labels.tolist() == [-1, -1, -1]
    assert result.methods["gradcam"].num_maps == 6
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
