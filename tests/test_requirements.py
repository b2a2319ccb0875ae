"""The main job's requirements stay apart from what tests, lint, tuning and the browser test need."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVELOPMENT_ONLY = ("ray", "pytest", "ruff", "httpx", "playwright")


def requirement_names(file: str) -> list[str]:
    lines = (line.split("#")[0].strip() for line in (ROOT / file).read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def test_the_main_job_installs_no_development_tools_and_the_package_itself():
    runtime = requirement_names("requirements.txt")
    assert not [line for line in runtime if line.split("[")[0].split("=")[0] in DEVELOPMENT_ONLY]
    assert "-e ." in runtime  # import sequencer works from any folder


def test_the_development_requirements_add_to_the_main_jobs_and_ci_installs_them():
    development = requirement_names("requirements-dev.txt")
    assert development[0] == "-r requirements.txt"
    assert {line.split("[")[0].split("=")[0] for line in development[1:]} == set(DEVELOPMENT_ONLY)
    assert "pip install --quiet -r requirements-dev.txt" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
