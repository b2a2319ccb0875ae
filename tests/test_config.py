import json
import logging
import re
from pathlib import Path

import pytest

from sequencer.cli import Parser
from sequencer.config import DEFAULT_CONFIG_FILE, KEYS, CorpusSource, load_config, render_config
from sequencer.errors import ConfigError
from sequencer.runs import load_config as load_run_config

LEGACY_CONFIG = """\
[Files]
train_dir=./training_files
model_dir=./models
predict_in=./predict_input
predict_out=./predict_output

[Parameters]
latent_dim=256
num_samples=10000

[Training]
optimizer=rmsprop
loss=categorical_crossentropy
metrics=accuracy
batch_size=64
epochs=100
val_split=0.2
"""


def write(tmp_path: Path, text: str, name: str = "config.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_keep_the_original_names_and_values(tmp_path):
    config = load_config(write(tmp_path, ""), environ={})
    assert config.train_dir == (CorpusSource(tmp_path / "training_files"),)
    assert config.model_dir == tmp_path / "models"
    assert config.predict_in == tmp_path / "predict_input"
    assert config.predict_out == tmp_path / "predict_output"
    assert (config.latent_dim, config.num_samples, config.batch_size, config.epochs) == (256, 10000, 64, 100)
    assert (config.optimizer, config.loss, config.metrics, config.val_split) == (
        "rmsprop",
        "categorical_crossentropy",
        ["accuracy"],
        0.2,
    )


def test_legacy_config_with_section_headers_loads(tmp_path):
    config = load_config(write(tmp_path, LEGACY_CONFIG.replace("epochs=100", "epochs=7")), environ={})
    assert config.epochs == 7
    assert config.train_dir == (CorpusSource(tmp_path / "training_files"),)


def test_spaces_around_equals_and_comments(tmp_path):
    config = load_config(write(tmp_path, "# a comment\nepochs = 3  # inline comment\n"), environ={})
    assert config.epochs == 3


def test_precedence_flag_environment_dotenv_file_default(tmp_path):
    path = write(tmp_path, "epochs=2\nbatch_size=8\nlatent_dim=16\nseed=5\n")
    write(tmp_path, "SEQUENCER_EPOCHS=3\nSEQUENCER_BATCH_SIZE=9\nSEQUENCER_LATENT_DIM=17\nOTHER_TOOL=x\n", ".env")
    environ = {"SEQUENCER_EPOCHS": "4", "SEQUENCER_BATCH_SIZE": "10", "PATH": "/bin"}
    config = load_config(path, {"epochs": "5"}, environ=environ)
    assert config.epochs == 5  # flag
    assert config.batch_size == 10  # environment
    assert config.latent_dim == 17  # .env
    assert config.seed == 5  # config file
    assert config.val_split == 0.2  # default


def test_relative_paths_follow_their_source(tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    path = write(tmp_path / "project", "train_dir=data/pairs\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(path, {"model_dir": "here/models"}, environ={"SEQUENCER_PREDICT_IN": "in"})
    assert config.train_dir == (CorpusSource(tmp_path / "project" / "data" / "pairs"),)  # config file: its folder
    assert config.predict_out == tmp_path / "project" / "predict_output"  # default: the config's folder
    assert config.model_dir == tmp_path / "here" / "models"  # flag: working directory
    assert config.predict_in == tmp_path / "in"  # environment: working directory


def test_unknown_key_names_file_line_and_closest_key(tmp_path):
    path = write(tmp_path, "latent_dim=8\n\nepoch=5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "config.txt:3" in message
    assert "'epoch'" in message
    assert "did you mean 'epochs'" in message


def test_bad_value_names_key_value_and_what_is_allowed(tmp_path):
    path = write(tmp_path, "val_split=1.5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "config.txt:1" in message
    assert "val_split='1.5'" in message
    assert "a number in [0, 1)" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=many\n", "an integer >= 1"),
        ("epochs=0\n", "an integer >= 1"),
        ("latent_dim=2.5\n", "an integer >= 1"),
        ("val_split=nan\n", "a number in [0, 1)"),
        ("optimizer=adamm\n", "one of adadelta"),
        ("metrics=accuracy,f1\n", "comma-separated, from accuracy"),
        ("on_bad_line=ignore\n", "one of error, skip"),
        ("train_dir=\n", "expected comma-separated folders or files"),
        ("model_dir=\n", "expected a path"),
        ("token_level=bytes\n", "one of char, word, subword"),
        ("subword_model=wordpiece\n", "one of unigram, bpe"),
        ("subword_vocab=50\n", "an integer >= 300"),
        ("positions=rotary\n", "one of sinusoidal, learned"),
        ("lr_schedule=linear\n", "one of constant, inverse_sqrt, cosine"),
        ("label_smoothing=1\n", "a number in [0, 1)"),
        ("min_output_len=-1\n", "an integer >= 0"),
        ("token_level=subword\nmax_vocab=100\n", "max_vocab=100 applies to char and word"),
        ("model_dim=100\nnum_heads=3\n", "model_dim=100 must be a multiple of num_heads=3"),
        ("max_output_len=3\nmin_output_len=5\n", "min_output_len=5 is more than max_output_len=3"),
        ("attention=dot\n", "one of luong, bahdanau"),
        ("dropout=1\n", "a number in [0, 1)"),
        ("seed=4294967296\n", "an integer in [0, 4294967295]"),  # NumPy's seeds are 32-bit
        ("distribution=parameter_server\n", "one of auto, none, mirrored, multi_worker"),
        ("learning_rate_range=0.01\n", "LOW,HIGH with 0 < LOW < HIGH"),
        ("learning_rate_range=0.01,0.001\n", "LOW,HIGH with 0 < LOW < HIGH"),
        ("dropout_range=0.2,1.5\n", "LOW,HIGH with 0 <= LOW < HIGH < 1"),
        ("batch_size_choices=32,,64\n", "comma-separated positive integers"),
        ("ray_address=http://head\n", "HOST:PORT, or empty"),
    ],
)
def test_each_kind_of_bad_value(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    assert expected in str(caught.value)


def test_bad_values_from_flags_and_environment_say_where(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as from_flag:
        load_config(path, {"batch_size": "-1"}, environ={})
    with pytest.raises(ConfigError) as from_environment:
        load_config(path, environ={"SEQUENCER_BATCH_SIZE": "x"})
    assert str(from_flag.value).startswith("--batch_size: batch_size='-1'")
    assert str(from_environment.value).startswith("environment variable SEQUENCER_BATCH_SIZE: batch_size='x'")


def test_unknown_environment_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, ""), environ={"SEQUENCER_LATENT_DIMS": "3"})
    assert "SEQUENCER_LATENT_DIMS" in str(caught.value)
    assert "did you mean 'latent_dim'" in str(caught.value)


def test_unreadable_line_and_key_without_value(tmp_path):
    with pytest.raises(ConfigError) as unreadable:
        load_config(write(tmp_path, "epochs=2\nnot a key value line\n"), environ={})
    with pytest.raises(ConfigError) as no_value:
        load_config(write(tmp_path, "epochs\n"), environ={})
    assert "config.txt:2: cannot read 'not a key value line'" in str(unreadable.value)
    assert "config.txt:1: key 'epochs' has no value" in str(no_value.value)
    write(tmp_path, "SEQUENCER_EPOCHS=3\n\ngarbage line\n", ".env")  # as strict as config.txt
    with pytest.raises(ConfigError, match=r"\.env:3: cannot read 'garbage line'; expected KEY=VALUE$"):
        load_config(write(tmp_path, "epochs=2\n"), environ={})


def test_a_dotenv_line_of_a_key_without_the_prefix_is_a_warning_and_not_read(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "SEQUENCER_EPOCHS=3\n\nbatch_size=9\nOTHER_TOOL=x\n", ".env")
    with caplog.at_level(logging.WARNING, logger="sequencer.config"):
        config = load_config(write(tmp_path, "epochs=2\n"), environ={})
    assert (config.epochs, config.batch_size) == (3, 64)
    assert caplog.messages == [".env:3: batch_size is not read: a .env line needs the prefix, SEQUENCER_BATCH_SIZE="]


def test_named_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.txt", environ={})
    assert "missing.txt does not exist" in str(caught.value)
    with pytest.raises(ConfigError, match=r"^config file /dev/null is not a regular file$"):
        load_config("/dev/null", environ={})


def test_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        load_config(write(tmp_path, "epochs=x\n"), environ={})


def test_shipped_config_is_the_rendered_declaration():
    # If this fails after changing KEYS, regenerate config.txt:
    # python -c "from sequencer.config import render_config; print(render_config(), end='')" > config.txt
    assert DEFAULT_CONFIG_FILE.read_text(encoding="utf-8") == render_config()


def test_config_text_comments_every_key():
    lines = render_config().splitlines()
    for key in KEYS:
        index = lines.index(f"{key.name}={key.format(key.default)}")
        assert lines[index - 1] == f"# {key.help} ({key.allowed()})"


def test_rendered_config_round_trips(tmp_path):
    config = load_config(write(tmp_path, "epochs=3\nmetrics=\n"), environ={})
    again = load_config(write(tmp_path, render_config(config), "again.txt"), environ={})
    assert again.to_dict() == config.to_dict()


def test_every_key_has_a_flag():
    parser = Parser("test", ())
    args = parser.parse_args([f"--{key.name}=1" for key in KEYS])
    assert {key.name for key in KEYS} <= set(vars(args))


def test_line_numbers_count_blank_lines_and_comments(tmp_path):
    path = write(tmp_path, "# header\n\n\nepochs=2\n\n# note\n\nlearning=1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "config.txt:8: unknown key 'learning'" in str(caught.value)


def test_a_key_set_twice_names_both_lines(tmp_path):
    path = write(tmp_path, "epochs=100\nbatch_size=64\n\nepochs=3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value).endswith("config.txt:4: epochs is set again (first on line 1); set each key once")


def test_mixed_precision_takes_true_for_float16_and_a_saved_run_s_boolean(tmp_path):
    assert load_config(write(tmp_path, "mixed_precision=true\n"), environ={}).mixed_precision == "float16"
    assert load_config(write(tmp_path, "mixed_precision=bfloat16\n"), environ={}).mixed_precision == "bfloat16"
    # A run's config.json written when the key was a bool holds JSON's false or true.
    for saved, read in ((False, "false"), (True, "float16")):
        (tmp_path / "config.json").write_text(json.dumps({"mixed_precision": saved}))
        assert load_run_config(tmp_path).mixed_precision == read
    with pytest.raises(ConfigError, match="'half' is not allowed; expected one of false, float16, bfloat16"):
        load_config(write(tmp_path, "mixed_precision=half\n"), environ={})


def test_sampling_settings_are_checked_with_one_line_each(tmp_path):
    for text, message in (
        ("decoding=sample\nbeam_width=4\n", "beam_width=4 is beam search's; decoding=sample draws n_best samples"),
        ("temperature=-1\n", "temperature"),
        ("top_p=0\n", "top_p"),
        ("top_k=-2\n", "top_k"),
        ("decoding=greedy\n", "'greedy' is not allowed; expected one of search, sample"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(write(tmp_path, text), environ={})
    sampling = load_config(write(tmp_path, "decoding=sample\nn_best=5\n"), environ={})
    assert (sampling.decoding, sampling.n_best, sampling.beam_width) == ("sample", 5, 1)  # samples, not a beam
