"""`python -m tests.slow_agent SECONDS [flowlink agent options]`: the agent of `flowlink agent`, waiting SECONDS
after carrying out each step and before reporting it done, so a test can kill it between the two."""

from __future__ import annotations

import sys

from flowlink import cli
from flowlink.agent import Agent, Job, read_token
from flowlink.states import LogStatus


class SlowAgent(Agent):
    delay = 0.0

    def report(self, job: Job, step: str, status: LogStatus, message: str | None = None):
        if status == LogStatus.DONE:
            self._stop.wait(self.delay)
        return super().report(job, step, status, message)


def main(argv: list[str]) -> None:
    SlowAgent.delay = float(argv[0])
    args = cli.parser().parse_args(["agent", *argv[1:]])
    agent = SlowAgent(args.server, read_token(args.token_file), args.environment, args.install_dir, args.interval)
    agent.run_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
