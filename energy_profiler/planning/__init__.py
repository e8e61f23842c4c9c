"""Settings + registry + history -> the ordered plan of trials a campaign runs."""
