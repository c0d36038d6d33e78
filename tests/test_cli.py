import shutil
import subprocess
import sys

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
