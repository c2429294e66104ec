"""``captum-soundness benchmark`` never loses or mixes results and never prints a
traceback for a user error: ``--out`` checked before any work, outputs staged beside it
and moved into place at the end, Ctrl-C (exit 130, ``--resume``), a closed stdout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from captum_soundness.benchmark import _cli as cli

QUICK = ["--quick", "--methods", "random,saliency", "--no-figures", "--no-sanity"]
#: A run slow enough (SimpleMasking) to be interrupted after its first method.
SLOW = ["--quick", "--methods", "random,simple_masking", "--steps", "600"]
SLOW += ["--no-figures", "--no-sanity", "--no-progress"]
#: Keys whose values are timings (they differ between runs).
TIMINGS = {"started", "wall_seconds", "seconds", "seconds_per_map"}


def _command(out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "captum_soundness", "benchmark", *options, "--out", str(out)]


def _run(out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(out, *options), capture_output=True, text=True, timeout=600, check=False
    )


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _without_timings(data):
    if isinstance(data, dict):
        return {k: _without_timings(v) for k, v in data.items() if k not in TIMINGS}
    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


def _results(out: Path) -> dict:
    return _without_timings(json.loads((out / "results.json").read_text(encoding="utf-8")))


def _assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], err


def _occupy(tmp_path: Path, case: str) -> Path:
    """An ``--out`` that must be refused (``case``), inside ``tmp_path``."""
    if case == "file":
        (tmp_path / "out").write_text("not a folder")
        return tmp_path / "out"
    if case == "under a file":
        (tmp_path / "file").write_text("not a folder")
        return tmp_path / "file" / "sub" / "out"
    (tmp_path / "out").mkdir()
    if case == "results.json is a folder":
        (tmp_path / "out" / "results.json").mkdir()
    else:  # "foreign files": a run would replace them with the folder
        (tmp_path / "out" / "notes.txt").write_text("mine")
    return tmp_path / "out"


@pytest.mark.parametrize(
    "case", ["file", "under a file", "results.json is a folder", "foreign files"]
)
def test_unusable_out_is_refused_before_any_work(tmp_path, capsys, case):
    out = _occupy(tmp_path, case)
    before, names = _tree(tmp_path), sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as info:
        cli.main(["benchmark", *QUICK, "--out", str(out)])
    assert info.value.code == 2
    captured = capsys.readouterr()
    _assert_one_line_error(captured.err, "`--out`")
    assert captured.out == ""  # refused before the run started
    assert _tree(tmp_path) == before  # nothing written, nothing beside it
    assert sorted(tmp_path.rglob("*")) == names


def test_unwritable_out_subprocess_one_line(tmp_path):
    out = _occupy(tmp_path, "under a file")
    proc = _run(out, *QUICK)
    assert proc.returncode == 2
    _assert_one_line_error(proc.stderr, "is not a folder")


def test_bad_settings_one_line_no_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["benchmark", "--methods", "nonsense", "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    _assert_one_line_error(capsys.readouterr().err, "nonsense")
    assert not list(tmp_path.iterdir())


def test_earlier_out_is_replaced_by_a_complete_run(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["benchmark", *QUICK, "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    first = _results(out)
    (out / "report.md").write_text("stale")
    (out / "results.csv").unlink()
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "results.csv", "results.json"]
    assert (out / "report.md").read_text().startswith("# captum-soundness benchmark")
    assert _results(out) == first
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or old folder left
    capsys.readouterr()


def test_interrupted_run_leaves_out_untouched_and_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    baseline = _run(out, *SLOW)
    assert baseline.returncode == 0, baseline.stderr
    expected, before = _results(out), _tree(out)
    record = tmp_path / ".out.partial" / "records" / "random.json"

    proc = subprocess.Popen(
        _command(out, *SLOW), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not record.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _assert_one_line_error("error: " + err, "Interrupted", "untouched", "--resume")
    assert _tree(out) == before  # same files, same bytes
    staged = sorted(p.name for p in record.parent.iterdir())
    assert staged == ["random.json"]  # the finished method, not the interrupted one

    with pytest.raises(SystemExit) as refused:  # without --resume: records are kept
        cli.main(["benchmark", *SLOW, "--out", str(out)])
    assert refused.value.code == 2
    _assert_one_line_error(capsys.readouterr().err, "--resume")
    with pytest.raises(SystemExit) as mismatch:
        cli.main(["benchmark", *SLOW, "--seed", "1", "--resume", "--out", str(out)])
    assert mismatch.value.code == 2
    _assert_one_line_error(capsys.readouterr().err, "other settings", "seed")
    assert _tree(out) == before and sorted(p.name for p in record.parent.iterdir()) == staged

    resumed = _run(out, *SLOW, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 recorded methods resumed" in resumed.stdout
    assert _results(out) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_closed_stdout_ends_quietly(tmp_path, unbuffered):
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    if not unbuffered:
        env.pop("PYTHONUNBUFFERED")
    proc = subprocess.Popen(
        _command(tmp_path / "out", *QUICK, "--no-progress"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # what `| head -1` reads, then it closes the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=300)
    assert first.startswith(b"Benchmark:")
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode in (0, 141)  # 141 when a write met the closed pipe


@pytest.mark.parametrize("command", ["benchmark", "evaluate"])
@pytest.mark.parametrize(
    ("fault", "status", "fragment"),
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (ValueError("`model`: outputs are\nnot finite."), 2, "outputs are not finite"),
        (TypeError("`labels` must be ints."), 2, "must be ints"),
        (OSError(28, "No space left on device"), 1, "No space left"),
        (BrokenPipeError(32, "Broken pipe"), 141, None),
    ],
)
def test_main_turns_every_failure_into_one_line(
    tmp_path, capsys, monkeypatch, command, fault, status, fragment
):
    """The wrapper in main() serves both subcommands: no traceback, one line, a status."""

    def handler(args, parser):
        raise fault

    monkeypatch.setattr(cli, f"_{command}", handler)
    monkeypatch.setattr(cli, "_silence_stdout", lambda: None)  # keep pytest's stdout
    argv = [command, "--out", str(tmp_path / "out")]
    if command == "evaluate":
        argv += ["--model", "helpers.models:tiny_cnn", "--data", str(tmp_path)]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == status
    err = capsys.readouterr().err
    if fragment is None:
        assert err == ""
    else:
        _assert_one_line_error("error: " + err, fragment)


def test_concurrent_run_is_refused(tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    out, staging = tmp_path / "out", tmp_path / ".out.partial"
    staging.mkdir()
    fd = os.open(staging, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running benchmark holds
        with pytest.raises(SystemExit) as info:
            cli.main(["benchmark", *QUICK, "--out", str(out)])
    finally:
        os.close(fd)
    assert info.value.code == 2
    _assert_one_line_error(capsys.readouterr().err, "another run")
    assert not out.exists()
