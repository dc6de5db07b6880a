"""Every Redis key the service uses. All start with ``ivr:``.

Metrics (written by the ami role through :class:`ivr.adapters.metrics.store.MetricsStore`,
read by the web role and ``ivr metrics``). Buckets are local time in the configured zone:
``hour`` ``2025-11-23T10+0800`` (the UTC offset keeps a repeated DST hour apart), ``day``
``2025-11-23``, ``month`` ``2025-11``::

    ivr:metrics:{period}:{bucket}:total          hash  class -> calls (answered, ..., unknown)
    ivr:metrics:{period}:{bucket}:queue:{name}   hash  the same, for the queue first entered
    ivr:metrics:{period}:{bucket}:queues         set   the queue names of that bucket
    ivr:metrics:counted                          zset  Linkedid -> closed_at: calls counted
    ivr:metrics:writer:{id}                      str   last batch seq applied for one writer
    ivr:metrics:anomalies                        hash  kind -> count, since the beginning
    ivr:metrics:anomalies:{day}                  hash  kind -> count, that local day
    ivr:metrics:dropped                          hash  what was lost while Redis was away
    ivr:metrics:resync                           hash  AMI resyncs and the calls they closed
    ivr:live:waiting                             zset  Linkedid -> waiting since (app clock)
    ivr:live:calls                               hash  Linkedid -> JSON of the waiting call
    ivr:live:agents                              hash  JSON [queue, interface] -> JSON state
    ivr:live:agent_states                        hash  工号 -> JSON agent state (caller masked)
    ivr:live:call:{linkedid}                     hash  a call's facts for the screen pop
    ivr:metrics:changed                          pub/sub channel: one message per change
"""

AMI_EVENTS = "ivr:ami:events"  # stream: the AMI events the listener keeps (capped), + IvrResync
AMI_STATUS = "ivr:ami:status"  # hash: connected, logins, last_event_at, counters of the listener
AMI_HEARTBEAT_TTL_S = 30  # the status hash expires if the listener stops refreshing it

# --- metrics --------------------------------------------------------------------------------
METRICS_COUNTED = "ivr:metrics:counted"  # zset: Linkedids already counted (idempotence)
METRICS_ANOMALIES = "ivr:metrics:anomalies"  # hash: anomaly kind -> count, all time
METRICS_DROPPED = "ivr:metrics:dropped"  # hash: batches, events, calls, anomalies, lost_in_redis
# hash: resyncs, closed (calls), closed_unknown, closed_from_queue_log
METRICS_RESYNC = "ivr:metrics:resync"
METRICS_CHANGED = "ivr:metrics:changed"  # pub/sub channel (not a key): a change was applied
LIVE_WAITING = "ivr:live:waiting"  # zset: Linkedid -> since
LIVE_CALLS = "ivr:live:calls"  # hash: Linkedid -> {"queue", "since", "caller", "threshold_s"}
LIVE_AGENTS = "ivr:live:agents"  # hash: [queue, interface] -> {"state", "name", ...}
# hash: 工号 -> AgentView JSON (ivr.core.agent_states: state, since, masked caller, counts)
LIVE_AGENT_STATES = "ivr:live:agent_states"
# hash per call: the call flow's IVR_* variables and the caller's number, unmasked (agents see
# them in the screen pop, ivr.core.screen_pop); deleted when the call's first channel hangs
# up, else expires CALL_FACTS_TTL_S after its last write
LIVE_CALL_FACTS_PREFIX = "ivr:live:call:"
CALL_FACTS_TTL_S = 6 * 3600


def live_call_facts(linkedid: str) -> str:
    """The screen pop's facts of one call (its Linkedid)."""
    return LIVE_CALL_FACTS_PREFIX + linkedid


def metrics_counts(period: str, bucket: str, queue: str | None = None) -> str:
    """The counters hash of one bucket: the total, or one queue's."""
    scope = "total" if queue is None else f"queue:{queue}"
    return f"ivr:metrics:{period}:{bucket}:{scope}"


def metrics_queue_prefix(period: str, bucket: str) -> str:
    """``metrics_counts(period, bucket, q) == metrics_queue_prefix(period, bucket) + q``."""
    return f"ivr:metrics:{period}:{bucket}:queue:"


def metrics_queues(period: str, bucket: str) -> str:
    """The set of queue names that have counters in one bucket."""
    return f"ivr:metrics:{period}:{bucket}:queues"


def metrics_anomalies_day(day: str) -> str:
    return f"ivr:metrics:anomalies:{day}"


def metrics_writer(writer_id: str) -> str:
    return f"ivr:metrics:writer:{writer_id}"


# --- speech-to-text ---------------------------------------------------------------------------
# The job stream and its consumer group are settings (stt.stream, stt.group; ivr:stt:jobs).
STT_WORKER_PREFIX = "ivr:stt:worker:"  # hash per worker process: state, model, jobs, rss


def stt_worker(consumer: str) -> str:
    """One STT worker's status hash (expires when the worker stops refreshing it)."""
    return STT_WORKER_PREFIX + consumer
