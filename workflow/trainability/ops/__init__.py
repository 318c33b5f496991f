"""Commands and operations around the workflow.

``cli`` (the ``trainability`` command: verify-archive, selftest), ``selftest`` (every kernel
of a device against the CPU reference, and its speed), ``cluster`` (SLURM checks and the
plugin fix), ``faults`` (test-only fault injection), ``resources`` (memory and time requests
of the per-frame jobs). The top layer: may import everything below.
"""
