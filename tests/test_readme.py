"""The README's first screen and the docs pages stay true to the code.

The first screen (the lines before `## More`) fits in 60 lines, its `python scripts/...` commands
are ones the scripts accept, and its test command is what `.ci/run` runs. Every config key is
documented in docs/configuration.md, and the relative links of the README and the docs pages
lead to files and headings that exist. Nothing here trains or imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from sequencer.cli import command_line_flags
from sequencer.config import KEYS, load_config
from sequencer.errors import SequencerError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FIRST_SCREEN_END = "## More"
FIRST_SCREEN_MAX_LINES = 60
DOCS_PAGES = (
    "configuration",
    "training",
    "models",
    "decoding",
    "serving",
    "evaluation",
    "scaling",
    "benchmarks",
    "development",
)
# [text](target): the target up to a closing parenthesis or a space (a link title would follow one).
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def first_screen() -> list[str]:
    """The README's lines before `## More` (all of them if the heading is missing; a test says so)."""
    lines = readme_lines()
    return lines[: lines.index(FIRST_SCREEN_END)] if FIRST_SCREEN_END in lines else lines


def code_lines(lines: list[str]) -> list[str]:
    """The lines inside fenced code blocks, with backslash-continued lines joined."""
    found, fenced, pending = [], False, ""
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        found.append((pending + line).strip())
        pending = ""
    return found


def script_commands(lines: list[str]) -> list[str]:
    """The `python scripts/...` lines of the code blocks, without trailing comments."""
    lines = [re.sub(r"\s+#.*$", "", line) for line in code_lines(lines)]
    return [re.sub(r"\s+", " ", line) for line in lines if line.startswith("python scripts/")]


def inline_script_commands(lines: list[str]) -> list[str]:
    """The `python scripts/...` commands quoted in the text, outside code blocks."""
    return re.findall(r"`(python scripts/[^`]+)`", "\n".join(line for line in lines if not line.startswith("    ")))


def load_script(name: str):
    """The module of scripts/NAME, imported from its file (the scripts are not a package)."""
    path = ROOT / "scripts" / name
    assert path.is_file(), f"scripts/{name} does not exist"
    spec = importlib.util.spec_from_file_location(f"readme_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_command(command: str, capsys) -> None:
    """Fail unless the script of `command` accepts its flags and they resolve to a valid configuration."""
    words = shlex.split(command, comments=True)
    script, argv = Path(words[1]).name, words[2:]
    for index, word in enumerate(argv):
        if word in ("<", ">", "|", "&&", ";"):  # the shell's part of the line, not the script's
            argv = argv[:index]
            break
    parser = load_script(script).parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # the parser's one-line error, on standard error
        args = None
    if args is None:
        pytest.fail(f"{script} does not accept `{command}`: {capsys.readouterr().err.strip()}")
    flags = command_line_flags(args)
    ignored = [f"--{name}" for name in flags if name not in parser.uses]
    if ignored:
        pytest.fail(f"`{command}`: {script} ignores {', '.join(ignored)}")
    try:  # the commands run in the repository folder
        load_config(args.config and ROOT / args.config, flags, environ={})
    except SequencerError as error:
        pytest.fail(f"`{command}`: {error}")


def test_first_screen_ends_with_more_heading():
    assert FIRST_SCREEN_END in readme_lines(), f"README.md has no line {FIRST_SCREEN_END!r} ending the first screen"


def test_first_screen_fits_in_60_lines():
    count = len(first_screen())
    assert count <= FIRST_SCREEN_MAX_LINES, f"README's first screen has {count} lines; at most 60"


def test_first_screen_shows_training_and_prediction():
    scripts = {shlex.split(command)[1] for command in script_commands(first_screen())}
    assert {"scripts/train.py", "scripts/predict.py"} <= scripts


@pytest.mark.parametrize("command", script_commands(first_screen()) + inline_script_commands(first_screen()))
def test_first_screen_commands_are_accepted(command, capsys):
    check_command(command, capsys)


def test_check_command_fails_on_a_mistyped_flag(capsys):
    with pytest.raises(pytest.fail.Exception, match="--epcohs"):
        check_command("python scripts/train.py --epcohs 2", capsys)


def test_check_command_fails_on_a_flag_the_script_ignores(capsys):
    with pytest.raises(pytest.fail.Exception, match=r"predict\.py ignores --epochs"):
        check_command("python scripts/predict.py --epochs 2", capsys)


def test_first_screen_files_exist():
    """`cat predict_output/NAME` shows the translation of an input file that ships."""
    for line in code_lines(first_screen()):
        if line.startswith("cat predict_output/"):
            name = line.split("/", 1)[1]
            assert (ROOT / "predict_input" / name).is_file(), f"`{line}`: predict_input/{name} does not exist"


def test_first_screen_test_command_is_what_ci_runs():
    """The README's test command equals the commands at the end of .ci/run, from the first `ruff`."""
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    ci_lines = [line for line in ci_lines if line and not line.startswith("#")]
    starts = [index for index, line in enumerate(ci_lines) if line.startswith("ruff ")]
    assert starts, ".ci/run runs no ruff command"
    ci_command = " && ".join(ci_lines[starts[0] :])
    readme_commands = [line for line in code_lines(first_screen()) if line.startswith("ruff ")]
    assert readme_commands == [ci_command]


def docs_commands() -> list[str]:
    pages = sorted(DOCS.glob("*.md"))
    return sorted({command for page in pages for command in script_commands(page.read_text("utf-8").splitlines())})


@pytest.mark.parametrize("command", docs_commands())
def test_docs_commands_are_accepted(command, capsys):
    check_command(command, capsys)


def test_configuration_page_documents_every_key():
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [
        key.name
        for key in KEYS
        if f"| `{key.name}` | `{key.format(key.default)}` |" not in page and f"| `{key.name}` | empty |" not in page
    ]
    assert not missing, f"docs/configuration.md has no row `| KEY | DEFAULT |` for {', '.join(missing)}"


def test_configuration_page_marks_the_resumable_keys():
    rows = {
        line.split("`")[1]: line
        for line in (DOCS / "configuration.md").read_text("utf-8").splitlines()
        if line.startswith("| `")
    }
    wrong = [key.name for key in KEYS if key.name in rows and ("*Resumable*" in rows[key.name]) != key.resumable]
    assert not wrong, f"docs/configuration.md marks *Resumable* wrongly for {', '.join(wrong)}"


def test_training_page_lists_the_resumable_keys():
    """docs/training.md's table of what may change on resume names exactly the keys declared resumable."""
    lines = (DOCS / "training.md").read_text("utf-8").splitlines()
    start = lines.index("| key | what changes |")
    rows = lines[start + 2 :]
    rows = rows[: next(i for i, line in enumerate(rows) if not line.startswith("|"))]
    listed = {name for line in rows for name in re.findall(r"`(\w+)`", line.split("|")[1])}
    assert listed == {key.name for key in KEYS if key.resumable}


def test_readme_links_every_docs_page():
    targets = set(LINK.findall(README.read_text(encoding="utf-8")))
    for page in DOCS_PAGES:
        assert f"docs/{page}.md" in targets, f"README.md does not link docs/{page}.md"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda page: page.name)
def test_relative_links_lead_somewhere(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.is_file(), f"{page.name} links {target}, but {path} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links {target}, but {path or page.name} has no such heading"
