"""Every Redis key the service uses. All start with ``ivr:``."""

AMI_EVENTS = "ivr:ami:events"  # stream: every AMI event the listener saw (capped)
AMI_STATUS = "ivr:ami:status"  # hash: connected, logins, last_event_at, counters of the listener
AMI_HEARTBEAT_TTL_S = 30  # the status hash expires if the listener stops refreshing it
