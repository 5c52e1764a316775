"""
Notifiers: a generic JSON webhook, a Slack incoming webhook and e-mail (SMTP).

Use them as ``on_failure_callback`` / ``on_success_callback`` of a DAG or a task, or call them with a
context (the DriftSensor does on drift). Every message carries the DAG, the task, the logical date,
the try number and a link to the task's log; failures add the exception; ``details`` adds anything
else (e.g. the drifted features) and is templated.
"""

from __future__ import annotations
