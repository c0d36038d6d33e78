"record_results: a run resumed over several commands records every model's own training time, not only the last command's, and copies each model's history."
import json


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
    assert (run["seconds"], run["training_seconds"], run["models_trained"]) == (5, 50, 3)
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
