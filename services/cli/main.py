"""The `callbridge` command (`callbridge --config FILE COMMAND …`): it parses the command line,
loads the configuration and hands over to the module that does the work; whatever goes wrong
ends in one line on stderr and a non-zero status (2: bad input; 1: anything else).

monitor | api | webhooks | recordings  a service, on RabbitMQ
pbx check                              connect to the configured 3CX and print what it shows
pbx fake                               a fake 3CX playing [simulator] on [pbx] url (for trials and tests)
bus convert-queues                     give the durable queues the type [bus] queue_type asks for
webhooks dead list|replay              deliveries given up on: list them, send them again
webhooks attempts                      the delivery attempt log
recordings convert DIR                 convert a folder of WAVs, with a progress bar
scenario run|check|generate            play, compare and make scenario files (the simulation harness)
demo                                   live simulated traffic through the services in one process
health SERVICE                         is a service on this host ready?
"""

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from shared.config_file import load_settings
from shared.settings import ConfigError
from simulation.compare import ExpectationError
from simulation.scenario import ScenarioError

from . import demo, operations, pbx, recordings, scenario, webhooks
from .common import Parser, fail

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        settings = load_settings(args.config)
        return int(args.run(args, settings))
    except (ConfigError, ScenarioError, ExpectationError) as error:
        return fail(error, 2)
    except OSError as error:  # ConnectionError included: the broker, a port, a file
        return fail(error, 1)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # not foreseen: still one line; the traceback at [log] level = DEBUG
        logger.debug("callbridge failed", exc_info=True)
        return fail(f"unexpected {type(error).__name__}: {error}", 1)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="callbridge", description="3CX ⇄ business software bridge")
    parser.add_argument(
        "--config",
        type=Path,
        help="the .ini file (default: $CALLBRIDGE_CONFIG, then /etc/callbridge/callbridge.ini)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for group in (operations, pbx, webhooks, recordings, scenario, demo):
        group.add(commands)
    return parser
