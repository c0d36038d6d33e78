"The record: record_results (training time of every model, histories), run.json settings and fingerprints, seed sets, and counts that the command line refuses instead of ignoring."
import json

import pytest


def test_record_results_sums_the_training_time_of_every_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SAENS_HOME", str(tmp_path / "home"))
    from saens.experiments import load_config, run_dir
    from saens.record import record_results
    exp = load_config("quickstart", "ci")
    src = run_dir(exp); src.mkdir(parents=True)
    (src / "records.json").write_text(json.dumps(dict(records=[])))
    (src / "table1.md").write_text("| method |\n|---|\n")
    for name, s in (("expanded-J4-seed0", 30.5), ("bagging-J4-seed0", 12.0), ("boosting-J4-seed0", 7.25)):
        (src / name).mkdir(); (src / name / "history.json").write_text(json.dumps(dict(batch_size=512, seconds=s, curves=[])))
    out = record_results(exp, src, tmp_path / "results", "saens eval quickstart --profile ci", seconds=5.0)
    run = json.loads((out / "run.json").read_text())
    assert (run["seconds"], run["training_seconds"], run["models"]) == (5, 50, 3)
    assert (out / "table1.md").exists() and run["profile"] == "ci"
    # every model's history travels with the results, under the model's folder name
    assert sorted(f.name for f in (out / "histories").iterdir()) == ["bagging-J4-seed0.json", "boosting-J4-seed0.json", "expanded-J4-seed0.json"]
    assert json.loads((out / "histories" / "expanded-J4-seed0.json").read_text())["seconds"] == 30.5


def test_run_json_records_the_settings_and_a_later_profile_change_is_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("SAENS_HOME", str(tmp_path / "home"))
    import copy
    from saens.experiments import load_config, run_dir
    from saens.record import record_results, run_settings, settings_changes
    exp = load_config("quickstart", "ci")
    src = run_dir(exp); src.mkdir(parents=True)
    (src / "records.json").write_text(json.dumps(dict(records=[])))
    run = json.loads((record_results(exp, src, tmp_path / "results", "saens eval quickstart --profile ci", 1.0) / "run.json").read_text())
    assert run["fingerprint"] == exp.fingerprint() and run["settings"] == run_settings(exp)
    assert settings_changes(run["settings"], run_settings(exp)) == []
    later = copy.deepcopy(exp); later.train["lr"] = 0.5; later.sae_kwargs["k"] = 7; later.n_ensembles = 9
    assert settings_changes(run["settings"], run_settings(later)) == [
        "n_ensembles: 2 -> 9", "sae_kwargs.k: 32 -> 7", f"train.lr: {exp.train['lr']!r} -> 0.5"]


def test_every_recorded_run_matches_its_fingerprint():
    """Every results/*/run.json that records its settings gives back its own fingerprint, so a recorded run can be
    matched to the run folder (and the profile) that made it."""
    from saens.record import RESULTS_DIR, settings_fingerprint
    runs = {f.parent.name: json.loads(f.read_text()) for f in sorted(RESULTS_DIR.glob("*/run.json"))}
    with_settings = {name: run for name, run in runs.items() if "settings" in run}
    assert len(with_settings) >= 4, sorted(runs)          # the quickstart and the three settings at laptop size
    for name, run in with_settings.items():
        assert settings_fingerprint(run["settings"]) == run["fingerprint"], name


def test_a_second_seed_set_is_another_run_with_disjoint_seeds_recorded_beside_the_first(tmp_path, monkeypatch):
    "Seed set 0 keeps every earlier fingerprint; set 1 trains other seeds into another run folder and another results folder."
    monkeypatch.setenv("SAENS_HOME", str(tmp_path / "home"))
    import copy
    from saens.experiments import SEED_SET_STRIDE, load_config, method_seed, run_dir
    from saens.record import record_results, recorded, recorded_name, run_settings
    exp = load_config("quickstart", "ci")
    assert "seed_set" not in run_settings(exp)                       # set 0: the settings (and folders) of every earlier run
    other = copy.deepcopy(exp); other.seed_set = 1
    assert run_settings(other)["seed_set"] == 1 and other.fingerprint() != exp.fingerprint()
    seeds = lambda k: {method_seed(m, s + SEED_SET_STRIDE * k) + j for m in ("bagging", "boosting", "expanded")
                       for s in range(exp.n_ensembles) for j in range(exp.J)}
    assert not seeds(0) & seeds(1)                                    # disjoint, members included
    assert recorded_name("quickstart", "ci", 1) == "quickstart-ci-seeds1" and recorded_name("quickstart", "ci") == "quickstart-ci"
    for e in (exp, other):
        src = run_dir(e); src.mkdir(parents=True)
        (src / "records.json").write_text(json.dumps(dict(records=[dict(method="bagging", J=1, seed=0, ev=0.5 + e.seed_set)])))
        (src / "table1.md").write_text("| method |\n|---|\n")
        record_results(e, src, tmp_path / "results", "saens eval quickstart --profile ci", 1.0)
    assert recorded("quickstart", "ci", tmp_path / "results", seed_set=1)["records"][0]["ev"] == 1.5
    assert recorded("quickstart", "ci", tmp_path / "results")["records"][0]["ev"] == 0.5


@pytest.mark.parametrize("option,value,message", [("--seed-set", "-1", "must be at least 0, got -1"), ("--seeds", "0", "must be at least 1, got 0"),
                                                  ("--seeds", "-3", "must be at least 1, got -3"), ("--threads", "0", "must be at least 1, got 0"),
                                                  ("--seeds", "two", "expected a whole number, got 'two'")])
def test_counts_out_of_range_are_refused_not_ignored(option, value, message, tmp_path, capsys):
    "0 and negative counts once passed a truthiness test and were silently ignored (or trained nothing): now one clear line."
    from saens.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "quickstart", "--profile", "ci", option, value, "--home", str(tmp_path)])
    assert e.value.code == 2 and f"argument {option}: {message}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())                              # nothing written
