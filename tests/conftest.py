"""Test order: the SLURM module first.

It is the longest module by far (7 of the suite's 25 serial minutes) and mostly waits on the
cluster, so under `make test` (two workers, whole files each) it runs beside the others from
the start instead of after them. The sort is stable: every other test keeps its order.
"""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)
