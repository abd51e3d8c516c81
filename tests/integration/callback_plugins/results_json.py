"""A stdout callback for the tests: each task's result, as JSON, by task name.

ansible-core ships no JSON callback any more; this one prints what a
playbook would `register`, after Ansible's own no_log censoring.
"""

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: results_json
    type: stdout
    short_description: print task results as one JSON document
    description: Test helper; collects each task's result by task name.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "results_json"

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.results = {}

    def _record(self, result, **status):
        data = dict(result._result)
        data.update(status)
        self.results[result._task.get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps(self.results, default=str))
