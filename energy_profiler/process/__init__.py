"""Starting trainings in their own process groups and ending those groups completely."""
