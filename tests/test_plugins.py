import pytest

from sequencer import plugins
from sequencer.errors import ConfigError


def test_discovery_reads_names_and_descriptions_without_importing(tmp_path):
    (tmp_path / "fast.py").write_text('"""A fast one.\n\nMore words."""\nraise RuntimeError("never imported")\n')
    (tmp_path / "plain.py").write_text("x = 1\n")
    (tmp_path / "_helpers.py").write_text('"""Not a plug-in."""\n')
    assert plugins.discover(tmp_path) == {"fast": "A fast one.", "plain": ""}


def test_a_broken_plug_in_is_a_config_error_with_its_line(tmp_path):
    (tmp_path / "broken.py").write_text('"""Broken."""\n\ndef build(:\n')
    with pytest.raises(ConfigError) as caught:
        plugins.discover(tmp_path)
    assert f"{tmp_path / 'broken.py'}:3: the plug-in is not valid Python" in str(caught.value)
