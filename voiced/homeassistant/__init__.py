"""Home Assistant in `voiced run`: what no command matched goes to its conversation agent, and
its answer is spoken (the `home_assistant:` section).

config.py holds the section; conversation.py is the pure core (the request HA's REST API
takes, its answer read back, which conversation a follow-up continues); client.py is the
HTTP edge; events.py the events it reports; fallback.py the stage the daemon runs for finals
no command matched.
"""
