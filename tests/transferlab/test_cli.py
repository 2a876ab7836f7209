"""The transferlab command: kill and resume, status, summaries, distances, report wiring, exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import transferlab.matrix
from conftest import write_tiny_config
from transferlab.cli import main

# one in-process worker with one torch thread: tiny models run fastest so, even on a busy machine
INLINE = ("--workers", "1", "--threads", "1")


def write_config(folder: Path, name: str = "clitiny", **over) -> Path:
    return write_tiny_config(folder, name, **{"seeds": 1, **over})


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _snapshot(cells: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cells.glob("*.json")}


def test_sigkill_mid_matrix_then_rerun_resumes(tmp_path):
    # 6 pairs x (finetune, dann at 2 budgets + scratch at 1) x 2 seeds = 60 cells, scratch shared by 2 sources
    path = write_config(tmp_path, name="killme", methods=["finetune", "dann", "scratch"], seeds=2,
                        train={"steps": 60, "batch_size": 16, "eval_every": 30})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "transferlab", "run", str(path), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    cells = out / "cells"
    deadline = time.monotonic() + 120
    try:
        while len(list(cells.glob("*.json"))) < 6:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no records appeared"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker processes, mid-matrix
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = _snapshot(cells)
    run_info = json.loads((out / "run.json").read_text())
    expected = {c["key"] for c in run_info["cells"]}
    assert len(expected) == 60
    assert 6 <= len(before) < 60, "the run was not killed mid-matrix"
    assert set(k[:-5] for k in before) <= expected
    for name, (_, blob) in before.items():  # whole records only
        assert json.loads(blob)["key"] == name[:-5]

    again = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    after = _snapshot(cells)
    assert set(k[:-5] for k in after) == expected  # every cell, exactly once (one file per key)
    for name, stamp in before.items():
        assert after[name] == stamp, f"{name} was recomputed"
    m = re.search(r"60 cells: (\d+) computed now \((\d+) computations\), (\d+) already done", again.stdout)
    assert m, again.stdout
    computed, computations, done = map(int, m.groups())
    reused = re.search(r"(\d+) reused", again.stdout)
    assert done == len(before) and computed + done + (int(reused.group(1)) if reused else 0) == 60
    # the log (not a terminal) has one line per computation, counting up to the total
    log_lines = [line for line in again.stderr.splitlines() if re.match(r"\[\d+/60\]", line)]
    assert len(log_lines) == computations and log_lines[-1].startswith("[60/60]")
    records = [json.loads(p.read_text()) for p in cells.glob("*.json")]
    assert all(r["status"] == "ok" for r in records)
    info = json.loads((out / "run.json").read_text())
    # the killed invocation never got to say it finished
    assert [i["status"] for i in info["invocations"]] == ["running", "finished"]


def test_run_summary_status_and_next_command(tmp_path, capsys):
    path = write_config(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), *INLINE, "--progress", "none"]) == 0
    stdout = capsys.readouterr().out
    assert re.search(r"finetune\s+0\s+6\s+0\s+0\.\d{3} ± 0\.\d{3}", stdout), stdout
    assert re.search(r"scratch\s+2\s+6\s+0", stdout)
    assert "18 cells: 18 computed now (15 computations), 0 already done; 0 failed" in stdout
    assert f"results: {out}/" in stdout and f"next: transferlab report {out}" in stdout

    (out / "cells" / sorted(os.listdir(out / "cells"))[0]).unlink()
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "cells: 18 expected — 17 done, 0 failed, 1 missing" in status
    assert re.search(r"finetune\s+0\s+6\s+\d\s+0\s+[01]\s+0\.\d{3}", status), status
    assert f"--out {out}" in status


def test_status_lists_failed_cells_and_retry_hint(tmp_path, capsys, monkeypatch):
    import adapt.train

    real = adapt.train.run_cell

    def flaky(cell, source, target, device=None):
        if cell.method == "finetune" and cell.budget == 2 and cell.target == "c":
            raise FloatingPointError("loss diverged at step 3")
        return real(cell, source, target, device=device)

    monkeypatch.setattr(adapt.train, "run_cell", flaky)
    path = write_config(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), *INLINE, "--progress", "none"]) == 1
    stdout = capsys.readouterr().out
    assert "2 cell(s) failed in this run" in stdout and "--retry-failed" in stdout
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "16 done, 2 failed, 0 missing" in status
    assert "a->c finetune seed=0 budget=2: FloatingPointError: loss diverged at step 3" in status
    assert "--retry-failed" in status
    assert main(["run", str(path), "--out", str(out), *INLINE, "--progress", "none"]) == 1
    assert "2 cell(s) had failed in an earlier run and were kept" in capsys.readouterr().out
    monkeypatch.setattr(adapt.train, "run_cell", real)
    assert main(["run", str(path), "--out", str(out), "--retry-failed", *INLINE, "--progress", "none"]) == 0
    assert "18 cells: 2 computed now (2 computations), 16 already done; 0 failed" in capsys.readouterr().out


def test_default_output_folder_is_results_name_under_cwd(tmp_path, monkeypatch, capsys):
    path = write_config(tmp_path, methods=["finetune"], budgets=[0], pairs=[["a", "b"]])
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path), *INLINE, "--progress", "log"]) == 0
    assert (tmp_path / "results" / "clitiny" / "run.json").is_file()
    assert len(list((tmp_path / "results" / "clitiny" / "cells").glob("*.json"))) == 1
    assert "[1/1] a->b finetune seed=0 budget=0: acc=" in capsys.readouterr().err


def test_keyboard_interrupt_exits_130_with_resume_note(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(transferlab.matrix, "run_matrix", interrupted)
    assert main(["run", str(write_config(tmp_path)), "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "rerun the same command to resume" in err and "Traceback" not in err


def test_interrupt_marks_the_invocation_and_keeps_records(tmp_path, monkeypatch):
    import adapt.train

    real = adapt.train.run_cell
    seen = []

    def stop_after_three(cell, source, target, device=None):
        if len(seen) == 3:
            raise KeyboardInterrupt
        seen.append(cell)
        return real(cell, source, target, device=device)

    monkeypatch.setattr(adapt.train, "run_cell", stop_after_three)
    out = tmp_path / "o"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out), *INLINE,
                 "--progress", "none"]) == 130
    info = json.loads((out / "run.json").read_text())
    assert info["invocations"][-1]["status"] == "interrupted"
    assert info["invocations"][-1]["computations"] == 3
    assert len(list((out / "cells").glob("*.json"))) >= 3


def test_distances_table_and_csv(tmp_path, capsys):
    pytest.importorskip("analysis.distances")
    path = write_config(tmp_path, pairs=[["a", "b"], ["b", "c"]])
    csv = tmp_path / "d.csv"
    assert main(["distances", str(path), "--out", str(csv), "--which", "mmd2_linear,coral,class_w2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"a\s+b\s+-?\d", out) and f"wrote {csv}" in out
    import pandas as pd

    df = pd.read_csv(csv)
    assert list(df.columns) == ["source", "target", "mmd2_linear", "coral", "class_w2"]
    assert df[["source", "target"]].values.tolist() == [["a", "b"], ["b", "c"]]
    assert (df["coral"] >= 0).all()


def test_distances_into_a_run_folder_and_the_report_reads_them(tmp_path, capsys):
    """--out RUN_DIR writes RUN_DIR/distances.csv, where the report reads it; analysis loads no data."""
    pytest.importorskip("analysis.distances")
    path = write_config(tmp_path, pairs=[["a", "b"], ["b", "a"]])
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    assert main(["distances", str(path), "--out", str(run_dir), "--which", "mmd2,coral"]) == 0
    assert f"wrote {run_dir / 'distances.csv'}" in capsys.readouterr().out
    from transferlab.distances import covers

    assert covers(run_dir / "distances.csv", [("a", "b"), ("b", "a")])
    assert not covers(run_dir / "distances.csv", [("a", "c")])


def test_distances_flattens_images_and_rejects_unknown_names(tmp_path, capsys):
    pytest.importorskip("analysis.distances")
    path = write_config(tmp_path, data={"kind": "digits", "names": ["original", "inverted"]})
    csv = tmp_path / "d.csv"
    assert main(["distances", str(path), "--out", str(csv), "--which", "coral", "--unlabelled"]) == 0
    capsys.readouterr()
    assert len(Path(csv).read_text().splitlines()) == 3
    assert main(["distances", str(path), "--out", str(csv), "--which", "nope"]) == 2
    assert "unknown distance 'nope'" in capsys.readouterr().err


def test_report_calls_build_report(tmp_path, monkeypatch, capsys):
    import types

    calls = []

    def build_report(run_dir, **kwargs):
        calls.append(Path(run_dir))
        return Path(run_dir) / "report.html"

    monkeypatch.setitem(sys.modules, "analysis.report", types.SimpleNamespace(build_report=build_report))
    (tmp_path / "run.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 0
    assert calls == [tmp_path] and f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert "transferlab" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "--retry-failed" in capsys.readouterr().out


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("transferlab")
    if not exe.exists():
        pytest.skip("transferlab console script not installed in this environment")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "run" in proc.stdout and "status" in proc.stdout


def test_cuda_asked_for_without_a_gpu_is_a_usage_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = write_config(tmp_path)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "--device asks for cuda" in capsys.readouterr().err
    path = write_config(tmp_path, train={"steps": 5, "device": "cuda:0"})
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "config field 'train.device' asks for cuda:0" in capsys.readouterr().err
