"""Live metrics: the AMI listener feeding the pure reducer, the Redis store and its reader,
Asterisk's queue_log, the AMI event stream, and each call's outcome into SQL (call facts)."""
