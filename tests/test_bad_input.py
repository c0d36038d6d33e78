"""Bad input, collected: every case is an input, the clear message it must get, and the check that nothing on disk was
written or changed. Configs go through the `saens` command (one line on stderr, exit status 1); files and API values
go through the library."""
import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml

from saens.cli import main
from saens.experiments import CONFIG_DIR

QUICK = yaml.safe_load((CONFIG_DIR / "quickstart.yaml").read_text())


def _snapshot(root: Path) -> dict:
    "Every file under `root` with its bytes and mode: what 'nothing written or changed' is checked against."
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in sorted(root.rglob("*")) if p.is_file()}


def _config(tmp_path, name, change=None, text=None) -> Path:
    c = copy.deepcopy(QUICK)
    if change: change(c)
    f = tmp_path / f"{name}.yaml"
    f.write_text(text if text is not None else yaml.safe_dump(c, sort_keys=False))
    return f


def _set(path, value):
    "A change to a config: set the value at `path` ('train.lr'), creating mappings on the way."
    def change(c):
        *head, last = path.split(".")
        for k in head: c = c.setdefault(k, {})
        c[last] = value
    return change


def _drop(path):
    def change(c):
        *head, last = path.split(".")
        for k in head: c = c[k]
        c.pop(last)
    return change


CONFIG_CASES = [  # (name, change, text, message)
    ("top-level typo", _set("n_eval_token", 5), None, "unknown setting 'n_eval_token' (did you mean 'n_eval_tokens'?)"),
    ("section typo", _set("trian", {"lr": 1e-3}), None, "unknown setting 'trian' (did you mean 'train'?)"),
    ("ensemble typo", _set("ensemble.n_ensemble", 3), None, "unknown setting 'n_ensemble' (did you mean 'n_ensembles'?)"),
    ("train typo", _set("train.learning_rate", 1e-3), None, "train: in"),
    ("profile typo", _set("profiles.laptop.n_tokens", 5), None, "profile 'laptop' of"),
    ("lr not a number", _set("train.lr", "abc"), None, "lr in TrainConfig must be a number, got 'abc'"),
    ("sae typo", _set("sae.kk", 4), None, "unknown setting 'kk' (did you mean 'k'?)"),
    ("unknown arch", _set("sae.arch", "topkk"), None, "got 'topkk' (did you mean 'topk'?)"),
    ("k as text", _set("sae.k", "lots"), None, "k must be a positive int, got 'lots'"),
    ("negative l1", lambda c: (c["sae"].update(arch="relu", l1_coeff=-1), c["sae"].pop("k"), c["profiles"]["ci"]["sae"].pop("k")),
     None, "l1_coeff in a ReLU SAE must be >= 0, got -1"),
    ("no sae", _drop("sae"), None, "missing setting sae"),
    ("no arch", _drop("sae.arch"), None, "needs arch"),
    ("zero ensembles", _set("ensemble.n_ensembles", 0), None, "ensemble: n_ensembles in"),
    ("expanded_J scalar", _set("ensemble.expanded_J", 4), None, "expanded_J in"),
    ("dead window", _set("train.dead_window", -1), None, "dead_window in TrainConfig must be >= 0, got -1"),
    ("both widths", _set("sae.d_sae", 100), None, "needs one of d_sae and expansion"),
    ("bool as number", _set("ctx_len", True), None, "ctx_len in"),
    ("bad dtype", _set("cache_dtype", "float61"), None, "cache_dtype in"),
    ("empty file", None, "", "is empty: a config is a mapping of settings"),
    ("a list", None, "- 1\n- 2\n", "must be a mapping of settings (name: value), got list"),
    ("not YAML", None, "model: [1\n", "is not valid YAML"),
]


@pytest.mark.parametrize("name,change,text,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_bad_config_is_one_clear_line_and_writes_nothing(tmp_path, monkeypatch, capsys, name, change, text, message):
    monkeypatch.setenv("SAENS_HOME", str(tmp_path / "home")); monkeypatch.setenv("SAENS_PROFILE", "ci")
    f = _config(tmp_path, name.replace(" ", "-"), change, text)
    before = _snapshot(tmp_path)
    assert main(["eval", str(f), "--profile", "laptop", "--home", str(tmp_path / "home")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("saens eval: error: ") and message in err, err
    assert "Traceback" not in err
    assert _snapshot(tmp_path) == before and not (tmp_path / "home").exists()


def test_a_number_written_as_text_is_read_as_that_number(tmp_path):
    "`expansion: \"4\"` is 4 (not a 576-digit string), `lr: 3e-4` (text to YAML 1.1) is 3e-4."
    from saens.experiments import load_config
    f = _config(tmp_path, "text", lambda c: (c["sae"].update(expansion="4"), c["train"].update(lr="3e-4")))
    exp = load_config(str(f), "laptop")
    assert (exp.d_sae, exp.train["lr"]) == (4 * 576, 3e-4)
    assert exp.fingerprint() == load_config(str(_config(tmp_path, "num", lambda c: (c["sae"].update(expansion=4),
                                                                                      c["train"].update(lr=3e-4)))), "laptop").fingerprint()


def test_every_shipped_config_passes_the_schema():
    from saens.experiments import config_names, load_config
    for name in config_names():
        for profile in ("ci", "laptop", "paper"): load_config(name, profile)


API_CASES = [
    ("TrainConfig lr text", lambda: __import__("saens.train").train.TrainConfig(lr="abc"), "lr in TrainConfig must be a number"),
    ("TrainConfig dead_window", lambda: __import__("saens.train").train.TrainConfig(dead_window=-1), "dead_window in TrainConfig must be >= 0"),
    ("TrainConfig betas", lambda: __import__("saens.train").train.TrainConfig(betas=0.9), "betas must be two numbers"),
    ("negative l1", lambda: __import__("saens.sae").sae.make_sae("relu", 4, 8, l1_coeff=-1), "l1_coeff in a ReLU SAE must be >= 0"),
    ("negative sparsity", lambda: __import__("saens.sae").sae.make_sae("jumprelu", 4, 8, sparsity_coeff=-0.1), "sparsity_coeff"),
    ("zero weights", lambda: __import__("saens.ensemble").ensemble.Ensemble(
        [__import__("saens.sae").sae.make_sae("relu", 4, 8, seed=s) for s in range(2)], [0, 0]), "ensemble weights are all zero"),
]


@pytest.mark.parametrize("name,make,message", API_CASES, ids=[c[0] for c in API_CASES])
def test_a_bad_value_in_the_api_is_refused_when_given(name, make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


# ---- damaged files: each is found on the next use, with the file named, and the advice works ----

def _flip(f: Path, at: int = -3):
    b = bytearray(f.read_bytes()); b[at] ^= 1; f.write_bytes(bytes(b))


def test_a_flipped_bit_in_a_saved_sae_is_found(tmp_path):
    from saens.sae import load_sae, make_sae, save_sae
    p = save_sae(make_sae("topk", 8, 16, k=2, seed=3), tmp_path / "sae")
    _flip(p / "sae.safetensors")
    with pytest.raises(ValueError, match="sae.safetensors does not match the checksum its config.json holds"):
        load_sae(p)


def test_a_config_beside_other_weights_is_found(tmp_path):
    "A topk config.json beside relu weights of the same shapes used to load as a TopKSAE."
    from saens.sae import load_sae, make_sae, save_sae
    save_sae(make_sae("topk", 8, 16, k=2), tmp_path / "t"); save_sae(make_sae("relu", 8, 16), tmp_path / "r")
    shutil.copy(tmp_path / "t" / "config.json", tmp_path / "r" / "config.json")
    with pytest.raises(ValueError, match="r/config.json does not belong to the weights"):
        load_sae(tmp_path / "r")


def test_an_ensemble_manifest_edited_to_one_member_is_found(tmp_path):
    from saens.ensemble import Ensemble, load_ensemble, save_ensemble
    from saens.sae import make_sae
    p = save_ensemble(Ensemble([make_sae("relu", 8, 16, seed=s) for s in range(2)]), tmp_path / "e")
    m = json.loads((p / "ensemble.json").read_text()); m.update(n_members=1, weights=[1.0]); m.pop("sha256")
    (p / "ensemble.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="lists 1 members, but .* holds the member folders"):
        load_ensemble(p)


def test_a_changed_checkpoint_is_not_resumed_and_the_advice_works(tmp_path):
    from saens.sae import make_sae
    from saens.train import CHECKPOINT_NAME, TrainConfig, train_sae
    X = torch.randn(4096, 8, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(n_tokens=20 * 64, batch_size=64, lr=1e-3, progress=False, checkpoint_dir=str(tmp_path))
    ref = train_sae(make_sae("relu", 8, 16, seed=1), X, cfg)
    ck = tmp_path / CHECKPOINT_NAME
    st = torch.load(ck, weights_only=True); st["sae"]["W_enc"].view(torch.int32)[0, 0] ^= 1; torch.save(st, ck)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match="does not match its checksum.*Delete it and run the same command again"):
        train_sae(make_sae("relu", 8, 16, seed=1), X, cfg)
    assert _snapshot(tmp_path) == before                   # refused, not overwritten: the user decides
    ck.unlink()                                            # the advice: delete it and run again
    again = train_sae(make_sae("relu", 8, 16, seed=1), X, cfg)
    for k, v in ref.state_dict().items(): assert torch.equal(again.state_dict()[k], v)


def test_flipped_values_in_a_cache_shard_are_found_and_the_cache_command_repairs_them(tmp_path):
    "Found on the first read (training used to run on them); the advice (run the cache command again) repairs the shard."
    from saens.activations import ActivationCache, CacheConfig, CacheError, cache_activations
    from saens.models import DEFAULT_MODEL, LanguageModel, load_model
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = load_model(DEFAULT_MODEL).tokenizer
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)).eval()
    lm = LanguageModel(tiny, tok, name="tiny-llama")
    cfg = CacheConfig(model="tiny-llama", hook="blocks.0.hook_resid_post", ctx_len=32, n_train_tokens=4 * 31 * 16,
                      n_eval_tokens=31 * 16, shard_tokens=31 * 16, batch_contexts=16)
    cache_activations(lm, tmp_path / "c", cfg, progress=False)
    good = ActivationCache(tmp_path / "c").train.tensor()
    victim = tmp_path / "c" / "train-00002.safetensors"
    b = bytearray(victim.read_bytes()); b[-40:] = bytes(x ^ 0xFF for x in b[-40:]); victim.write_bytes(bytes(b))
    c = ActivationCache(tmp_path / "c")                    # size and header pass
    fn = c.train.batches(batch_size=64, seed=0)
    with pytest.raises(CacheError, match="train-00002.safetensors does not match its checksum.*Run the same cache command again"):
        for step in range(4 * 31 * 16 // 64): fn(step)
    cache_activations(lm, tmp_path / "c", cfg, progress=False)
    assert torch.equal(ActivationCache(tmp_path / "c", deep=True).train.tensor(), good)


def test_a_damaged_history_and_an_unwritable_record_folder_are_found_before_the_evaluation(tmp_path, monkeypatch, capsys):
    "Both used to fail only after the whole evaluation."
    from saens.experiments import load_config, run_dir
    monkeypatch.setenv("SAENS_HOME", str(tmp_path / "home"))
    exp = load_config("quickstart", "ci")
    h = run_dir(exp) / "bagging-J4-seed0" / "history.json"
    h.parent.mkdir(parents=True); h.write_text('{"batch_size": 512, "curves": [[')
    assert main(["eval", "quickstart", "--profile", "ci", "--home", str(tmp_path / "home")]) == 1
    err = capsys.readouterr().err
    assert "history.json (training history) is truncated or corrupt" in err and "Delete it and run again" in err, err
    h.unlink()
    blocker = tmp_path / "a-file"; blocker.write_text("x")     # a --record folder that cannot be made, even by root
    assert main(["eval", "quickstart", "--profile", "ci", "--home", str(tmp_path / "home"), "--record", str(blocker / "results")]) == 1
    assert "cannot write the recorded results into" in capsys.readouterr().err
    assert not (tmp_path / "home" / "activations").exists()   # found before any work
    if os.geteuid() == 0: return                             # root writes into read-only folders
    ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o500)
    try:
        assert main(["eval", "quickstart", "--profile", "ci", "--home", str(tmp_path / "home"), "--record", str(ro / "results")]) == 1
        assert "cannot write the recorded results into" in capsys.readouterr().err
    finally: ro.chmod(0o700)


def test_a_failure_of_the_command_is_one_line_and_debug_gives_the_traceback(tmp_path):
    "The command run as a user runs it: one line on stderr and status 1; `--debug` (anywhere) shows the traceback."
    env = {**os.environ, "SAENS_HOME": str(tmp_path), "SAENS_PROFILE": "ci"}
    env.pop("SAENS_DEBUG", None)
    bad = tmp_path / "x.yaml"; bad.write_text("sae: {arch: topk}\nmodel: m\n")
    saens = [sys.executable, "-c", "import sys; from saens.cli import main; sys.exit(main())"]
    r = subprocess.run(saens + ["eval", str(bad)], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "missing settings" in r.stderr, r.stderr
    r = subprocess.run(saens + ["eval", "--debug", str(bad)], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" in r.stderr and "missing settings" in r.stderr, r.stderr


def test_a_second_process_on_the_same_folder_waits_or_says_who_holds_it(tmp_path):
    from saens.utils import folder_lock
    code = ("import sys; from saens.utils import folder_lock\n"
            "try:\n    with folder_lock(sys.argv[1], wait=False): print('got it')\n"
            "except BlockingIOError as e: print(e)")
    with folder_lock(tmp_path):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True).stdout
    assert f"is in use by process {os.getpid()}" in out
    # waiting: the second process blocks until the first lets go, then goes on
    with folder_lock(tmp_path):
        p = subprocess.Popen([sys.executable, "-c", "import sys; from saens.utils import folder_lock\n"
                              "with folder_lock(sys.argv[1], log=lambda s: print(s, flush=True)): print('in', flush=True)",
                              str(tmp_path)], stdout=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        assert first.startswith("waiting for process") and p.poll() is None
    assert p.stdout.readline().strip() == "in" and p.wait(timeout=30) == 0
