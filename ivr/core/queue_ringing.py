"""Each queue's ringing, from the routing's ``ringing`` section, as Asterisk queue config. Pure.

dialplan/queues.conf defines the queues from the ``[desk]`` template (ring all, 15 s, no
wrap-up) and includes this text last: ``[name](+)`` appends to the queue's own section, and
the later value of an option wins, so a queue the routing does not list keeps the template.
The queues never get Asterisk's own ``wrapuptime`` (it cannot end early): a desk's
``wrapup_s`` is a 后处理 pause the ami role makes instead (:mod:`ivr.core.wrapup`).

>>> from ivr.core.routing_models import RingingIn, RingStrategy
>>> print(ringing_conf({"repair": RingingIn(strategy=RingStrategy.LEASTRECENT, wrapup_s=20)}))
; from routing/ (section ringing): one block per listed queue
[repair](+)
strategy = leastrecent
timeout = 15
<BLANKLINE>
"""

from __future__ import annotations

from collections.abc import Mapping

from ivr.core.routing_models import RingingIn


def ringing_conf(ringing: Mapping[str, RingingIn]) -> str:
    lines = ["; from routing/ (section ringing): one block per listed queue"]
    for queue in sorted(ringing):
        r = ringing[queue]
        lines += [
            f"[{queue}](+)",
            f"strategy = {r.strategy.value}",
            f"timeout = {r.ring_s}",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"
