"""Where a job's graph runs: in this process (``local``) or elsewhere (Modal, later).

Every backend takes the same JSON-able ``JobPayload`` and returns the same ``GraphResult``, so the
Django side switches backends by setting, not by code.
"""
