"""A sweep: planning (names, volumes, the trial table), the typed trial payload, and the driver that runs it."""
