"""Messages that keep their cause: every config group's unknown option through the Python API
is the documented ConfigError naming the options; a text file that is not UTF-8 is named; a
model folder that does not exist is reported as such; a library's multi-line error keeps its
reason."""

from __future__ import annotations

import pytest

from swp.config import compose_run_config
from swp.errors import ConfigError, one_line
from swp.testing.tiny import CONF, options

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")


@pytest.mark.parametrize("group", GROUPS)
def test_an_unknown_option_through_the_python_api_is_a_config_error(tmp_path, group):
    with pytest.raises(ConfigError) as info:
        compose_run_config([f"{group}=nosuch"], tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{group}=nosuch is not an option of {group}")
    assert all(o in message for o in options(group))


@pytest.mark.parametrize("override, says", [
    ("model.nosuch=1", "Could not override 'model.nosuch'. To append to your config use +model.nosuch=1"),
    ("pruner=[a", "no viable alternative at input '[a'"),
])
def test_other_overrides_hydra_refuses_are_config_errors_in_one_line(tmp_path, override, says):
    with pytest.raises(ConfigError) as info:
        compose_run_config([override], tmp_path)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_text_file_that_is_not_utf8_is_named(tmp_path):
    from swp.data.text import local_text

    bad = tmp_path / "latin1.txt"
    bad.write_bytes("to be or not to b\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"data file {bad} is not UTF-8 text \\(byte 0xe9 at offset 17\\)"):
        local_text([str(bad)])


@pytest.mark.parametrize("name", ["/nonexistent/folder", "./not-here", "../a/b/c", "~/no-such-model"])
@pytest.mark.parametrize("key", ["model.name_or_path", "dataset.tokenizer"])
def test_a_model_folder_that_does_not_exist_is_reported_as_such(name, key):
    from swp.models.hf_causal_lm import model_source

    with pytest.raises(ConfigError, match=f"^{key}: folder {name} does not exist"):
        model_source(name, None, None, key=key)


def test_a_hub_name_is_left_to_the_hub():
    from swp.models.hf_causal_lm import model_source

    assert model_source("HuggingFaceTB/SmolLM2-135M", None, None) == "HuggingFaceTB/SmolLM2-135M"


def test_a_tokenizer_failure_keeps_its_cause(tmp_path):
    """transformers' message starts with a preamble ("from one of:") and gives the reason on its
    last line; the error keeps all of it, on one line."""
    from swp.tasks.token_lm import _load_tokenizer

    with pytest.raises(ConfigError) as info:
        _load_tokenizer(str(tmp_path), None, False)
    message = str(info.value)
    assert "\n" not in message and "Couldn't instantiate the backend tokenizer" in message
    assert "sentencepiece or tiktoken" in message  # the cause, which the first line alone lost


def test_one_line_joins_and_cuts():
    assert one_line(ValueError("first:\n(1) a,\n(2) b")) == "first: (1) a, (2) b"
    assert one_line(ValueError("")) == "ValueError"
    assert one_line(ValueError("x" * 1000), limit=10) == "xxxxxxx..."
