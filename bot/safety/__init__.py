"""Safety triage: sensitive and hostile messages go to people, not to the FAQ."""
