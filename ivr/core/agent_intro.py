"""What the caller hears when an agent answers: "工号1001为您服务". Pure.

Queue() runs the FastAGI route ``agent-intro`` on the caller's channel once a member has
answered, before the two are bridged. The member's ``MEMBERNAME`` carries the agent's 工号
as its first word (``1001 张三``); a member without one (a simulated agent, a crew phone
added by hand) is announced with nothing, so the call connects at once.

>>> work_number_of("1001 张三"), work_number_of("Local/agent@sim-agents/n"), work_number_of("")
('1001', None, None)
>>> intro_prompts("1001")
['agent-intro', 'digit-1', 'digit-0', 'digit-0', 'digit-1', 'agent-serving']
>>> intro_prompts(None)
[]
"""

from __future__ import annotations

import re

_WORK_NUMBER = re.compile(r"[0-9]{1,12}")
INTRO_BEFORE = "agent-intro"  # 工号 / Agent number
INTRO_AFTER = "agent-serving"  # 为您服务 / at your service


def work_number_of(member_name: str | None) -> str | None:
    """The 工号 a queue member's name starts with, or None."""
    first = (member_name or "").split(" ", 1)[0]
    return first if _WORK_NUMBER.fullmatch(first) else None


def intro_prompts(work_number: str | None) -> list[str]:
    """The prompt keys the caller hears, in the call's language: the 工号 digit by digit."""
    if work_number is None:
        return []
    return [INTRO_BEFORE, *(f"digit-{d}" for d in work_number), INTRO_AFTER]
