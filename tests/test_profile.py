"""The size a reader gets by default: `ci` in a Jupyter kernel (announced once), `laptop` for the command and scripts."""
import IPython

import saens.train as T


class ZMQInteractiveShell:   # the class name of a Jupyter kernel's shell, which is all `_in_jupyter` looks at
    pass


def test_a_jupyter_kernel_runs_at_ci_size_and_says_so_once(monkeypatch, capsys):
    monkeypatch.delenv("SAENS_PROFILE", raising=False); monkeypatch.delenv("IN_TEST", raising=False)
    monkeypatch.setattr(T, "_NOTICE", [])
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    assert [T.current_profile() for _ in range(3)] == ["ci"] * 3
    err = capsys.readouterr().err
    assert err.count("SAENS_PROFILE is not set") == 1 and "SAENS_PROFILE=laptop" in err


def test_outside_jupyter_the_default_is_laptop_and_the_variable_always_wins(monkeypatch, capsys):
    monkeypatch.delenv("SAENS_PROFILE", raising=False); monkeypatch.delenv("IN_TEST", raising=False)
    monkeypatch.setattr(T, "_NOTICE", [])
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)           # a script, or the `saens` command
    assert T.current_profile() == "laptop"
    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    monkeypatch.setenv("SAENS_PROFILE", "laptop")
    assert T.current_profile() == "laptop"
    assert capsys.readouterr().err == ""                                 # nothing to announce when the size was chosen


def test_the_three_settings_share_one_laptop_cache():
    """The laptop profiles of gelu-1l, pythia-160m and gemma-2-2b are one regime on one set of cached tokens (chapters 10
    to 12); a change to one file's cache fields alone would silently give that setting its own cache and its own data."""
    from saens.config import load_config
    from saens.experiments import cache_dir
    dirs = {name: cache_dir(load_config(name, "laptop")) for name in ("gelu-1l", "pythia-160m", "gemma-2-2b")}
    assert len(set(dirs.values())) == 1, dirs
