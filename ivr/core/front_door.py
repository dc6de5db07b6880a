"""What the front page ``/`` offers each role: the one place that says it. Pure.

Each entry is a page of the web app with its Chinese and English names and the roles that open
it (the same roles its route lets in; ``admin`` holds every role, as everywhere). A new page is
one line in :data:`PAGES`; ``tests/unit/test_web_front.py`` checks each entry against the
page's own guard, and that every page the app serves is listed.

>>> [p.path for p in pages_for("agent")]
['/agent']
>>> [p.path for p in pages_for("supervisor")]
['/supervisor', '/reports', '/tickets']
>>> [p.path for p in pages_for("admin")]
['/agent', '/supervisor', '/reports', '/tickets', '/qa', '/department']
>>> [p.path for p in pages_for("department")]
['/department']
>>> shows_status("admin"), shows_status("qa")
(True, False)
>>> pages_for("nobody")
()
>>> role_name("supervisor"), role_name("nobody")
('值班长 supervisor', 'nobody')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ADMIN: Final = "admin"  # holds every role: sees every page, and the service status
#: The roles' Chinese names, shown before the role itself.
ROLE_NAMES: Final = {
    "agent": "坐席", "qa": "质检", "supervisor": "值班长", "admin": "管理员", "department": "部门",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FrontPage:
    path: str  # where the page is served, e.g. "/agent"
    zh: str  # its name, Chinese first
    en: str  # and in English beside it
    hint_zh: str  # one line on what it is for
    hint_en: str
    roles: frozenset[str]  # the roles its route lets in (admin: every page)


def _page(path: str, zh: str, en: str, hint_zh: str, hint_en: str, *roles: str) -> FrontPage:
    return FrontPage(path, zh, en, hint_zh, hint_en, frozenset(roles))


#: The pages, in the order the front page lists them.
PAGES: Final[tuple[FrontPage, ...]] = (
    _page("/agent", "坐席工作台", "Agent desk", "接听来电、填写工单、标准话术",
          "answer calls, fill in the ticket, standard phrases", "agent"),
    _page("/supervisor", "实时监控", "Live view", "接通率、排队、坐席状态",
          "answer rate, waiting callers, agent states", "supervisor"),
    _page("/reports", "服务指标报告", "Reports", "月度指标、达标情况、明细、月度文件",
          "monthly figures against targets, what is behind each, the monthly file",
          "supervisor"),
    _page("/tickets", "工单", "Tickets", "工单状态、派单、验收",
          "ticket states, dispatch, acceptance", "qa", "supervisor"),
    _page("/qa", "录音质检", "Call recordings QA", "查找、回放、评分通话",
          "find, replay and score calls", "qa"),
    _page("/department", "部门工单", "Department tickets", "接单、反馈处理结果",
          "take dispatched tickets, report the result", "department"),
)  # fmt: skip


def pages_for(role: str) -> tuple[FrontPage, ...]:
    """The pages ``role`` opens, in :data:`PAGES` order (an unknown role: none)."""
    return tuple(p for p in PAGES if role == ADMIN or role in p.roles)


def shows_status(role: str) -> bool:
    """Whether the front page shows ``role`` the service status table (admins only)."""
    return role == ADMIN


def role_name(role: str) -> str:
    """A role as the front page shows it: Chinese first, then the role (unknown: the role)."""
    return f"{ROLE_NAMES[role]} {role}" if role in ROLE_NAMES else role
