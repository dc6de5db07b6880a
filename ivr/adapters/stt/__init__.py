"""Speech-to-text: the vosk engine, the models and their install, the job queue (Redis Streams)
and the worker."""
