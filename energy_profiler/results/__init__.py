"""What a session writes: the run folder, one Record per trial, experiment.json and summary.csv."""
