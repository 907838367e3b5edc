"""workers: the analysis task, run in-process by default or by Celery workers on a broker.

The same function, :func:`refundlens.workers.tasks.analyse_claim`, does the work either way.
"""
