"""load_routing(): routing/*.yaml into models; every error names file:line."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr import cli
from ivr.adapters.routing_files import load_routing
from ivr.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent.parent

VALID = """\
# The hotline.
hotline:
  name: 测试热线
  dids:
    - "95158"
    - "4008000000"
  default_language: en
  default_queue: repair
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(directory: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_routing(directory)
    return info.value.message


def test_given_repository_routing_dir_when_loaded_then_hotline_configured():
    routing = load_routing(REPO / "routing")

    assert routing.hotline.name
    assert "95158" in routing.hotline.dids
    assert routing.hotline.default_queue == "consultation"
    assert routing.hotline.default_language == "zh"


def test_given_valid_file_when_loaded_then_values_kept(tmp_path):
    write(tmp_path, "hotline.yaml", VALID)

    hotline = load_routing(tmp_path).hotline

    assert hotline.name == "测试热线"
    assert hotline.dids == ["95158", "4008000000"]
    assert (hotline.default_language, hotline.default_queue) == ("en", "repair")


def test_given_default_language_omitted_when_loaded_then_chinese(tmp_path):
    write(tmp_path, "hotline.yaml", VALID.replace("  default_language: en\n", ""))

    assert load_routing(tmp_path).hotline.default_language == "zh"


def test_given_invalid_yaml_when_loaded_then_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace("name: 测试热线", "name: a: b"))

    message = error_of(tmp_path)

    assert message.startswith(f"{path}:3: invalid YAML")
    assert "mapping values are not allowed" in message


def test_given_unclosed_flow_list_when_loaded_then_error_names_file_and_line(tmp_path):
    text = 'hotline:\n  name: x\n  dids: ["95158"\n  default_queue: repair\n'
    path = write(tmp_path, "hotline.yaml", text)

    assert error_of(tmp_path).startswith(f"{path}:4: invalid YAML")


def test_given_unknown_key_when_loaded_then_line_of_that_key(tmp_path):
    text = VALID.replace("  default_queue:", "  colour: red\n  default_queue:")
    path = write(tmp_path, "hotline.yaml", text)

    message = error_of(tmp_path)

    assert message.startswith(f"{path}:8: hotline.colour:")
    assert "Extra inputs are not permitted" in message


def test_given_unknown_top_level_section_when_loaded_then_line_of_that_section(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID + "\nmenus:\n  main: {}\n")

    assert error_of(tmp_path).startswith(f"{path}:10: menus:")


def test_given_did_with_letters_when_loaded_then_line_of_that_list_item(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace('"4008000000"', '"400800OOOO"'))

    message = error_of(tmp_path)

    assert message.startswith(f"{path}:6: hotline.dids.1:")
    assert "400800OOOO" in message


def test_given_fullwidth_digits_in_did_when_loaded_then_refused(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace('"95158"', '"９５１５８"'))

    assert error_of(tmp_path).startswith(f"{path}:5: hotline.dids.0:")


def test_given_unquoted_did_when_loaded_then_line_of_that_list_item(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace('"4008000000"', "4008000000"))

    message = error_of(tmp_path)

    assert message.startswith(f"{path}:6: hotline.dids.1:")
    assert "valid string" in message


def test_given_did_listed_twice_when_loaded_then_line_of_the_list(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace('"4008000000"', '"95158"'))

    message = error_of(tmp_path)

    assert message.startswith(f"{path}:4: hotline.dids:")
    assert "listed twice" in message


def test_given_missing_default_queue_when_loaded_then_line_of_hotline_section(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace("  default_queue: repair\n", ""))

    message = error_of(tmp_path)

    assert message.startswith(f"{path}:2: hotline.default_queue:")
    assert "Field required" in message


def test_given_bad_queue_name_when_loaded_then_line_of_that_value(tmp_path):
    path = write(tmp_path, "hotline.yaml", VALID.replace("repair", "Repair Desk"))

    assert error_of(tmp_path).startswith(f"{path}:8: hotline.default_queue:")


def test_given_comment_only_file_when_loaded_then_error_names_file(tmp_path):
    write(tmp_path, "a.yaml", VALID)
    path = write(tmp_path, "b.yaml", "# nothing yet\n")

    assert error_of(tmp_path).startswith(f"{path}:1: expected a mapping")


def test_given_same_section_in_two_files_when_loaded_then_error_names_second_file(tmp_path):
    write(tmp_path, "a.yaml", VALID)
    second = write(tmp_path, "b.yaml", VALID)

    message = error_of(tmp_path)

    assert message.startswith(f"{second}: section 'hotline'")
    assert "another file" in message


def test_given_no_hotline_section_anywhere_when_loaded_then_error_names_directory(tmp_path):
    write(tmp_path, "empty-but-valid.yaml", "hotline: null\n")

    message = error_of(tmp_path)

    assert message.startswith(f"{tmp_path}: hotline:")
    assert "Field required" in message


def test_given_empty_dir_when_loaded_then_error(tmp_path):
    write(tmp_path, "README.md", "not routing\n")

    assert error_of(tmp_path) == f"{tmp_path}: no routing files (*.yaml)"


# --- ivr check-routing -----------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A clean IVR_* environment, no stray .env file, and logging restored afterwards."""
    for key in [k for k in os.environ if k.startswith("IVR_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IVR_RUN_DIR", str(tmp_path / "run"))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved = {n: logging.getLogger(n).level for n in ("ivr", "panoramisk", "uvicorn.access")}
    yield
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_given_broken_routing_dir_when_check_routing_then_exit_2_and_file_line_on_stderr(
    cli_env, tmp_path, monkeypatch, capsys
):
    broken = tmp_path / "routing"
    path = write(
        broken, "hotline.yaml", VALID.replace("  default_queue:", "  colour: red\n  default_queue:")
    )
    monkeypatch.setenv("IVR_ROUTING_DIR", str(broken))

    code = cli.main(["check-routing"])

    out, err = capsys.readouterr()
    assert code == 2
    assert f"{path}:8: hotline.colour" in err
    assert out == ""


def test_given_repository_routing_when_check_routing_then_exit_0(cli_env, capsys):
    code = cli.main(["check-routing"])

    out, err = capsys.readouterr()
    assert code == 0
    assert re.fullmatch(r"routing OK: \d+ DIDs, \d+ prompts\n", out)
    assert err == ""
