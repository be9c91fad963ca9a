import sys
import threading
import time

from voiced.actions.config import ActionsSettings, ExecAction, MqttAction, MqttBroker, SayAction
from voiced.actions.context import Match
from voiced.actions.runner import ActionRunner
from voiced.testing import action_supervisors


class Events(list):
    def __init__(self):
        super().__init__()
        self.changed = threading.Condition()

    def __call__(self, event):
        with self.changed:
            self.append(event.to_dict())
            self.changed.notify_all()

    def wait_for(self, predicate, timeout=30):
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), timeout), list(self)


def _exec(*code, **kw):
    return ExecAction(type="exec", argv=[sys.executable, "-c", *code], **kw)


def test_actions_run_in_order_and_failures_do_not_stop_the_rest(tmp_path, mosquitto):
    subscriber = mosquitto.subscribe("voiced/#")
    spoken = tmp_path / "spoken"
    settings = ActionsSettings(
        mqtt=MqttBroker(port=mosquitto.port, client_id="voiced-runner"),
        say_command=[sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())"],
        sound_command=[sys.executable, "-c", f"import sys; open({str(spoken)!r}, 'a').write(sys.stdin.read())"],
    )
    events = Events()
    runner = ActionRunner(settings, events)
    actions = (
        _exec("import sys; sys.exit(3)"),  # crashes
        _exec("import time; time.sleep(600)", timeout_s=1),  # hangs: killed at its timeout
        _exec("print('done for $room')", speak_output=True),
        MqttAction(type="mqtt", topic="voiced/$intent", payload="$room"),
        SayAction(type="say", text=" and $room"),
    )
    runner.dispatch(Match("Clean", {"room": "kitchen"}, "clean", 1.0, "en", actions))
    events.wait_for(lambda e: any(x["type"] == "actions_done" for x in e))
    outcomes = [(e["index"], e["type"]) for e in events if e["type"] in ("action_finished", "action_failed")]
    assert outcomes == [
        (0, "action_failed"),
        (1, "action_failed"),
        (2, "action_finished"),
        (3, "action_finished"),
        (4, "action_finished"),
    ]
    assert events[-1]["type"] == "actions_done" and events[-1]["failed"] == 2  # after the last action
    assert "exited with 3" in events[1]["error"] and "timeout" in events[3]["error"]
    assert spoken.read_text() == "done for kitchen and kitchen"
    deadline = time.monotonic() + 10
    while not subscriber.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert subscriber.messages == [("voiced/Clean", b"kitchen", False)]
    assert runner.shutdown(10)
    subscriber.loop_stop()


def test_a_supervisor_waits_from_the_start_and_shutdown_ends_it():
    others = action_supervisors()
    runner = ActionRunner(ActionsSettings(), Events())
    deadline = time.monotonic() + 60
    while not action_supervisors() - others and time.monotonic() < deadline:  # started by its thread
        time.sleep(0.01)
    assert len(action_supervisors() - others) == 1  # the first command's program starts at once too
    assert runner.shutdown(10)
    assert not action_supervisors() - others


def test_dispatch_does_not_block_and_concurrency_is_bounded(tmp_path):
    events = Events()
    runner = ActionRunner(ActionsSettings(max_concurrent=2), events)
    running, log = tmp_path / "running", tmp_path / "log"
    # each action logs how many are running at once, via files that exist while it runs
    code = (
        f"import os, time, uuid; d = {str(running)!r}; os.makedirs(d, exist_ok=True);"
        "f = os.path.join(d, uuid.uuid4().hex); open(f, 'w').close();"
        f"n = len(os.listdir(d)); time.sleep(0.5); os.remove(f); open({str(log)!r}, 'a').write(f'{{n}}\\n')"
    )
    futures = [runner.dispatch(Match(f"C{i}", {}, "x", 1.0, "en", (_exec(code),))) for i in range(5)]
    assert not all(f.done() for f in futures)  # dispatch returned while work was still to do
    for future in futures:
        future.result(timeout=60)
    assert [e["type"] for e in events].count("action_finished") == 5
    counts = [int(n) for n in log.read_text().split()]
    assert len(counts) == 5 and max(counts) <= 2
    assert runner.shutdown(10)


def test_queue_overflow_is_reported_not_raised():
    events = Events()
    runner = ActionRunner(ActionsSettings(max_concurrent=1), events)
    slow = (_exec("import time; time.sleep(1)"),)
    results = [runner.dispatch(Match("Slow", {}, "x", 1.0, "en", slow)) for _ in range(8)]
    assert results.count(None) == 3  # 1 running + 4 queued accepted
    assert [e["type"] for e in events].count("action_failed") == 3
    runner.shutdown(0)


def test_shutdown_drains_queued_commands_within_its_bound_then_drops_the_rest(tmp_path):
    events = Events()
    runner = ActionRunner(ActionsSettings(max_concurrent=1), events)
    log = tmp_path / "log"
    quick = (_exec(f"open({str(log)!r}, 'a').write('x')"),)
    for _ in range(3):  # one runs, two wait in the queue
        runner.dispatch(Match("Quick", {}, "x", 1.0, "en", quick))
    assert runner.shutdown(30) and log.read_text() == "xxx"
    assert runner.dispatch(Match("Late", {}, "x", 1.0, "en", quick)) is None  # no work after shutdown
    slow = ActionRunner(ActionsSettings(max_concurrent=1), events)
    sleeper = (_exec("import time; time.sleep(2)"),)
    for _ in range(3):
        slow.dispatch(Match("Slow", {}, "x", 1.0, "en", sleeper))
    started = time.monotonic()
    assert not slow.shutdown(0.5) and time.monotonic() - started < 1.5
    time.sleep(2.5)
    assert [e["intent"] for e in events if e["type"] == "action_started"].count("Slow") == 1  # queued: dropped
    # the one running past the bound was stopped, not left to finish on its own
    assert [e["error"] for e in events if e["type"] == "action_failed" and e["intent"] == "Slow"] == [
        f"{sys.executable!r} was killed by signal 9"
    ]
