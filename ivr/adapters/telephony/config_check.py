"""What every role checks at start, across files: routing, prompts and the dialplan."""

from __future__ import annotations

from pathlib import Path

from ivr.adapters.telephony.prompts import PromptText, load_catalog
from ivr.adapters.telephony.routing_files import check_prompts, check_queues, load_routing
from ivr.core.routing_models import Routing


def load_checked(
    routing_dir: Path, prompts_dir: Path, dialplan_dir: Path
) -> tuple[Routing, list[PromptText]]:
    """What every role checks at start: the routing files, every prompt they name present
    in every language, and every queue they name defined in the dialplan's queues.conf."""
    routing = load_routing(routing_dir)
    catalog = load_catalog(prompts_dir / "catalog.yaml", routing.hotline.name)
    check_prompts(routing_dir, routing, {(p.key, p.language) for p in catalog})
    check_queues(routing_dir, routing, dialplan_dir / "queues.conf")
    return routing, catalog
