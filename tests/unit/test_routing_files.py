"""load_routing(): routing/*.yaml into models; every error names file:line."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr import cli
from ivr.adapters.telephony.prompts import load_catalog
from ivr.adapters.telephony.routing_files import (
    check_prompts,
    check_queues,
    load_routing,
    queues_defined,
)
from ivr.core.queue_ringing import ringing_conf
from ivr.core.routing_models import prompt_references
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

DESKS = """\
queues: [repair, emergency]
desks:
  - id: repair
    key: "1"
    queue: repair
    category: repair
    label: {zh: 报修, en: Repairs}
    hours:
      mon-fri: ["08:00-18:00"]
    holidays: [2027-01-01]
    closed_prompt: closed-repair
  - id: emergency
    queue: emergency
    category: emergency
    label: {zh: 抢险, en: Emergency}
    emergency: true
    always_open: true
"""

OUTAGES = """\
areas:
  - id: qiaoxi
    name: 桥西区
    caller_prefixes: ["031186"]
outages:
  - area: qiaoxi
    starts: 2026-11-26 08:00:00
    ends: 2026-11-26 18:00:00
    prompt: outage-qiaoxi
priority_callers:
  - number: "031186000001"
    priority: 5
    reason: elderly_alone
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def write_valid(directory: Path, hotline: str = VALID, desks: str = DESKS) -> tuple[Path, Path]:
    return write(directory, "hotline.yaml", hotline), write(directory, "desks.yaml", desks)


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
    assert routing.hotline.emergency_dids == ["96777"]


def test_given_valid_file_when_loaded_then_values_kept(tmp_path):
    write_valid(tmp_path)

    hotline = load_routing(tmp_path).hotline

    assert hotline.name == "测试热线"
    assert hotline.dids == ["95158", "4008000000"]
    assert (hotline.default_language, hotline.default_queue) == ("en", "repair")


def test_given_default_language_omitted_when_loaded_then_chinese(tmp_path):
    write_valid(tmp_path, hotline=VALID.replace("  default_language: en\n", ""))

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


def test_given_same_section_in_two_files_when_loaded_then_error_names_both_files(tmp_path):
    first = write(tmp_path, "a.yaml", VALID)
    second = write(tmp_path, "b.yaml", "# again\n" + VALID)

    message = error_of(tmp_path)

    assert message.startswith(f"{second}:3: section 'hotline' is also defined in {first}:2")


def test_given_no_hotline_section_anywhere_when_loaded_then_error_names_directory(tmp_path):
    write(tmp_path, "empty-but-valid.yaml", "hotline: null\n")

    message = error_of(tmp_path)

    assert message.startswith(f"{tmp_path}: hotline:")
    assert "Field required" in message


def test_given_empty_dir_when_loaded_then_error(tmp_path):
    write(tmp_path, "README.md", "not routing\n")

    assert error_of(tmp_path) == f"{tmp_path}: no routing files (*.yaml)"


def test_given_sections_in_several_files_when_loaded_then_merged(tmp_path):
    write_valid(tmp_path)
    write(tmp_path, "outages.yaml", OUTAGES)

    routing = load_routing(tmp_path)

    assert [d.id for d in routing.desks] == ["repair", "emergency"]
    assert routing.desks[0].hours["fri"] == ["08:00-18:00"]
    assert str(routing.desks[0].holidays[0]) == "2027-01-01"
    assert routing.outages[0].area == "qiaoxi"
    assert routing.priority_caller("031186000001") is not None


def test_given_no_desks_section_when_loaded_then_error_names_directory(tmp_path):
    write(tmp_path, "hotline.yaml", VALID)

    message = error_of(tmp_path)

    assert message == f"{tmp_path}: queues: Field required; {tmp_path}: desks: Field required"


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "says"),
    [
        ('key: "1"', 'key: "#"', 4, "desks.0.key", "must be one of 0-9 or *"),
        ('key: "1"', "key: 1", 4, "desks.0.key", "valid string"),
        ('"08:00-18:00"', '"8-18"', 9, "desks.0.hours.mon-fri.0", "HH:MM-HH:MM"),
        ("mon-fri:", "weekdays:", 9, "desks.0.hours.weekdays.[key]", "must be a weekday"),
        ("    closed_prompt: closed-repair\n", "", 3, "desks.0", "needs a closed_prompt"),
        ("    category: repair\n", "    category: repair\n    timezone: Asia/Peking\n", 7,
         "desks.0.timezone", "unknown time zone"),
        ("    emergency: true\n", "    emergency: true\n    key: \"9\"\n", 12, "desks.1",
         "the emergency desk has no key"),
    ],
)  # fmt: skip
def test_given_bad_desk_field_when_loaded_then_error_names_desks_file_and_line(
    tmp_path, old, new, line, where, says
):
    _, desks = write_valid(tmp_path, desks=DESKS.replace(old, new))

    message = error_of(tmp_path)

    assert message.startswith(f"{desks}:{line}: {where}:")
    assert says in message


def test_given_impossible_holiday_date_when_loaded_then_error_names_its_line(tmp_path):
    _, desks = write_valid(tmp_path, desks=DESKS.replace("2027-01-01", "2027-02-30"))

    assert error_of(tmp_path) == f"{desks}:10: invalid date or time: day is out of range for month"


@pytest.mark.parametrize(
    ("hotline", "desks", "extra", "expected"),
    [
        (VALID, DESKS.replace("queues: [repair, emergency]", "queues: [emergency]"), "",
         "{desks}:5: desks.0.queue: 'repair' is not in queues"),
        (VALID + '  repeat_key: "1"\n', DESKS, "",
         "{desks}:4: desks.0.key: key '1' is also hotline.repeat_key"),
        (VALID + '  emergency_dids: ["95158"]\n', DESKS, "",
         "{hotline}:9: hotline.emergency_dids.0: '95158' is also a hotline DID (dids)"),
        (VALID, DESKS, OUTAGES.replace("  - area: qiaoxi", "  - area: changan"),
         "{extra}:6: outages.0.area: no area 'changan' in areas"),
        (VALID, DESKS, OUTAGES + '  - {number: "031186000001", priority: 1, reason: key_account}\n',
         "{extra}:14: priority_callers.1.number: '031186000001' is listed twice"),
    ],
)  # fmt: skip
def test_given_cross_reference_problem_when_loaded_then_error_names_file_and_line(
    tmp_path, hotline, desks, extra, expected
):
    paths = dict(zip(("hotline", "desks"), write_valid(tmp_path, hotline, desks), strict=True))
    paths["extra"] = write(tmp_path, "extra.yaml", extra or "areas: []\n")

    assert error_of(tmp_path) == expected.format(**paths)


def test_given_several_cross_reference_problems_when_loaded_then_one_line_each(tmp_path):
    hotline, desks = write_valid(
        tmp_path,
        VALID + '  person_key: "1"\n',
        DESKS.replace("queues: [repair, emergency]", "queues: [repair]"),
    )

    assert error_of(tmp_path).splitlines() == [
        f"{desks}:13: desks.1.queue: 'emergency' is not in queues",
        f"{desks}:4: desks.0.key: key '1' is also hotline.person_key",
    ]


# --- prompts named by the routing, queues in the dialplan ---------------------------------
def all_prompts(routing) -> set[tuple[str, str]]:
    return {(key, lang) for _, key in prompt_references(routing) for lang in ("zh", "en")}


def test_given_prompt_missing_in_one_language_when_checked_then_file_line_of_its_use(tmp_path):
    hotline, desks = write_valid(tmp_path)
    routing = load_routing(tmp_path)
    available = all_prompts(routing) - {("closed-repair", "en"), ("menu", "zh")}

    with pytest.raises(ConfigError) as info:
        check_prompts(tmp_path, routing, available)

    assert info.value.message.splitlines() == [
        f"{hotline}:2: hotline.prompts.menu: prompt 'menu' is not in the catalog in zh",
        f"{desks}:11: desks.0.closed_prompt: prompt 'closed-repair' is not in the catalog in en",
    ]


def test_given_every_prompt_in_both_languages_when_checked_then_passes(tmp_path):
    write_valid(tmp_path)
    routing = load_routing(tmp_path)

    check_prompts(tmp_path, routing, all_prompts(routing))


def test_given_repository_routing_and_catalog_when_checked_then_every_prompt_exists():
    routing = load_routing(REPO / "routing")
    catalog = load_catalog(REPO / "prompts" / "catalog.yaml", routing.hotline.name)

    check_prompts(REPO / "routing", routing, {(p.key, p.language) for p in catalog})


def test_given_repository_routing_when_loaded_then_desks_queues_and_keys_as_documented():
    routing = load_routing(REPO / "routing")

    assert queues_defined(REPO / "dialplan" / "queues.conf") == set(routing.queues) == {
        "consultation", "repair", "billing", "complaints", "emergency", "emergency-backup"
    }  # fmt: skip
    keys = {d.key: (d.queue, d.label.zh) for d in routing.desks}
    assert keys == {
        "1": ("repair", "报修"),
        "2": ("billing", "缴费与费用"),
        "3": ("complaints", "投诉与建议"),
        "4": ("consultation", "咨询"),
        None: ("emergency", "抢险"),
    }
    hotline = routing.hotline
    assert (hotline.emergency_key, hotline.person_key, hotline.repeat_key) == ("9", "0", "*")
    assert (hotline.english_key, hotline.max_invalid, hotline.silence_timeout_s) == ("8", 3, 3)
    assert hotline.timezone == "Asia/Shanghai"
    assert routing.emergency_desk().always_open
    check_queues(REPO / "routing", routing, REPO / "dialplan" / "queues.conf")


def test_given_queue_missing_from_queues_conf_when_checked_then_file_line_of_the_queue(tmp_path):
    _, desks = write_valid(tmp_path)
    conf = write(tmp_path / "dialplan", "queues.conf", "[general]\n[desk](!)\n[repair](desk)\n")

    with pytest.raises(ConfigError) as info:
        check_queues(tmp_path, load_routing(tmp_path), conf)

    assert info.value.message == (
        f"{desks}:1: queues.1: queue 'emergency' is not defined in queues.conf"
    )


def test_given_queues_conf_when_parsed_then_sections_without_general_and_templates(tmp_path):
    conf = write(
        tmp_path, "queues.conf", "; c\n[general]\n[desk](!)\nx=1\n[a](desk)\n [b]\n[c](!,desk)\n"
    )

    assert queues_defined(conf) == {"a", "b"}
    with pytest.raises(ConfigError, match="cannot read"):
        queues_defined(tmp_path / "missing.conf")


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
    assert re.fullmatch(r"routing OK: \d+ DIDs, \d+ emergency DIDs, \d+ desks, \d+ prompts\n", out)
    assert err == ""


# --- ringing (per queue: strategy, ring time, wrap-up) ---------------------------------------
def test_given_the_repository_routing_then_emergency_rings_all_and_desks_least_recent():
    routing = load_routing(REPO / "routing")

    assert routing.ringing_of("emergency").strategy == "ringall"
    assert routing.ringing_of("repair").strategy == "leastrecent"
    assert ringing_conf(routing.ringing).count("(+)") == len(routing.ringing)


def test_given_no_ringing_entry_then_the_queue_rings_all_without_wrapup(tmp_path):
    write_valid(tmp_path)

    ringing = load_routing(tmp_path).ringing_of("repair")

    assert (ringing.strategy, ringing.ring_s, ringing.wrapup_s) == ("ringall", 15, 0)


def test_given_ringing_for_an_unknown_queue_then_its_file_and_line(tmp_path):
    write_valid(tmp_path)
    ringing = write(tmp_path, "ringing.yaml", "ringing:\n  repair: {wrapup_s: 10}\n  nosuch: {}\n")

    assert error_of(tmp_path) == f"{ringing}:3: ringing.nosuch: 'nosuch' is not in queues"


@pytest.mark.parametrize(
    "entry, field",
    [
        ("{strategy: roundabout}", "strategy"),
        ("{wrapup_s: -1}", "wrapup_s"),
        ("{ring_s: 1}", "ring_s"),
    ],
)
def test_given_a_bad_ringing_value_then_the_field_is_named(tmp_path, entry, field):
    write_valid(tmp_path)
    write(tmp_path, "ringing.yaml", f"ringing:\n  repair: {entry}\n")

    assert f"ringing.repair.{field}" in error_of(tmp_path)


# --- the standard phrases (section phrases) --------------------------------------------------
PHRASES = """\
phrases:
  hotline_name_en: Test Hotline
  complaint_desk: repair
  day_parts:
    - {id: morning, starts: "05:00", zh: 上午好, en: Good morning}
    - {id: evening, starts: "18:00", zh: 晚上好, en: Good evening}
  items:
    - id: greeting
      label: {zh: 问候, en: Greeting}
      text: {zh: "{day_part}，{work_number}号", en: "{day_part}, agent {work_number}"}
    - id: readback
      label: {zh: 复述, en: Read-back}
      text: {zh: "{customer}，对吗？", en: "{customer}, right?"}
    - id: wait
      label: {zh: 稍等, en: Wait}
      text: {zh: 请您稍等，我帮您查询一下。, en: One moment please.}
    - id: complaint
      label: {zh: 投诉, en: Complaint}
      text: {zh: "{reply_within}内回复", en: "within {reply_within}"}
      weekend: {zh: "休息日，{reply_within}内回复", en: "day off, within {reply_within}"}
    - id: closing
      label: {zh: 结束语, en: Closing}
      text: {zh: "{hotline_name}，再见", en: "{hotline_name}, goodbye"}
"""


def test_given_the_repository_routing_then_its_phrases_are_complete_and_checked():
    phrases = load_routing(REPO / "routing").phrases

    assert phrases is not None
    assert [p.id for p in phrases.items][:5] == ["greeting", "readback", "wait", "complaint",
                                                 "closing"]  # fmt: skip
    assert phrases.complaint_desk == "complaints"


def test_given_a_phrases_file_when_loaded_then_kept_and_without_one_none(tmp_path):
    write_valid(tmp_path)
    assert load_routing(tmp_path).phrases is None
    write(tmp_path, "phrases.yaml", PHRASES)

    phrases = load_routing(tmp_path).phrases

    assert phrases is not None and phrases.items[3].weekend is not None
    assert [p.starts for p in phrases.day_parts] == ["05:00", "18:00"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"{day_part}，{work_number}号"', '"{day_part}，{agent_name}号"',
         "{path}:10: phrases.items.0.text.zh: Value error, {agent_name} is not a field phrases "
         "fill in; they are: {work_number}, {hotline_name}, {customer}, {day_part}, "
         "{reply_within}"),
        ('"{customer}, right?"', '"{customer!r}, right?"',
         "{path}:13: phrases.items.1.text.en: Value error, {customer} is not a field phrases "
         "fill in"),
        ('"{customer}，对吗？"', '"{customer，对吗？"',
         "{path}:13: phrases.items.1.text.zh: Value error, '{customer，对吗？': expected '}' "
         "before end of string (write a literal brace as {{ or }})"),
        ("    - id: wait\n      label: {zh: 稍等, en: Wait}\n"
         "      text: {zh: 请您稍等，我帮您查询一下。, en: One moment please.}\n", "",
         "{path}:7: phrases.items: Value error, missing phrases: wait"),
        ("id: closing", "id: greeting",
         "{path}:7: phrases.items: Value error, a phrase id is listed twice"),
        ('starts: "18:00"', 'starts: "04:00"',
         "{path}:4: phrases.day_parts: Value error, day parts must be listed by their start"),
        ('starts: "18:00"', 'starts: "25:00"',
         "{path}:6: phrases.day_parts.1.starts: Value error, '25:00' must be HH:MM (24 h clock)"),
        ("      weekend:", "      sunday:",
         "{path}:20: phrases.items.3.sunday: Extra inputs are not permitted"),
        ("  complaint_desk: repair\n", "",
         "{path}:1: phrases.complaint_desk: Field required"),
    ],
)  # fmt: skip
def test_given_broken_phrases_when_loaded_then_the_error_names_file_line_and_problem(
    tmp_path, old, new, expected
):
    write_valid(tmp_path)
    assert old in PHRASES
    path = write(tmp_path, "phrases.yaml", PHRASES.replace(old, new))

    assert error_of(tmp_path).startswith(expected.replace("{path}", str(path)))


def test_given_phrases_naming_an_unknown_complaint_desk_then_the_line_of_it(tmp_path):
    write_valid(tmp_path)
    path = write(tmp_path, "phrases.yaml", PHRASES.replace("complaint_desk: repair",
                                                           "complaint_desk: billing"))  # fmt: skip

    assert error_of(tmp_path) == f"{path}:3: phrases.complaint_desk: no desk 'billing' in desks"
