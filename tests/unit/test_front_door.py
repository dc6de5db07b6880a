"""The front page's role -> pages table (ivr.core.front_door), pure."""

from __future__ import annotations

import pytest

from ivr.adapters.sql.db import Role
from ivr.core.front_door import PAGES, ROLE_NAMES, pages_for, role_name, shows_status


@pytest.mark.parametrize(
    ("role", "paths"),
    [
        (Role.agent, ["/agent"]),
        (Role.qa, ["/tickets", "/qa"]),
        (Role.supervisor, ["/supervisor", "/reports", "/tickets"]),
        (Role.admin, ["/agent", "/supervisor", "/reports", "/tickets", "/qa", "/department"]),
        (Role.department, ["/department"]),
    ],
)
def test_each_role_gets_the_pages_it_opens_in_the_tables_order(role, paths):
    assert [p.path for p in pages_for(role)] == paths


def test_an_unknown_role_gets_no_page_and_no_status():
    assert pages_for("nobody") == ()
    assert not shows_status("nobody")


@pytest.mark.parametrize("role", list(Role))
def test_only_admins_see_the_service_status(role):
    assert shows_status(role) == (role is Role.admin)


def test_every_page_names_known_roles_has_both_languages_and_a_unique_path():
    assert len({p.path for p in PAGES}) == len(PAGES)
    for page in PAGES:
        assert page.roles and page.roles <= {r.value for r in Role}, page.path
        assert page.path.startswith("/") and page.zh and page.en, page.path
        assert page.hint_zh and page.hint_en, page.path


@pytest.mark.parametrize("role", list(Role))
def test_every_role_has_a_chinese_name_shown_first(role):
    assert role_name(role) == f"{ROLE_NAMES[role.value]} {role.value}"
