"""Shared fixtures, and the test order: the SLURM module first.

The SLURM module is the longest by far (7 of the suite's 25 serial minutes) and mostly waits
on the cluster, so under `make test` (two workers, whole files each) it runs beside the
others from the start instead of after them. The sort is stable: every other test keeps its
order.
"""

import pytest
import torch


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


@pytest.fixture
def one_thread():
    """Tiny problems run faster on one torch thread than on several (a module takes it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
