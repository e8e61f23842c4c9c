"""Running a plan: the session (a loop over trials), one trial's attempts, and the record sinks."""
