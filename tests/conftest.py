"""Loaded by pytest before any test module: OpenMP waits as it does in ``bvc``.

``bovw_vs_convnet.convnet`` makes OpenMP's idle threads sleep before torch loads
(:func:`bovw_vs_convnet.threads.passive_waiting`), so every ``bvc`` process runs that
way. A test module that imports torch before the package would start torch's pool
with spinning threads instead: another runtime than the users', and on a busy machine
several times the CPU and wall time of each ConvNet test. So the test process sets
the same variables here, first (those the user set are kept).
"""

from __future__ import annotations

from bovw_vs_convnet.threads import passive_waiting

passive_waiting()
