"The student chapters: every solution becomes a stub, and each chapter runs until its first exercise check, which fails with its own message."
import json
import re

import pytest

from saens.checks import NBS_DIR, SOLUTION, CheckFailed, is_solution, solution_names, write_student_notebooks


def _first_exercise(nb: dict) -> str:
    "The name of the function the first solution cell defines."
    src = "".join(next(c for c in nb["cells"] if is_solution(c))["source"])
    return re.search(r"^def (\w+)", src, re.M).group(1)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return write_student_notebooks(NBS_DIR, out)


def test_every_chapter_with_an_exercise_has_a_student_version_without_solutions(student):
    with_ex = sorted(p.name for p in NBS_DIR.glob("*.ipynb") if any(is_solution(c) for c in json.loads(p.read_text())["cells"]))
    assert with_ex and sorted(p.name for p in student) == with_ex
    for p in student:
        full, stu = json.loads((NBS_DIR / p.name).read_text()), json.loads(p.read_text())
        assert len(full["cells"]) == len(stu["cells"])
        for a, b in zip(full["cells"], stu["cells"]):
            if is_solution(a):
                text = "".join(b["source"])
                assert SOLUTION not in text and "raise NotImplementedError" in text
            elif a["source"] != b["source"]:              # only export cells change: an answer's definition becomes an import
                assert "".join(a["source"]).lstrip().startswith("#| export") and "from saens." in "".join(b["source"]), p.name
            else: assert a["source"] == b["source"]


def test_no_student_chapter_shows_the_answer_to_its_own_exercises(student):
    """The library definitions an exercise re-implements are not printed above it: the student chapter imports them
    instead (Exercise 0.1 used to sit below `concat_dictionary`'s own export cell, which answered it)."""
    import ast
    hidden_somewhere = 0
    for p in student:
        full = json.loads((NBS_DIR / p.name).read_text())
        names = {n for c in full["cells"] if is_solution(c) for n in solution_names(c)}
        defined = set()
        for c in json.loads(p.read_text())["cells"]:
            if c["cell_type"] != "code" or is_solution(c) or "raise NotImplementedError" in "".join(c["source"]): continue
            try: tree = ast.parse("".join(c["source"]))
            except SyntaxError: continue
            defined |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not names & defined, (p.name, names & defined)
        full_defs = {n.name for c in full["cells"] if c["cell_type"] == "code" and not is_solution(c) and _parses(c)
                     for n in ast.parse("".join(c["source"])).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        hidden_somewhere += len(names & full_defs)
    assert hidden_somewhere >= 10      # the annotations name real definitions (concat_dictionary, lr_at, mse, ...)


def _parses(c) -> bool:
    import ast
    try: ast.parse("".join(c["source"])); return True
    except SyntaxError: return False


def test_student_chapters_fail_at_their_first_check_with_its_message(student, monkeypatch):
    from execnb.shell import CaptureShell
    monkeypatch.setenv("IN_TEST", "1")
    for p in student:
        monkeypatch.chdir(p.parent)
        full = json.loads((NBS_DIR / p.name).read_text())
        with pytest.raises(CheckFailed, match="still to be written") as e:
            CaptureShell().run_all(_as_nb(p), exc_stop=True)
        assert f"`{_first_exercise(full)}`" in str(e.value), (p.name, str(e.value))


def _as_nb(path):
    from execnb.nbio import read_nb
    return read_nb(path)


def test_the_student_command_writes_the_chapters_with_exercises(tmp_path, capsys):
    from saens.cli import main
    assert main(["student", str(tmp_path / "course")]) == 0
    written = sorted(p.name for p in (tmp_path / "course").glob("*.ipynb"))
    assert written == sorted(p.name for p in NBS_DIR.glob("*.ipynb") if any(is_solution(c) for c in json.loads(p.read_text())["cells"]))
    assert {"00_proposition.ipynb", "02_train.ipynb", "05_toy.ipynb", "22_scr.ipynb"} <= set(written)
    assert "wrote" in capsys.readouterr().out


def test_the_librarys_own_function_is_not_an_answer():
    """`ensemble_dictionary = concat_dictionary` used to pass Exercise 0.1: the implementation sits above the exercise
    in the chapter (its export cell) and in the library. Both are refused: the library's function, and the copy a
    chapter compiles from the same source (a student notebook runs the export cells too)."""
    import inspect
    import saens.proposition as P
    from saens.checks import check_concat_dictionary
    with pytest.raises(CheckFailed, match="this is saens's own `saens.proposition.concat_dictionary`"):
        check_concat_dictionary(P.concat_dictionary)
    ns = dict(vars(P))
    exec(compile(inspect.getsource(P.concat_dictionary), "<chapter 0, export cell>", "exec"), ns)
    assert ns["concat_dictionary"] is not P.concat_dictionary
    with pytest.raises(CheckFailed, match="saens's own"):
        check_concat_dictionary(ns["concat_dictionary"])
    check_concat_dictionary(lambda W, b, w: P.concat_dictionary(W, b, w))    # an answer that calls it is still an answer
