"""Asterisk's side: the FastAGI server and the call flow's runner, the AMI client, placing
calls (ivr call), prompts, the routing files and the checks every role makes at start, the
instance's folders."""
