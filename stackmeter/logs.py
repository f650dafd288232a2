"""Log format shared by every stackmeter process."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Libraries that log every request or rebalance step at INFO.
_NOISY = ("aiokafka", "kafka", "faust", "mode", "openstack", "keystoneauth", "urllib3")


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level``; chatty libraries only from WARNING up."""
    logging.basicConfig(level=level, format=FORMAT, force=True)
    if level != "DEBUG":
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.WARNING)
